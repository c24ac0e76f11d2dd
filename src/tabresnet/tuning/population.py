"""Tune a population at once: ``tabresnet tune DATA --target y --pack 16``.

P configurations train side by side as one packed network
(:class:`~tabresnet.training.population.PopulationTrainer`). Optuna drives
them by ask-and-tell: each member is a trial of the study (same storage,
sampler and pruner as sequential ``tune``), asked for when a slot is free,
reporting its validation RMSE every epoch, and told when it ends -- COMPLETE
with its best RMSE after its own early stopping, PRUNED when the pruner says
so (or at the time limit), FAIL when its loss diverged. Its slot is then
refilled with a new trial while the budget (``--trials``, counting every
finished trial of the study, and ``--timeout``) lasts.

What a pack shares
    The options of :data:`PACK_OPTIONS` (the block kind, norm, activation,
    number of groups, shortcut, embeddings; the optimiser kind, batch size
    and loss) are one value per pack: the module tree and the batches are
    one. They are fixed at the run config's values (``fit``'s defaults unless
    set) and the space's entries for them are left out of the study's space;
    widths, depths, dropout, init, learning rate, weight decay, schedule and
    gradient clipping are searched per member. Members are single networks
    (``ensemble_size=1``): the population's ensemble is chosen at the end.

The saved model
    Greedy ensemble selection with replacement (Caruana et al., "Ensemble
    Selection from Libraries of Models", ICML 2004) over the best finished
    members' validation predictions: start from the best member, add the
    member that lowers the ensemble's validation RMSE most (a member may be
    added again), for :data:`SELECTION_ROUNDS` rounds, and keep the best
    ensemble seen. The chosen members and their weights (how often each was
    added, over the rounds) are saved as one model file
    (:class:`~tabresnet.models.MeanEnsemble` with weights).
    ``ensemble=False`` keeps the single best member.

>>> import numpy as np
>>> y = np.array([[0.0], [1.0], [2.0], [3.0]])
>>> preds = [y + 1.0, y - 1.0, y + 0.5]     # two thirds of +0.5 and one of -1 cancel
>>> weights, rmse = greedy_selection(preds, y)
>>> [round(w, 2) for w in weights], round(rmse, 3)
([0.0, 0.33, 0.67], 0.0)
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from ..defaults import RunConfig
from ..models.population import SHARED_OPTIONS
from ..training import Prepared
from ..training.population import Member, PopulationTrainer
from .objective import CONFIG, FAIL_REASON, StopFlag, worker_id
from .space import SearchSpace
from .study import FINISHED, Heartbeat, count_trials

__all__ = [
    "PACK_OPTIONS",
    "PopulationRun",
    "auto_pack",
    "budget_pack",
    "greedy_selection",
    "member_space",
    "run_population",
]

log = logging.getLogger("tabresnet.tuning")

# Options one pack shares; the model's, the number of groups, and the train options
# the batches and the optimiser's kind depend on.
PACK_OPTIONS = (*SHARED_OPTIONS, "n_groups", "optimizer", "batch_size", "loss", "huber_delta",
                "ema_decay", "ensemble_size", "ensemble")
# Candidates kept for the ensemble: the best finished members (by validation RMSE),
# their networks and validation predictions in memory.
ENSEMBLE_CANDIDATES = 32
SELECTION_ROUNDS = 50


def auto_pack(rows: int) -> int:
    """``--pack auto``: members at once by the table's rows (small steps gain most from packing).

    With a time limit this is the most; :func:`budget_pack` sizes the waves.

    >>> auto_pack(500), auto_pack(20_000), auto_pack(500_000)
    (16, 8, 4)
    """
    if rows <= 5_000:
        return 16
    return 8 if rows <= 100_000 else 4


# --pack auto with a time limit: members at once such that, at the speed measured so
# far, a wave of them ends within 1/WAVE_SHARE of the time left; the first wave,
# before any measurement, has FIRST_WAVE members at most (one epoch later the pack
# grows: on a small table at once, on a large one only as far as the time allows).
WAVE_SHARE = 2.0
FIRST_WAVE = 2


def budget_pack(pack: int, remaining: float, member_epoch_seconds: float,
                member_epochs: float) -> int:
    """Members at once for ``--pack auto`` under a time limit: a wave must end in time.

    ``P`` members of ``member_epochs`` epochs each at ``member_epoch_seconds``
    per member and epoch take ``P * member_epochs * member_epoch_seconds``
    seconds; ``P`` is the largest (at most ``pack``, at least 1) for which that
    is at most ``remaining / WAVE_SHARE``. A large pack on a short budget would
    otherwise have all its members cut at the time limit, none finished.

    >>> budget_pack(16, remaining=600, member_epoch_seconds=0.05, member_epochs=32)
    16
    >>> budget_pack(16, remaining=20, member_epoch_seconds=0.05, member_epochs=32)
    6
    >>> budget_pack(16, remaining=10, member_epoch_seconds=0.5, member_epochs=32)
    1
    """
    if member_epoch_seconds <= 0 or member_epochs <= 0:
        return int(pack)
    fits = remaining / WAVE_SHARE / (member_epochs * member_epoch_seconds)
    return int(max(1, min(int(pack), math.floor(fits))))


def member_space(space: SearchSpace) -> tuple[SearchSpace, list[str]]:
    """The space a pack's members are sampled from, and the entries left out (pack options)."""
    keep = [e for e in space.entries if e.name not in PACK_OPTIONS]
    dropped = [e.name for e in space.entries if e.name in PACK_OPTIONS]
    return SearchSpace(keep, text=space.text, source=space.source), dropped


