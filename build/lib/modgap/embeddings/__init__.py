"""Embeddings: the dump of a run's test-split embeddings (writing, reading, the post-hoc shift), files made
elsewhere (read and checked), and dumps made with pretrained open_clip and Hugging Face models."""
