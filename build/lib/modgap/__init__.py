"""modgap: replication of "Closing the Modality Gap Aligns Group-Wise Semantics"."""

__version__ = "0.1.0"
