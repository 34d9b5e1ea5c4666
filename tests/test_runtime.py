"""GPU assignment of local jobs: one device per job, schedulers' assignments respected."""

from __future__ import annotations

import pytest

from modgap.runtime import claim_gpu, local_gpu_count


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
