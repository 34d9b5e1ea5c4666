"""Process-level settings of a job: CPU threads and the GPU it may use.

Torch is imported lazily: the Snakefile asks ``local_gpu_count`` while planning.
"""

from __future__ import annotations

import fcntl
import importlib.util
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import MutableMapping
from pathlib import Path

from threadpoolctl import threadpool_limits

from modgap.errors import ExplainedError

log = logging.getLogger(__name__)

GPU_LOCK_DIR = Path(tempfile.gettempdir()) / "modgap-gpu-locks"


_THREAD_LIMITS = []  # threadpoolctl limiters, kept alive for the life of the process

# The instruction-set level of every CPU kernel library torch trains with: its own vectorised kernels (whose
# reductions sum in an order set by the vector width), MKL's BLAS (conditional numerical reproducibility,
# strict) and oneDNN. Each library otherwise picks the widest level the CPU has, and the rounding that
# follows differs between machines and compounds over training like a new seed draw.
PORTABLE_CPU_KERNELS = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2,STRICT", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def pin_cpu_kernels(enabled: bool, environ: MutableMapping[str, str] = os.environ) -> None:
    """Run the CPU kernels at the AVX2 level on x86-64 (``train.portable_cpu_kernels``), so two x86-64
    machines with AVX2 train the same bits; no effect elsewhere (ARM CPUs, GPU kernels). The libraries read
    these settings once, when torch loads: call before the first ``import torch``."""
    if not enabled or platform.machine().lower() not in ("x86_64", "amd64"):
        return
    if "torch" in sys.modules:
        raise RuntimeError("pin_cpu_kernels must run before torch is imported: the kernels are chosen at import")
    environ.update(PORTABLE_CPU_KERNELS)


def configure_threads(threads: int) -> None:
    """Use exactly the CPU threads Snakemake granted the job, in torch and in every BLAS and OpenMP
    pool (numpy's OpenBLAS would otherwise start a thread per core, whose spinning slows the other
    jobs on the machine), so results match between runs and parallel jobs do not compete."""
    threads = max(1, int(threads))
    _THREAD_LIMITS.append(threadpool_limits(limits=threads))
    if importlib.util.find_spec("torch") is not None:  # absent from the analysis environment
        import torch  # only where present (above)

        torch.set_num_threads(threads)


class NoGpuError(ExplainedError, RuntimeError):
    """CUDA was asked for where none is; the message names the setting that asked."""


def select_device(requested: str, key: str = "train.device"):
    """The torch device for a ``requested`` setting (auto: CUDA where present, else the CPU); ``key``: the
    config key or option that set it, for the message."""
    import torch  # this module serves the analysis environment too, which lacks torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise NoGpuError(f"{key} is 'cuda' but no CUDA device is available")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def local_gpu_count() -> int:
    """GPUs this machine shows to its processes, without initialising CUDA (0 if none or no driver)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return 0
    return sum(1 for line in listed.splitlines() if line.startswith("GPU "))


def claim_gpu(
    environ: MutableMapping[str, str] = os.environ,
    count: int | None = None,
    lock_dir: Path = GPU_LOCK_DIR,
    wait_seconds: float = 3600.0,
):
    """Give this process one GPU of its own by setting CUDA_VISIBLE_DEVICES before CUDA starts.

    A scheduler that already assigned devices (SLURM sets CUDA_VISIBLE_DEVICES) is
    respected. Otherwise, with Snakemake capping concurrent GPU jobs at the number
    of GPUs (``--resources gpu=N``), each job takes the first device whose lock file
    it can hold; the lock lives as long as the returned handle (the process).
    Returns the open lock file, or None when nothing was claimed.
    """
    if "CUDA_VISIBLE_DEVICES" in environ:
        return None
    count = local_gpu_count() if count is None else count
    if count == 0:
        return None
    lock_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_seconds
    while True:
        for device in range(count):
            handle = open(lock_dir / f"gpu{device}.lock", "w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            environ["CUDA_VISIBLE_DEVICES"] = str(device)
            log.info("using GPU %d of %d", device, count)
            return handle
        if time.monotonic() > deadline:
            raise RuntimeError(f"no free GPU among {count} after {wait_seconds:.0f} s; is --resources gpu too high?")
        time.sleep(1.0)
