"""Runs that cannot be lost: one writer per --out, stale staging removed, umask followed.

No test here races two processes: the lock is taken in this process and the
second writer is a call made while it is held.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys

import pytest

import tabresnet
from tabresnet.errors import ConfigError

TINY = dict(num_blocks=[1], c_hidden=[8], max_epochs=1, progress="none", report=False)


def _host() -> str:
    return "".join(c for c in socket.gethostname() if c.isalnum())[:32] or "host"


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_second_writer_of_the_same_out_fails_clearly(regression_frame, tmp_path):
    from tabresnet.rundir_lock import RunDirLock

    out = tmp_path / "run"
    with RunDirLock(out):
        with pytest.raises(ConfigError, match=r"run is being written by another tabresnet "
                                              rf"process \(pid {os.getpid()} .*choose another --out"):
            tabresnet.fit(regression_frame, "y", out=out, **TINY)
    assert not out.exists()
    # Released: the same call now writes the run and leaves no lock behind.
    tabresnet.fit(regression_frame, "y", out=out, **TINY)
    assert (out / "model.json").is_file()
    assert not (tmp_path / ".run.lock").exists()


def test_the_out_check_runs_again_under_the_lock(tmp_path):
    """A run that another process finished while this one trained is not replaced."""
    from tabresnet.rundir_lock import RunDirLock, open_run
    from tabresnet.training.fit import _check_out

    out = tmp_path / "run"
    _check_out(out, overwrite=False)  # empty when this run started
    out.mkdir()
    (out / "model.json").write_text("{}")  # ... then the other run landed there
    with pytest.raises(ConfigError, match="not empty"):
        open_run(out, check=lambda: _check_out(out, False, probe_lock=False))
    RunDirLock(out).acquire().release()  # the failed attempt let go of the lock
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # and made no staging folder


def test_a_lock_file_left_by_a_killed_run_does_not_block(regression_frame, tmp_path):
    (tmp_path / ".run.lock").write_text(f"{_dead_pid()} {_host()}\n")
    tabresnet.fit(regression_frame, "y", out=tmp_path / "run", **TINY)
    assert (tmp_path / "run" / "model.json").is_file()
    assert not (tmp_path / ".run.lock").exists()


def test_distributed_workers_do_not_compete_for_rank_0s_lock(tmp_path, monkeypatch):
    from tabresnet.rundir_lock import RunDirLock, open_run

    out = tmp_path / "run"
    with RunDirLock(out):
        monkeypatch.setenv("LOCAL_RANK", "1")
        lock, staging = open_run(out)
        assert staging.is_dir()
        lock.release()  # not held: a no-op
        monkeypatch.setenv("LOCAL_RANK", "0")
        with pytest.raises(ConfigError, match="being written"):
            open_run(out)


def test_staging_folders_of_dead_runs_are_removed(regression_frame, tmp_path):
    dead = tmp_path / f".run.staging-{_host()}-{_dead_pid()}-0badc0de"
    alive = tmp_path / f".run.staging-{_host()}-{os.getppid()}-0badc0de"
    other_host = tmp_path / f".run.staging-elsewhere{_host()}-{_dead_pid()}-0badc0de"
    other_run = tmp_path / f".other.staging-{_host()}-{_dead_pid()}-0badc0de"
    for d in (dead, alive, other_host, other_run):
        d.mkdir()
        (d / "history.csv").write_text("epoch\n")
    tabresnet.fit(regression_frame, "y", out=tmp_path / "run", **TINY)
    assert not dead.exists()
    assert alive.is_dir() and other_host.is_dir() and other_run.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["run"]


def test_a_killed_fit_leaves_a_staging_folder_the_next_run_removes(regression_frame, tmp_path):
    """The staging folder of a fit that dies carries its pid; the next fit removes it."""
    csv = tmp_path / "d.csv"
    regression_frame.to_csv(csv, index=False)
    code = (
        "import importlib, os, tabresnet\n"
        "f = importlib.import_module('tabresnet.training.fit')\n"
        "f.write_run = lambda *a, **k: os._exit(9)  # die while the run is being written\n"
        f"tabresnet.fit({str(csv)!r}, 'y', out={str(tmp_path / 'run')!r}, num_blocks=[1],"
        " c_hidden=[8], max_epochs=1, progress='none', report=False)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == 9
    left = [p for p in tmp_path.iterdir() if ".staging-" in p.name]
    assert len(left) == 1
    tabresnet.fit(regression_frame, "y", out=tmp_path / "run", **TINY)
    assert not left[0].exists()


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def test_run_files_follow_the_umask(regression_frame, tmp_path):
    # In a fresh process: a umask is set once per process, and libraries such as
    # fsspec (Lightning's checkpoint writer) read it once and cache it.
    csv = tmp_path / "d.csv"
    regression_frame.to_csv(csv, index=False)
    out = tmp_path / "run"
    # The command as a shell with that umask starts it.
    cmd = [sys.executable, "-m", "tabresnet.cli", "fit", str(csv), "--target", "y", "--out",
           str(out), "--num-blocks", "1", "--c-hidden", "8", "--max-epochs", "1",
           "--progress", "none", "--no-report"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    assert subprocess.run(cmd, env=env, umask=0o027, capture_output=True).returncode == 0
    modes = {str(p.relative_to(out)): stat.S_IMODE(p.stat().st_mode) for p in out.rglob("*")}
    assert stat.S_IMODE(out.stat().st_mode) == 0o750
    assert modes["model.json"] == modes["model.safetensors"] == 0o640
    wrong = {
        name: oct(mode)
        for name, mode in modes.items()
        if mode != (0o750 if (out / name).is_dir() else 0o640)
    }
    assert not wrong


def test_a_saved_model_follows_the_umask(regression_frame, tmp_path, umask_027):
    run = tabresnet.fit(regression_frame, "y", **TINY)
    run.model.save(tmp_path / "m")
    for name in ("model.json", "model.safetensors"):
        assert stat.S_IMODE((tmp_path / "m" / name).stat().st_mode) == 0o640


def test_a_fit_that_fails_on_its_data_creates_no_folder(regression_frame, tmp_path):
    from tabresnet.errors import DataError

    with pytest.raises(DataError):
        tabresnet.fit(regression_frame, "nope", out=tmp_path / "new" / "run", **TINY)
    assert list(tmp_path.iterdir()) == []
