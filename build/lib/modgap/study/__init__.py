"""The study: its configuration (schema, defaults, checks), what it plans (runs, evaluations, budget ladders,
digests), where each intermediate lives, and which package files each workflow rule runs. Imports no torch."""
