"""Metrics: the gap, retrieval, clustering and kNN measures on unit-norm embeddings, the tiled similarity
passes and KMeans they rest on, and every metric of one run."""
