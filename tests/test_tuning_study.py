"""tabresnet.tuning.study: storage URLs and trials lost with their worker."""

from __future__ import annotations

import threading
import time

import pytest
from optuna.trial import TrialState

from tabresnet.tuning import study as study_mod
from tabresnet.tuning.results import fail_reason
from tabresnet.tuning.study import Heartbeat, fail_lost_trials, open_study, storage_url


def test_storage_urls(tmp_path):
    assert storage_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert storage_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert storage_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert storage_url(None, tmp_path) == f"sqlite:///{tmp_path.resolve()}/tuning/study.db"
    assert storage_url(None) is None


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_a_trial_of_a_worker_without_heartbeat_is_failed(tmp_path, monkeypatch):
    # A worker on another machine: no process to look at, only its heartbeat.
    # A fresh heartbeat is far inside the default grace period (no machine
    # stalls for a minute between these lines) ...
    monkeypatch.setattr(study_mod, "HEARTBEAT_INTERVAL", 1)
    url = storage_url(tmp_path / "s.db")
    study = open_study(url, "hb")
    trial = study.ask()
    trial.set_user_attr("worker", "elsewhere:4242")
    heart = Heartbeat(study)  # as that worker's Heartbeat sends it
    heart.add(trial.number)
    heart.beat()
    assert fail_lost_trials(study) == []
    # ... and older than a 1 s one once 2.5 s have passed, however busy the machine:
    # SQLite keeps whole seconds, so 1.5 s could read as 1 s, not more than the grace.
    time.sleep(2.5)
    monkeypatch.setattr(study_mod, "GRACE_PERIOD", 1)
    study = open_study(url, "hb")
    assert fail_lost_trials(study) == [trial.number]
    frozen = study.trials[0]
    assert frozen.state == TrialState.FAIL
    assert "elsewhere:4242 sent no heartbeat" in fail_reason(frozen, study.user_attrs)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_asked_trials_get_heartbeats_from_heartbeat(tmp_path, monkeypatch):
    # A packed worker asks its trials: Optuna sends no heartbeat for them, and a
    # RUNNING trial that never had one is never failed as stale. Heartbeat sends it.
    url = storage_url(tmp_path / "s.db")
    study = open_study(url, "hb")
    beating, ended, silent = study.ask(), study.ask(), study.ask()
    for trial in (beating, ended, silent):
        trial.set_user_attr("worker", "elsewhere:4242")
    storage = study_mod._STORAGES[study]
    sent = []
    real = storage.record_heartbeat
    monkeypatch.setattr(storage, "record_heartbeat", lambda i: (sent.append(i), real(i)))
    ids = {t.number: storage.get_trial_id_from_study_id_trial_number(
        storage.get_study_id_from_name("hb"), t.number) for t in (beating, ended)}
    heart = Heartbeat(study)
    heart.add(beating.number)
    heart.add(ended.number)
    heart.discard(ended.number)  # it finished: no more beats
    heart.beat()
    assert sent == [ids[beating.number], ids[ended.number], ids[beating.number]]
    # The thread beats on its own (waited for with a hang guard, not a time limit).
    beat = threading.Event()
    monkeypatch.setattr(storage, "record_heartbeat", lambda i: (beat.set(), real(i)))
    with Heartbeat(study, interval=0.05) as threaded:
        threaded.add(beating.number)
        beat.clear()
        assert beat.wait(120)
    # Once the beats stop, another machine's worker fails both trials that had
    # them; the one that never beat stays RUNNING (Optuna cannot tell it is lost).
    time.sleep(2.5)  # more than the 1 s grace even in SQLite's whole seconds
    monkeypatch.setattr(study_mod, "GRACE_PERIOD", 1)
    study = open_study(url, "hb")
    assert sorted(fail_lost_trials(study)) == [beating.number, ended.number]
    assert study.trials[silent.number].state == TrialState.RUNNING


def test_heartbeat_on_an_in_memory_study_does_nothing():
    study = open_study(None, "mem")
    trial = study.ask()
    with Heartbeat(study, interval=0.01) as heart:
        heart.add(trial.number)
        heart.beat()
    assert study.trials[0].state == TrialState.RUNNING


def test_trials_table_says_which_pruned_trials_the_time_limit_stopped():
    import optuna
    from optuna.trial import TrialState

    from tabresnet.tuning.results import trials_frame

    study = optuna.create_study()
    for attrs in ({"stopped": "time limit"}, {}):
        study.add_trial(optuna.trial.create_trial(
            state=TrialState.PRUNED, intermediate_values={0: 1.0}, user_attrs=attrs,
            distributions={}, params={}))
    frame = trials_frame(study)
    assert list(frame["stopped"]) == ["time limit", ""]
    assert list(frame.columns)[-4:] == ["epochs", "stopped", "fail_reason", "worker"]
