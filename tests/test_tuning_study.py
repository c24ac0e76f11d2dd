"""tabresnet.tuning.study: storage URLs and trials lost with their worker."""

from __future__ import annotations

import time

import pytest
from optuna.trial import TrialState

from tabresnet.tuning import study as study_mod
from tabresnet.tuning.results import fail_reason
from tabresnet.tuning.study import fail_lost_trials, open_study, storage_url


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
    study._storage.record_heartbeat(trial._trial_id)
    assert fail_lost_trials(study) == []
    # ... and older than a 1 s one once 1.5 s have passed, however busy the machine.
    time.sleep(1.5)
    monkeypatch.setattr(study_mod, "GRACE_PERIOD", 1)
    study = open_study(url, "hb")
    assert fail_lost_trials(study) == [trial.number]
    frozen = study.trials[0]
    assert frozen.state == TrialState.FAIL
    assert "elsewhere:4242 sent no heartbeat" in fail_reason(frozen, study.user_attrs)
