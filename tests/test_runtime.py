"""Process settings of a job: GPU assignment (one device per job, schedulers' assignments respected) and
the CPU kernels' instruction-set level."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from modgap.runtime import PORTABLE_CPU_KERNELS, claim_gpu, local_gpu_count, pin_cpu_kernels


def test_each_job_gets_its_own_gpu(tmp_path):
    first, second = {}, {}
    a = claim_gpu(first, count=2, lock_dir=tmp_path)
    b = claim_gpu(second, count=2, lock_dir=tmp_path)
    assert {first["CUDA_VISIBLE_DEVICES"], second["CUDA_VISIBLE_DEVICES"]} == {"0", "1"}
    a.close()  # the job holding GPU 0 ends: the next job gets it
    third = {}
    c = claim_gpu(third, count=2, lock_dir=tmp_path)
    assert third["CUDA_VISIBLE_DEVICES"] == "0"
    b.close(), c.close()


def test_scheduler_assignment_is_kept(tmp_path):
    environ = {"CUDA_VISIBLE_DEVICES": "3"}
    assert claim_gpu(environ, count=4, lock_dir=tmp_path) is None
    assert environ == {"CUDA_VISIBLE_DEVICES": "3"}


def test_no_gpu_no_claim(tmp_path):
    environ = {}
    assert claim_gpu(environ, count=0, lock_dir=tmp_path) is None and environ == {}


def test_visible_devices_are_counted(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,2")
    assert local_gpu_count() == 2
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert local_gpu_count() == 0


def test_a_failed_job_names_its_log_on_the_terminal(tmp_path, capsys):
    """The default profile shows no job details, so a failing job's terminal line names its log."""
    from modgap.errors import ExplainedError
    from modgap.logs import log_to_file

    log = tmp_path / "logs" / "job.log"
    with pytest.raises(SystemExit) as exit_info, log_to_file(log):
        raise ExplainedError("the cause, in one line")
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == f"error: the cause, in one line\n  (this job's log: {log})\n"
    with pytest.raises(ValueError), log_to_file(log):
        raise ValueError("an unexplained failure")
    assert f"its log, with the traceback: {log}" in capsys.readouterr().err
    assert "Traceback" in log.read_text() and "an unexplained failure" in log.read_text()


TRAIN_AND_DIGEST = """
import hashlib, json, sys
from modgap.runtime import pin_cpu_kernels
run, data, folder, pinned = json.loads(sys.argv[1])
pin_cpu_kernels(pinned)
import torch
from modgap.training.trainer import train_run
torch.set_num_threads(1)
train_run(run, data, f"{folder}/model.pt", f"{folder}/log.csv", seed=0)
state = torch.load(f"{folder}/model.pt", weights_only=True)["model"]
print(hashlib.sha256(b"".join(state[k].numpy().tobytes() for k in sorted(state))).hexdigest())
"""
AVX2_ONLY = {"MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the AVX2 level is an x86-64 one")
def test_portable_kernels_train_the_same_bits_where_a_cpu_lacks_avx512(tmp_path, tiny_data, tiny_run):
    """A machine with AVX2 alone, emulated by capping each kernel library's dispatch at AVX2: with
    train.portable_cpu_kernels it trains the bits this machine does; without, where this CPU has AVX-512,
    it does not (so the setting is what makes them agree)."""
    import torch

    run = tiny_run("ours", epochs=2, model={"width": 64, "depth": 2, "embed_dim": 64})

    def digest(name, pinned, environment):
        folder = tmp_path / name
        folder.mkdir()
        env = {k: v for k, v in os.environ.items() if k not in (*AVX2_ONLY, *PORTABLE_CPU_KERNELS)}
        arguments = json.dumps([run, str(tiny_data), str(folder), pinned])
        done = subprocess.run([sys.executable, "-c", TRAIN_AND_DIGEST, arguments], env={**env, **environment},
                              capture_output=True, text=True, check=True)  # fmt: skip
        return done.stdout.split()[-1]

    assert digest("pinned", True, {}) == digest("pinned_avx2_only", True, AVX2_ONLY)
    if torch.backends.cpu.get_cpu_capability() == "AVX2":
        pytest.skip("this CPU has no AVX-512: it cannot show the difference unpinned")
    assert digest("native", False, {}) != digest("native_avx2_only", False, AVX2_ONLY)


def test_kernels_cannot_be_pinned_after_torch_loads():
    import torch  # noqa: F401 (loaded, as in this test process)

    environ = {}
    if platform.machine() == "x86_64":
        with pytest.raises(RuntimeError, match="before torch is imported"):
            pin_cpu_kernels(True, environ)
    pin_cpu_kernels(False, environ)
    assert environ == {}
