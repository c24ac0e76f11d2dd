"""tabresnet.tuning.workers: a worker at the trial count waits for the others' trials."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from tabresnet.defaults import RunConfig
from tabresnet.tuning import SearchSpace
from tabresnet.tuning import objective as objective_mod
from tabresnet.tuning import workers as workers_mod

TINY = dict(max_epochs=4, num_blocks=[1], c_hidden=[8], batch_size=32, progress="none")
SPACE = """
lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
optimizer: [adamw, sgd]
gradient_clip: {type: float, low: 0.5, high: 2.0, when: {optimizer: sgd}}
"""



def test_a_worker_at_the_trial_count_waits_for_the_trials_others_are_running(monkeypatch):
    study = optuna.create_study()
    for _ in range(2):
        study.add_trial(optuna.trial.create_trial(value=1.0))
    other = study.ask()  # another worker's trial, still running when the count is reached
    other.set_user_attr("worker", "elsewhere:4242")
    spec = workers_mod.WorkerSpec(
        data=None, target="y", base=RunConfig().to_dict(), space_text=SPACE,
        space_source="<test>", storage=None, study_name=study.study_name, sampler="random",
        pruner="none", n_trials=2,
    )
    # The worker polls while the other trial runs; that trial ends at its first wait.
    monkeypatch.setattr(workers_mod.time, "sleep", lambda s: study.tell(other, 0.5))
    objective = objective_mod.Objective([], RunConfig(), SearchSpace.from_yaml(SPACE))
    assert workers_mod.run_worker(spec, objective, study) == 0  # no trial of its own
    assert study.trials[-1].state == TrialState.COMPLETE  # it ended after the other's trial


def test_workers_of_one_sqlite_study_count_and_create_trials_one_at_a_time(tmp_path):
    import fcntl

    url = f"sqlite:///{tmp_path / 'study.db'}"
    lock = workers_mod._CreationLock(url)
    other = open(tmp_path / "study.db.lock")  # another worker's handle on the same lock
    try:
        lock.acquire()
        with pytest.raises(BlockingIOError):  # held: the other worker waits
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock.release()  # released once the trial exists (Objective.on_start)
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(other, fcntl.LOCK_UN)
    finally:
        other.close()
        lock.close()
    assert workers_mod._CreationLock(None)._file is None  # in memory: one worker, no lock


def test_a_trial_that_ends_while_the_worker_counts_is_not_replaced(monkeypatch):
    # The race behind 7 trials of 6: the worker read the finished trials, another
    # worker's trial completed, then it read the running ones and found neither.
    study = optuna.create_study()
    study.add_trial(optuna.trial.create_trial(value=1.0))
    other = study.ask()  # another worker's trial: the study's second and last
    other.set_user_attr("worker", "elsewhere:4242")
    spec = workers_mod.WorkerSpec(
        data=None, target="y", base=RunConfig().to_dict(), space_text=SPACE,
        space_source="<test>", storage=None, study_name=study.study_name, sampler="random",
        pruner="none", n_trials=2,
    )
    armed = {"on": False}
    real_acquire = workers_mod._CreationLock.acquire
    real_get = optuna.Study.get_trials

    def acquire(self):  # the count starts: the next read is the one raced
        armed["on"] = True
        real_acquire(self)

    def get_trials(self, *args, **kwargs):
        trials = real_get(self, *args, **kwargs)
        if armed["on"]:
            armed["on"] = False
            if other.number in {t.number for t in real_get(self, deepcopy=False)
                                if t.state == TrialState.RUNNING}:
                self.tell(other, 0.5)  # it completes right after this read
        return trials

    monkeypatch.setattr(workers_mod._CreationLock, "acquire", acquire)
    monkeypatch.setattr(optuna.Study, "get_trials", get_trials)
    monkeypatch.setattr(workers_mod.time, "sleep", lambda s: None)
    objective = objective_mod.Objective([], RunConfig(), SearchSpace.from_yaml(SPACE))
    assert workers_mod.run_worker(spec, objective, study) == 0  # it started no trial
    assert len(study.trials) == 2


def test_commands_sharing_a_named_storage_draw_different_trials(monkeypatch):
    from tabresnet.tuning import workers as w

    # Two commands on two machines: both rank 0, one --seed, the same trial count.
    alone = {w._sampler_seed(0, 0, 5, shared=False) for _ in range(2)}
    assert len(alone) == 1  # a run directory's own study stays reproducible
    seeds = set()
    for pid in (101, 202):
        monkeypatch.setattr(w.os, "getpid", lambda pid=pid: pid)
        seeds.add(w._sampler_seed(0, 0, 5, shared=True))
    assert len(seeds) == 2


def test_stop_flag_takes_one_ctrl_c_delivered_twice_as_one(monkeypatch):
    import os
    import signal

    clock = iter([100.0, 100.01, 105.0])  # the second signal 10 ms after the first
    monkeypatch.setattr(objective_mod.time, "monotonic", lambda: next(clock))
    flag = objective_mod.StopFlag()
    with flag:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)  # timeout -s INT: to the process and its group
        assert flag.requested
        with pytest.raises(KeyboardInterrupt):  # a real second press, seconds later
            os.kill(os.getpid(), signal.SIGINT)


def test_stop_flag_after_an_interrupt_aborts_on_the_next_signal():
    import os
    import signal

    with objective_mod.StopFlag(abort=True), pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
