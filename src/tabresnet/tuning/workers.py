"""The workers: run trials of a shared study until it holds its count, here or in worker processes.

A worker runs trials until the study holds ``n_trials`` finished ones
(complete or pruned, counting those of earlier runs and of the other workers;
failed trials do not count), the deadline passes, or it is asked to stop.
Counting and creating a trial happen under a lock shared by the workers of
one SQLite study, so two of them cannot both take the last place (workers on
several machines, sharing PostgreSQL, may each take it in a tie).
"""

from __future__ import annotations

import fcntl
import logging
import multiprocessing
import os
import signal
import socket
import time
import zlib
from collections import Counter
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from ..defaults import RunConfig
from ..training.bag import make_folds
from . import quiet_optuna
from .objective import MAX_CONSECUTIVE_FAILURES, Objective, StopFlag, TrialFailed, worker_id
from .space import SearchSpace
from .study import (
    FINISHED,
    fail_lost_trials,
    make_pruner,
    make_sampler,
    open_study,
)

__all__ = ["WorkerSpec", "attach_search", "available_cores", "run_parallel", "run_worker"]

log = logging.getLogger("tabresnet.tuning")

POLL_SECONDS = 0.5


@dataclass
class WorkerSpec:
    """Everything a worker process needs (picklable: it is sent to the worker process)."""

    data: Any
    target: Any
    base: dict
    space_text: str
    space_source: str
    storage: str | None
    study_name: str
    sampler: Any
    pruner: Any
    n_trials: int
    deadline: float | None = None
    cv: int = 0
    val_data: Any = None
    test_data: Any = None
    shared: bool = False  # a storage the user named: other processes may join the study


class _CreationLock:
    """A file lock beside an SQLite study, held from counting the trials until one is created."""

    def __init__(self, url: str | None):
        path = url[len("sqlite:///"):] + ".lock" if url and url.startswith("sqlite:///") else None
        self._file = open(path, "a") if path else None  # noqa: SIM115 - closed in close()
        self._held = False

    def acquire(self) -> None:
        if self._file is not None and not self._held:
            fcntl.flock(self._file, fcntl.LOCK_EX)
        self._held = True

    def release(self) -> None:
        if self._file is not None and self._held:
            fcntl.flock(self._file, fcntl.LOCK_UN)
        self._held = False

    def close(self) -> None:
        self.release()
        if self._file is not None:
            self._file.close()


def _sampler_seed(seed: int, rank: int, existing: int, shared: bool = False) -> int:
    # Distinct per worker and per resumed session: workers with one seed would
    # propose the same random start-up points. On a storage other commands may
    # share (--storage: other machines, other terminals, each rank 0 with the same
    # --seed, started together so seeing the same trial count) the host and the
    # process tell them apart; such a study is not reproducible trial by trial anyway.
    mixed = int(seed) * 1_000_003 + rank * 7_919 + existing
    if shared:
        mixed += zlib.crc32(f"{socket.gethostname()}:{os.getpid()}".encode())
    return mixed % (2**31 - 1)


def attach_search(
    study: optuna.Study, sampler: Any, pruner: Any, base: RunConfig, rank: int = 0,
    shared: bool = False,
) -> None:
    """Give ``study`` this worker's sampler (seeded per worker and session) and pruner.

    ``shared``: the study's storage was named by the user, so other commands
    may draw from the same study at the same time (see :func:`_sampler_seed`).
    """
    existing = len(study.get_trials(deepcopy=False))
    study.sampler = make_sampler(sampler, _sampler_seed(base.seed, rank, existing, shared))
    study.pruner = make_pruner(pruner, base.train.max_epochs)