def greedy_selection(
    preds: Sequence[np.ndarray], y: np.ndarray, rounds: int = SELECTION_ROUNDS
) -> tuple[list[float], float]:
    """Caruana's greedy ensemble selection with replacement.

    Parameters
    ----------
    preds : sequence of ndarray (N, n_targets)
        Each candidate's validation predictions, in target units.
    y : ndarray (N, n_targets)
    rounds : int
        Members added at most (the first is the best single candidate).

    Returns
    -------
    weights : list of float
        One per candidate, summing to 1 (how often it was added, of the best
        ensemble's additions).
    rmse : float
        The chosen ensemble's validation RMSE (root of the mean over targets).
    """
    if not preds:
        raise ValueError("ensemble selection needs at least one candidate")
    stack = np.stack([np.asarray(p, dtype=np.float64) for p in preds])  # (m, N, t)
    y = np.asarray(y, dtype=np.float64)

    def rmse(p: np.ndarray) -> np.ndarray:  # over the last two axes
        return np.sqrt(np.mean(np.mean((p - y) ** 2, axis=-2), axis=-1))

    counts = np.zeros(len(preds))
    total = np.zeros_like(y)
    best_counts, best_rmse = counts, math.inf
    for r in range(max(int(rounds), 1)):
        scores = rmse((total + stack) / (r + 1))
        scores = np.where(np.isfinite(scores), scores, np.inf)
        j = int(np.argmin(scores))
        counts = counts.copy()
        counts[j] += 1
        total = total + stack[j]
        if scores[j] < best_rmse - 1e-12:
            best_counts, best_rmse = counts, float(scores[j])
    weights = best_counts / best_counts.sum()
    return [float(w) for w in weights], best_rmse


@dataclass
class Finished:
    """A COMPLETE member kept as an ensemble candidate."""

    number: int
    value: float
    config: RunConfig
    overrides: dict
    network: Any
    val_pred: np.ndarray  # target units
    history: Any


@dataclass
class PopulationRun:
    """What :func:`run_population` leaves: the candidates and what it did."""

    candidates: list[Finished] = field(default_factory=list)
    asked: int = 0
    epochs: int = 0
    timed_out: bool = False
    peak: int = 0  # the most members that trained at once


