"""tabresnet tune across processes: --jobs, a worker killed with SIGKILL, Ctrl-C (SIGINT).

Each test starts real processes (``python -m tabresnet.cli tune``, or the
workers of ``--jobs``), so each costs the start-up of torch and Lightning; the
trials are tiny models on 100 rows. Ctrl-C is SIGINT sent to this process while
tune (or the CLI's ``main``) runs here, which is what a terminal sends it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from tabresnet.cli import main
from tabresnet.tuning import quiet_optuna, tune

# Real processes: each pays the start-up of torch and Lightning. One xdist worker
# runs them all, so the fork server the first --jobs test starts serves the next.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("tune-processes")]

SPACE = "lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}\n"
TINY = ["--num-blocks", "1", "--c-hidden", "8", "--batch-size", "32", "--num-threads", "1",
        "--progress", "none", "--no-report", "--sampler", "random", "--pruner", "none",
        "--cv", "0"]


@pytest.fixture
def csv(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=100), "b": rng.normal(size=100)})
    df["y"] = 3 * df.a - df.b + rng.normal(scale=0.1, size=100)
    path = tmp_path / "table.csv"
    df.to_csv(path, index=False)
    (tmp_path / "space.yaml").write_text(SPACE)
    return path


def start(csv: Path, out: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "tabresnet.cli", "tune", str(csv), "--target", "y",
           "--space", str(csv.parent / "space.yaml"), "--out", str(out), *TINY, *extra]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)


def trials(out: Path) -> list[optuna.trial.FrozenTrial]:
    db = out / "tuning" / "study.db"
    if not db.is_file():
        return []
    try:
        with quiet_optuna():
            return optuna.load_study(study_name="table-y", storage=f"sqlite:///{db}").trials
    except Exception:  # not created yet, or locked for a moment
        return []


# Only a guard against a hung process: far longer than any of these steps takes
# on a loaded two-core machine, so no result depends on the machine's speed.
HANG_GUARD = 600.0


def wait_for(condition, proc: subprocess.Popen, timeout: float = HANG_GUARD) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        if proc.poll() is not None:
            pytest.fail(f"tune exited early ({proc.returncode}):\n{proc.stdout.read()}")
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"timed out waiting:\n{proc.stdout.read()}")


def interrupt_when(condition) -> threading.Event:
    """Send SIGINT to this process, once, when ``condition()`` holds (polled in a
    thread); the returned event is set just before. Only while tune runs can the
    conditions used here hold, and tune's handler takes the signal."""
    sent = threading.Event()

    def watch() -> None:
        deadline = time.time() + HANG_GUARD
        while time.time() < deadline:
            if condition():
                sent.set()
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.2)

    threading.Thread(target=watch, daemon=True).start()
    return sent


def states(ts):
    return [t.state for t in ts]


def test_killed_worker_loses_only_its_trial_and_ctrl_c_keeps_the_rest(csv, tmp_path, capsys):
    out = tmp_path / "run"
    slow = ["--max-epochs", "40", "--patience", "40"]  # trials of a second or two

    # 1. A worker killed with SIGKILL mid-trial.
    proc = start(csv, out, "--trials", "100", *slow)
    wait_for(lambda: (s := states(trials(out))).count(TrialState.COMPLETE) >= 1
             and s[-1] == TrialState.RUNNING, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=HANG_GUARD)
    proc.stdout.close()
    before = trials(out)
    killed = before[-1]
    assert killed.state == TrialState.RUNNING  # left behind by the dead process
    done_before = {t.number: t.value for t in before if t.state == TrialState.COMPLETE}

    # 2. Resume (the CLI in this process): the lost trial is failed with a
    # reason; then Ctrl-C (SIGINT to this process, tune's handler takes it)
    # stops cleanly.
    def ready() -> bool:
        s = states(trials(out))
        return s.count(TrialState.COMPLETE) >= len(done_before) + 1 and s[-1] == TrialState.RUNNING

    sent = interrupt_when(ready)
    code = main(["tune", str(csv), "--target", "y", "--space", str(csv.parent / "space.yaml"),
                 "--out", str(out), *TINY, "--trials", "100", *slow])
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert sent.is_set() and code == 0, output
    assert "(interrupted)" in output and "run directory" in output

    after = trials(out)
    by_number = {t.number: t for t in after}
    assert by_number[killed.number].state == TrialState.FAIL
    reasons = pd.read_csv(out / "tuning" / "trials.csv").set_index("number")["fail_reason"]
    assert "ended (killed or crashed)" in reasons[killed.number]
    interrupted = after[-1]
    assert interrupted.state == TrialState.FAIL
    assert interrupted.user_attrs["fail_reason"] == "interrupted (SIGINT) before it finished"
    assert TrialState.RUNNING not in states(after)
    # Finished trials survive both, unchanged.
    assert {n: by_number[n].value for n in done_before} == done_before
    assert (out / "model.json").is_file() and (out / "tuning" / "trials.csv").is_file()


def test_jobs_share_one_study_and_the_trial_count(csv, tmp_path):
    out = tmp_path / "run"
    result = tune(str(csv), "y", trials=6, jobs=2, cv=0, space=str(csv.parent / "space.yaml"),
                  out=out, max_epochs=3, num_blocks=[1], c_hidden=[8], batch_size=32,
                  sampler="random", pruner="none", progress="none")
    all_trials = result.study.trials
    assert result.n_trials == len(all_trials) == 6  # none lost, none surplus
    assert all(t.state == TrialState.COMPLETE for t in all_trials)
    workers = {t.user_attrs["worker"] for t in all_trials}
    # Both worker processes share the study; with trials this small one of them
    # may finish all six before the other has imported torch, so only the
    # parent's absence is certain (test_ctrl_c_stops_all_jobs_cleanly sees both).
    assert 1 <= len(workers) <= 2 and f":{os.getpid()}" not in " ".join(workers)
    # The workers' trials ran in other processes, their networks gone with them:
    # the best configuration is retrained, and calibrated as fit's model is.
    assert result.metrics["tuning"]["retrained"] is True
    assert result.model.calibration is not None and "intervals" in result.metrics
    table = pd.read_csv(out / "tuning" / "trials.csv")
    assert sorted(table["number"]) == list(range(6))


def test_ctrl_c_stops_all_jobs_cleanly(csv, tmp_path):
    # tune runs here (its workers are other processes); Ctrl-C is SIGINT to this
    # process only, as a terminal's would reach the parent: it must stop the
    # workers. The CLI's side of Ctrl-C is the test above.
    out = tmp_path / "run"
    sent = interrupt_when(lambda: (s := states(trials(out))).count(TrialState.COMPLETE) >= 2
                          and s.count(TrialState.RUNNING) == 2)
    result = tune(str(csv), "y", trials=100, jobs=2, cv=0, space=str(csv.parent / "space.yaml"),
                  out=out, max_epochs=40, patience=40, num_blocks=[1], c_hidden=[8],
                  batch_size=32, sampler="random", pruner="none", progress="none",
                  num_threads=1)
    assert sent.is_set() and result.interrupted
    after = trials(out)
    assert TrialState.RUNNING not in states(after)
    stopped = [t for t in after if t.state == TrialState.FAIL]
    assert len(stopped) <= 2  # a worker between two trials just stops
    assert all(t.user_attrs["fail_reason"] == "interrupted (stop sent by tune) before it finished"
               for t in stopped)
    assert len({t.user_attrs["worker"] for t in after}) == 2
    assert (out / "model.json").is_file()