def run_worker(
    spec: WorkerSpec, objective: Objective, study: optuna.Study, rank: int = 0
) -> int:
    """Run trials of the shared study until it is done; returns how many this worker ran.

    Once the study holds ``spec.n_trials`` finished trials, the worker waits
    for the trials other workers were running at that moment (a dead worker's
    trial is failed as lost), so that every worker ends on the same study.
    """
    base, stop = objective.base, objective.stop
    attach_search(study, spec.sampler, spec.pruner, base, rank, spec.shared)
    lock = _CreationLock(spec.storage)
    objective.on_start = lock.release
    ran = failures = 0
    # The other workers' trials still running when the study reached its count:
    # waited for, so that every worker retrains the same best. Only those: a
    # worker with a larger --trials may go on starting new ones.
    finishing: set[int] | None = None
    try:
        with quiet_optuna():
            while not stop.requested:
                fail_lost_trials(study)
                lock.acquire()
                # One read for both numbers: read apart, a trial that completes in
                # between is in neither, and one trial too many would start.
                snapshot = study.get_trials(deepcopy=False)
                counts = Counter(t.state for t in snapshot)
                done = sum(counts[s] for s in FINISHED)
                running = {t.number for t in snapshot if t.state == TrialState.RUNNING}
                if done >= spec.n_trials:
                    lock.release()
                    finishing = running if finishing is None else finishing & running
                    if not finishing:
                        break
                    time.sleep(POLL_SECONDS)
                    continue
                # Past the deadline no trial starts, unless the study has no complete
                # one yet (worker start-up may eat a short budget): tune needs a best.
                if spec.deadline is not None and time.time() >= spec.deadline and counts[
                    TrialState.COMPLETE
                ]:
                    break
                if done + len(running) >= spec.n_trials:
                    # The others' running trials fill the study; one may yet fail.
                    lock.release()
                    time.sleep(POLL_SECONDS)
                    continue
                study.optimize(objective, n_trials=1, catch=(TrialFailed,))
                lock.release()
                ran += 1
                failures = failures + 1 if objective.last_failed else 0
                if failures >= MAX_CONSECUTIVE_FAILURES and not stop.requested:
                    log.error("worker %s stops: its last %d trials failed "
                              "(see fail_reason in trials.csv)", worker_id(), failures)
                    break
    finally:
        lock.close()
    return ran


def _worker_main(spec: WorkerSpec, rank: int, threads: int) -> None:
    """Entry point of a worker process: SIGUSR1 (or SIGTERM) stops it cleanly."""
    # Ctrl-C reaches the whole process group; the parent alone decides and
    # forwards SIGUSR1, so one key press is one stop request, not two. SIGUSR1
    # rather than SIGTERM: Lightning turns SIGTERM into SystemExit mid-fit.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch

    torch.set_num_threads(max(1, threads))
    stop = StopFlag().install((signal.SIGUSR1, signal.SIGTERM))
    base = RunConfig.from_dict(spec.base)
    folds = make_folds(spec.data, spec.target, base, spec.val_data, spec.test_data, spec.cv)
    space = SearchSpace.from_yaml(spec.space_text, spec.space_source)
    objective = Objective(folds, base, space, stop, deadline=spec.deadline)
    run_worker(spec, objective, open_study(spec.storage, spec.study_name), rank)


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def _context() -> multiprocessing.context.BaseContext:
    """Where worker processes come from: a fork server that imported this module.

    The server imports the training stack (torch, Lightning, scikit-learn:
    about 8 s of CPU) once, then forks each worker from that state, so ``jobs``
    workers start in milliseconds instead of importing it ``jobs`` times. A
    fork server rather than a fork of the caller: the server forks before any
    thread of torch or of the caller exists. Where there is no fork server
    (Windows), workers are spawned.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():  # pragma: no cover
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])  # no effect once the server runs
    return ctx


def run_parallel(spec: WorkerSpec, jobs: int, stop: StopFlag, threads: int) -> None:
    """Run ``jobs`` worker processes on the shared study and wait for them.

    The first stop request sends each worker SIGUSR1 (it fails its running
    trial as interrupted and exits); a second one (KeyboardInterrupt)
    terminates them.
    """
    ctx = _context()
    procs = [ctx.Process(target=_worker_main, args=(spec, rank, threads),
                         name=f"tune-worker-{rank}") for rank in range(jobs)]

    def forward() -> None:
        for p in procs:
            if p.pid is not None and p.is_alive():
                os.kill(p.pid, signal.SIGUSR1)

    stop.on_request.append(forward)
    try:
        for p in procs:
            p.start()
        for p in procs:
            p.join()  # a signal runs its handler (forward) and the join goes on
        bad = [f"{p.name} ({p.exitcode})" for p in procs if p.exitcode != 0]
        if bad and not stop.requested:
            log.warning("worker(s) exited abnormally: %s", ", ".join(bad))
    finally:
        stop.on_request.remove(forward)
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
                p.join()