def _config_error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def run_population(
    study: optuna.Study,
    space: SearchSpace,
    base: RunConfig,
    prepared: Prepared,
    pack: int,
    n_trials: int,
    deadline: float | None = None,
    stop: StopFlag | None = None,
    on_epoch: Callable[[PopulationTrainer], None] | None = None,
    clock: Callable[[], float] = time.time,
    size_to_budget: bool = False,
) -> PopulationRun:
    """Train the study's trials ``pack`` at a time until it holds ``n_trials`` finished ones.

    Parameters
    ----------
    study : optuna.Study
        Its sampler and pruner are used as they are.
    space : SearchSpace
        The member space (:func:`member_space`).
    base : RunConfig
        The pack options and the options the space leaves alone.
    prepared : Prepared
        Train and validation splits.
    pack : int
        Members at once.
    n_trials : int
        Finished (complete or pruned) trials the study should hold, other
        workers' and earlier runs' included.
    deadline : float, optional
        ``clock()`` time after which no member starts and the running ones
        stop at the end of the pack's epoch: told PRUNED (user attribute
        ``stopped``) and kept as ensemble candidates; if the study holds no
        complete trial yet, the best of them is told COMPLETE instead (user
        attribute ``ended``).
    stop : StopFlag, optional
        Ctrl-C: running members are failed as interrupted, no new one starts.
    on_epoch : callable, optional
        Called after each of the pack's epochs (tests use it to stop a run).
    clock : callable
        ``time.time`` by default (the deadline's scale).
    size_to_budget : bool
        With a ``deadline`` (``--pack auto``): run at most :data:`FIRST_WAVE`
        members before the first epoch's speed is known, then at most
        :func:`budget_pack` of them (up to ``pack``), so that the members
        started finish before the time limit; freed slots are refilled up to
        that number. Members already running are never stopped for it.

    Returns
    -------
    PopulationRun
    """
    stop = stop or StopFlag()
    trainer = PopulationTrainer(prepared, base, pack)
    run = PopulationRun()
    me = worker_id()
    have_complete = bool(count_trials(study)[TrialState.COMPLETE])
    # Members are asked, not optimized: their heartbeats are ours to send, so that
    # another machine's worker can fail them if this process dies.
    heart = Heartbeat(study)

    def time_up() -> bool:
        return deadline is not None and clock() >= deadline and have_complete

    speed: dict[str, float] = {}  # seconds per member-epoch, measured
    ended_epochs: list[int] = []  # epochs of the members that ended on their own

    def capacity() -> int:
        if not size_to_budget or deadline is None:
            return pack
        if "member_epoch" not in speed:
            return min(pack, FIRST_WAVE)
        t = base.train
        expected = (float(np.mean(ended_epochs)) if len(ended_epochs) >= 3
                    else min(t.max_epochs, 2 * t.patience))
        return budget_pack(pack, deadline - clock(), speed["member_epoch"], expected)

    def fill() -> None:
        while (trainer.free > 0 and len(trainer.members) < capacity() and not stop.requested
               and not time_up()):
            counts = count_trials(study)
            done = sum(counts[s] for s in FINISHED)
            running = counts[TrialState.RUNNING]
            if done + running >= n_trials:
                return
            with warnings.catch_warnings():
                # Optuna's heartbeat thread belongs to Study.optimize; lost members are
                # failed by fail_lost_trials (same machine) instead.
                warnings.filterwarnings("ignore", message=".*Heartbeat of storage.*")
                trial = study.ask()
            heart.add(trial.number)
            run.asked += 1
            trial.set_user_attr("worker", me)
            trial.set_user_attr("pack", int(pack))
            try:
                config, overrides = space.sample(trial, base)
                member = trainer.add(config, key=trial)
            except (ValueError, TypeError) as exc:
                reason = f"invalid config: {_config_error(exc)}"
                trial.set_user_attr(FAIL_REASON, reason)
                heart.discard(trial.number)
                study.tell(trial, state=TrialState.FAIL)
                log.warning("trial %d failed: %s", trial.number, reason)
                continue
            member.overrides = overrides
            trial.set_user_attr(CONFIG, overrides)

    def finish(member: Member, state: TrialState, **attrs: Any) -> None:
        trial = member.key
        heart.discard(trial.number)
        trial.set_user_attr("epochs", int(member.epochs))
        for k, v in attrs.items():
            trial.set_user_attr(k, v)
        if state == TrialState.COMPLETE:
            study.tell(trial, member.best)
            _keep(run, trial.number, member, trainer)
        else:
            study.tell(trial, state=state)
        trainer.end(member)

    with heart:
        fill()
        while trainer.active:
            started = clock()
            members = trainer.run_epoch()
            run.epochs += 1
            run.peak = max(run.peak, len(members))
            for m in members:
                trial = m.key
                if stop.requested:
                    trial.set_user_attr(FAIL_REASON, f"{stop.reason or 'interrupted'} before it finished")
                    finish(m, TrialState.FAIL)
                    continue
                if m.diverged:
                    reason = f"diverged: the training loss became NaN or inf (epoch {m.epochs - 1})"
                    trial.set_user_attr(FAIL_REASON, reason)
                    finish(m, TrialState.FAIL)
                    continue
                if math.isfinite(m.last_rmse):
                    trial.report(m.last_rmse, step=m.epochs - 1)
                    if trial.should_prune():
                        ended_epochs.append(m.epochs)
                        finish(m, TrialState.PRUNED)
                        continue
                if m.stopped_early:
                    ended_epochs.append(m.epochs)
                    finish(m, TrialState.COMPLETE)
                    have_complete = True
            if deadline is not None and clock() >= deadline and trainer.members:
                # At the time limit the running members stop. Their best epochs are real
                # models: they stay ensemble candidates. Without a complete trial yet
                # (a short budget, a large pack) the best of them completes, so that
                # the study has a best, as a sequential trial's early stop would.
                scored = [m for m in trainer.members if math.isfinite(m.best)]
                if scored and not have_complete:
                    lead = min(scored, key=lambda m: m.best)
                    finish(lead, TrialState.COMPLETE, ended="time limit")
                    have_complete = True
                if have_complete:
                    run.timed_out = True
                    for m in list(trainer.members):
                        if math.isfinite(m.best):
                            _keep(run, m.key.number, m, trainer)
                        finish(m, TrialState.PRUNED, stopped="time limit")
            if on_epoch is not None:
                on_epoch(trainer)
            # This epoch's seconds per member (the tells and the callback included), smoothed.
            now = (clock() - started) / max(len(members), 1)
            prev = speed.get("member_epoch")
            speed["member_epoch"] = now if prev is None else 0.5 * (prev + now)
            fill()
    return run


def _keep(run: PopulationRun, number: int, member: Member, trainer: PopulationTrainer) -> None:
    """Keep ``member`` as an ensemble candidate if it is among the best finished."""
    if member.val_pred is None or not math.isfinite(member.best):
        return
    run.candidates.append(Finished(
        number=number, value=float(member.best), config=member.config,
        overrides=dict(member.overrides), network=member.network,
        val_pred=trainer.predictions(member), history=member.history_frame(),
    ))
    run.candidates.sort(key=lambda f: f.value)
    del run.candidates[ENSEMBLE_CANDIDATES:]
