"""Process-level settings of a job: CPU threads, devices, seeding."""

from __future__ import annotations


def configure_threads(threads: int) -> None:
    """Use exactly the CPU threads Snakemake granted the job (results then match between runs)."""
    import torch

    torch.set_num_threads(max(1, int(threads)))
