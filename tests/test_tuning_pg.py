"""Workers on one PostgreSQL study: separate processes, as on separate machines.

Needs a PostgreSQL server (``TABRESNET_PG_URL``; scripts/test.sh starts one on
loopback). Skipped without one, except under CI, where that fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

import tabresnet.tuning
from tabresnet.cli import main
from tabresnet.tuning import quiet_optuna
from tabresnet.tuning.study import display_url, open_study, storage_url

pytestmark = pytest.mark.postgres

def proc_wait(proc: subprocess.Popen, seconds: float) -> None:
    """Wait up to ``seconds`` for ``proc`` to end (a poll interval, not a limit)."""
    try:
        proc.wait(seconds)
    except subprocess.TimeoutExpired:
        pass


SPACE = "lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}\n"


def test_two_workers_share_one_study_without_losing_or_repeating_a_trial(pg_url, tmp_path,
                                                                           capsys):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=100), "b": rng.normal(size=100)})
    df["y"] = 3 * df.a - df.b
    data = tmp_path / "table.csv"
    df.to_csv(data, index=False)
    (tmp_path / "space.yaml").write_text(SPACE)
    study_name = f"shared-{uuid.uuid4().hex[:8]}"
    # The plain postgresql:// form, as users write it: tune selects psycopg 3.
    url = pg_url.replace("postgresql+psycopg://", "postgresql://")
    n_trials = 8

    def args(i: int) -> list[str]:
        return ["tune", str(data), "--target", "y", "--storage", url, "--study", study_name,
                "--trials", str(n_trials), "--space", str(tmp_path / "space.yaml"),
                "--out", str(tmp_path / f"w{i}"), "--max-epochs", "3", "--num-blocks", "1",
                "--c-hidden", "8", "--num-threads", "1", "--progress", "none", "--no-report",
                "--sampler", "random", "--pruner", "none", "--cv", "0"]

    # Worker 0 in a process of its own, worker 1 in this one (sparing one import of
    # torch): worker 1 starts once worker 0 has made the study, so each has a study
    # to share; how many trials each then takes is a race.
    proc = subprocess.Popen([sys.executable, "-m", "tabresnet.cli", *args(0)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        storage = storage_url(url)
        while proc.poll() is None and study_name not in optuna.get_all_study_names(storage):
            proc_wait(proc, 0.2)
        code = main(args(1))
    finally:
        text = proc.communicate(timeout=300)[0]  # a hang guard, not a time limit
    assert proc.returncode == 0, text
    outputs = [text, capsys.readouterr().out]
    assert code == 0, outputs[1]

    with quiet_optuna():
        study = optuna.load_study(study_name=study_name, storage=storage_url(url))
    trials = study.trials
    # Numbers 0..n-1, each trial run by exactly one of the two processes, none left running.
    assert [t.number for t in trials] == list(range(len(trials)))
    assert all(t.state == TrialState.COMPLETE for t in trials)
    # --trials is the study's total: two workers stop together at 8 (a worker checks
    # before each trial, counting running ones; at most one extra in a tie).
    assert n_trials <= len(trials) <= n_trials + 1
    # Which worker runs how many is a race (one may find the study done when its
    # import ends): every trial has one of the two, none a third.
    per_worker = pd.Series([t.user_attrs["worker"] for t in trials]).value_counts()
    assert 1 <= len(per_worker) <= 2 and per_worker.sum() == len(trials)
    # Each worker retrained the study's best and wrote it into its own run directory.
    for i in range(2):
        assert (tmp_path / f"w{i}" / "model.json").is_file()
        assert f"study {study_name}: {len(trials)} complete" in outputs[i]


def test_a_packed_worker_and_a_sequential_one_share_one_study(pg_url, tmp_path):
    # Which worker takes which trial is a race; what is asserted holds whoever wins.
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"a": rng.normal(size=100), "b": rng.normal(size=100)})
    df["y"] = df.a - 2 * df.b
    data = tmp_path / "table.csv"
    df.to_csv(data, index=False)
    (tmp_path / "space.yaml").write_text(SPACE)
    study_name = f"packed-{uuid.uuid4().hex[:8]}"
    options = dict(max_epochs=3, num_blocks=[1], c_hidden=[8], ensemble_size=1, num_threads=1,
                   progress="none", sampler="random", pruner="none", cv=0)

    def packed(n_trials: int, out: str) -> None:
        tabresnet.tuning.tune(data, "y", storage=pg_url, study_name=study_name, trials=n_trials,
                              space=tmp_path / "space.yaml", out=tmp_path / out, pack=3,
                              **options)

    # The packed worker alone first: the study surely holds packed trials ...
    packed(3, "p0")
    # ... then it and a sequential worker in another process, at once.
    cmd = [sys.executable, "-m", "tabresnet.cli", "tune", str(data), "--target", "y",
           "--storage", pg_url, "--study", study_name, "--trials", "8",
           "--space", str(tmp_path / "space.yaml"), "--out", str(tmp_path / "s1"),
           "--max-epochs", "3", "--num-blocks", "1", "--c-hidden", "8",
           "--ensemble-size", "1", "--num-threads", "1", "--progress", "none",
           "--no-report", "--sampler", "random", "--pruner", "none", "--cv", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        packed(8, "p1")
    finally:
        text = proc.communicate(timeout=600)[0]  # a hang guard, not a time limit
    assert proc.returncode == 0, text
    with quiet_optuna():
        study = optuna.load_study(study_name=study_name, storage=storage_url(pg_url))
    trials = study.trials
    assert [t.number for t in trials] == list(range(len(trials)))  # none lost or repeated
    assert all(t.state == TrialState.COMPLETE for t in trials)
    # A packed worker fills its 3 slots while fewer than 8 are finished or running;
    # the sequential one takes one more at most.
    assert 8 <= len(trials) <= 8 + 3
    assert sum(t.user_attrs.get("pack") == 3 for t in trials[:3]) == 3


def test_storage_errors_are_one_line(pg_url):
    bad = pg_url.rsplit("/", 1)[0] + "/no_such_database"
    with pytest.raises(Exception, match="cannot open storage .*no_such_database") as info:
        open_study(storage_url(bad), "x")
    assert "\n" not in str(info.value)
    assert "***" in display_url("postgresql+psycopg://u:secret@h/db")
