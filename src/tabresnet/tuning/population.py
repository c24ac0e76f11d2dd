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
    ``pack_ensemble=False`` keeps the single best member.

With cross-validation (``tune --pack P --cv K``)
    Each trial is ``K`` members, one per fold (``make_folds(...,
    shared=True)``: one preprocessing fitted on every non-test row), trained
    in ``K`` trainers in lockstep and ended together (pruned, failed) or
    each on its own patience; the trial's value is the mean of the folds'
    best RMSEs, as a sequential ``tune --cv`` trial's. The selection then
    runs on out-of-fold predictions (every non-test row predicted by the
    trial's network that did not train on it, each at its best epoch), and
    the saved model holds each chosen trial's ``K`` fold networks, weight
    ``w / K`` each, with CV+ intervals.

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
import pandas as pd
from optuna.trial import TrialState

from ..defaults import RunConfig, by_table_size
from ..models.population import SHARED_OPTIONS
from ..training import Prepared
from ..training.population import Member, PopulationTrainer
from .objective import CONFIG, MAX_CONSECUTIVE_FAILURES, StopFlag, worker_id
from .results import FAIL_REASON
from .space import SearchSpace
from .study import FINISHED, Heartbeat, count_trials

__all__ = [
    "PACK_OPTIONS",
    "PopulationRun",
    "auto_pack",
    "budget_pack",
    "greedy_selection",
    "member_space",
    "oof_targets",
    "oof_weights",
    "run_population",
]

log = logging.getLogger("tabresnet.tuning")

# Options one pack shares; the model's, the number of groups, and the train options
# the batches and the optimiser's kind depend on.
PACK_OPTIONS = (*SHARED_OPTIONS, "n_groups", "optimizer", "batch_size", "loss", "huber_delta",
                "ema_decay", "ensemble_size", "ensemble")
# Candidates kept for the ensemble: the best finished trials (by their value), their
# networks (K of them with K folds) and validation (out-of-fold) predictions in memory.
ENSEMBLE_CANDIDATES = 32
SELECTION_ROUNDS = 50


def auto_pack(rows: int) -> int:
    """``--pack auto``: members at once by the table's rows (small steps gain most from packing).

    With a time limit this is the most; :func:`budget_pack` sizes the waves.
    With ``K`` folds it is the number of trials, so that each fold's pack
    holds this many members (``K`` times the networks in all).

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
    preds: Sequence[np.ndarray], y: np.ndarray, rounds: int = SELECTION_ROUNDS,
    weights: np.ndarray | None = None,
) -> tuple[list[float], float]:
    """Caruana's greedy ensemble selection with replacement.

    Parameters
    ----------
    preds : sequence of ndarray (N, n_targets)
        Each candidate's validation predictions, in target units.
    y : ndarray (N, n_targets)
    rounds : int
        Members added at most (the first is the best single candidate).
    weights : ndarray (N,), optional
        Row weights (``--weight``): the RMSE is then a weighted mean over rows,
        as every other score of a weighted run.

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
    counts = np.zeros(len(preds))
    total = np.zeros_like(y)
    best_counts, best_rmse = counts, math.inf
    for r in range(max(int(rounds), 1)):
        scores = _rmse((total + stack) / (r + 1), y, weights)
        scores = np.where(np.isfinite(scores), scores, np.inf)
        j = int(np.argmin(scores))
        counts = counts.copy()
        counts[j] += 1
        total = total + stack[j]
        if scores[j] < best_rmse - 1e-12:
            best_counts, best_rmse = counts, float(scores[j])
    return [float(c) for c in best_counts / best_counts.sum()], best_rmse


@dataclass
class Finished:
    """A COMPLETE trial kept as an ensemble candidate.

    ``networks`` holds its network at its best epoch, or with folds one per
    fold (fold order), each at its own best epoch. ``val_pred`` holds its
    predictions of the validation rows, or with folds its out-of-fold
    predictions: fold ``i``'s held-out rows by its fold-``i`` network, the
    folds one after another (:func:`oof_targets`' order).
    """

    number: int
    value: float  # the study's value: validation RMSE, or the mean of the folds'
    config: RunConfig
    overrides: dict
    networks: list
    val_pred: np.ndarray  # target units
    history: Any
    oof_rmse: float = math.nan  # with folds: the RMSE of val_pred over every pool row

    @property
    def network(self) -> Any:
        """The network of a trial scored on the validation split."""
        return self.networks[0]


@dataclass
class PopulationRun:
    """What :func:`run_population` leaves: the candidates and what it did."""

    candidates: list[Finished] = field(default_factory=list)
    asked: int = 0
    epochs: int = 0
    timed_out: bool = False
    peak: int = 0  # the most trials that trained at once


@dataclass(eq=False)
class _Running:
    """A trial in the population: its member per fold (one without folds)."""

    trial: Any
    members: list[Member]
    alive: list[bool]  # which members still train (a fold member ends on its own patience)
    steps: int = 0  # epochs reported

    @property
    def epochs(self) -> int:
        return max(m.epochs for m in self.members)

    def score(self) -> float:
        """This epoch's value: the mean over folds of each member's RMSE.

        A member still training gives its latest epoch's, one that ended its
        best (its final score).
        """
        values = [m.last_rmse if a else m.best for m, a in zip(self.members, self.alive)]
        return float(np.mean(values))

    @property
    def value(self) -> float:
        """The trial's value: its (mean over folds of the) best validation RMSE."""
        return float(np.mean([m.best for m in self.members]))


def _config_error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def oof_targets(folds: Sequence[Prepared]) -> np.ndarray:
    """The true values in :class:`Finished` ``val_pred``'s row order, in target units.

    One split: its validation rows; folds: each fold's held-out rows, fold
    after fold (every pool row once).
    """
    return np.concatenate([f.val.y_raw for f in folds])


def oof_weights(folds: Sequence[Prepared]) -> np.ndarray | None:
    """The row weights in :func:`oof_targets`' order, or None for unweighted rows."""
    if folds[0].val.weight is None:
        return None
    return np.concatenate([f.val.weight for f in folds])


def _rmse(pred: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """The mean over targets of the (weighted) root mean squared error, as the metrics'.

    ``pred`` is ``(..., N, n_targets)``: one score per leading index (a scalar array
    for one prediction; one per candidate for greedy selection's stack).
    """
    se = (np.asarray(pred, np.float64) - y) ** 2
    return np.mean(np.sqrt(np.average(se, axis=-2, weights=weights)), axis=-1)


def run_population(
    study: optuna.Study,
    space: SearchSpace,
    base: RunConfig,
    prepared: Prepared | Sequence[Prepared],
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
    prepared : Prepared or sequence of Prepared
        Train and validation splits; or ``K`` cross-validation folds sharing
        one preprocessing (``make_folds(..., shared=True)``). With folds each
        trial trains one member per fold, in ``K`` trainers run in lockstep:
        its value per epoch (for the pruner) is the mean of its members'
        validation RMSEs (a member that stopped gives its best), it is told
        COMPLETE with the mean of their best RMSEs (as a sequential ``tune
        --cv`` trial; user attributes ``fold_rmse`` and ``oof_rmse``, the
        RMSE of its out-of-fold predictions over every pool row) once each
        member has stopped on its own patience, PRUNED (every member ends),
        or FAIL when any member diverged.
    pack : int
        Trials at once (with ``K`` folds, ``pack * K`` member networks).
    n_trials : int
        Finished (complete or pruned) trials the study should hold, other
        workers' and earlier runs' included.
    deadline : float, optional
        ``clock()`` time after which no trial starts and the running ones
        stop at the end of the pack's epoch: told PRUNED (user attribute
        ``stopped``) and kept as ensemble candidates; if the study holds no
        complete trial yet, the best of them is told COMPLETE instead (user
        attribute ``ended``).
    stop : StopFlag, optional
        Ctrl-C: running trials are failed as interrupted, no new one starts.
    on_epoch : callable, optional
        Called after each of the pack's epochs with the (first fold's)
        trainer (tests use it to stop a run).
    clock : callable
        ``time.time`` by default (the deadline's scale).
    size_to_budget : bool
        With a ``deadline`` (``--pack auto``): run at most :data:`FIRST_WAVE`
        trials before the first epoch's speed is known, then at most
        :func:`budget_pack` of them (up to ``pack``; a trial of ``K`` folds
        costs ``K`` member-epochs an epoch), so that the trials started
        finish before the time limit; freed slots are refilled up to that
        number. Trials already running are never stopped for it.

    Returns
    -------
    PopulationRun
    """
    stop = stop or StopFlag()
    folds = [prepared] if isinstance(prepared, Prepared) else list(prepared)
    if not folds:
        raise ValueError("run_population needs a prepared split or at least one fold")
    trainers = [PopulationTrainer(f, base, pack) for f in folds]
    running: list[_Running] = []
    run = PopulationRun()
    me = worker_id()
    y_oof = oof_targets(folds) if len(folds) > 1 else None
    w_oof = oof_weights(folds) if len(folds) > 1 else None
    have_complete = bool(count_trials(study)[TrialState.COMPLETE])
    # Members are asked, not optimized: their heartbeats are ours to send, so that
    # another machine's worker can fail them if this process dies.
    heart = Heartbeat(study)

    def time_up() -> bool:
        return deadline is not None and clock() >= deadline and have_complete

    speed: dict[str, float] = {}  # seconds per member-epoch, measured
    ended_epochs: list[int] = []  # epochs of the trials that ended on their own

    def capacity() -> int:
        if not size_to_budget or deadline is None:
            return pack
        if "member_epoch" not in speed:
            return min(pack, FIRST_WAVE)
        t = base.train
        expected = (float(np.mean(ended_epochs)) if len(ended_epochs) >= 3
                    else min(t.max_epochs, 2 * by_table_size(t, len(folds[0].train))[1]))
        return budget_pack(pack, deadline - clock(), speed["member_epoch"] * len(folds),
                           expected)

    failures = 0  # trials failed in a row (invalid configs, divergence)

    def failed(reason: str) -> None:
        nonlocal failures
        failures += 1
        if failures == MAX_CONSECUTIVE_FAILURES:
            log.error("worker %s starts no more trials: its last %d failed (%s)",
                      me, failures, reason)

    def fill() -> None:
        while (len(running) < capacity() and not stop.requested and not time_up()
               and failures < MAX_CONSECUTIVE_FAILURES):
            counts = count_trials(study)
            done = sum(counts[s] for s in FINISHED)
            if done + counts[TrialState.RUNNING] >= n_trials:
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
            members: list[Member] = []
            try:
                config, overrides = space.sample(trial, base)
                for trainer in trainers:
                    members.append(trainer.add(config, key=trial))
            except (ValueError, TypeError) as exc:
                for trainer, m in zip(trainers, members):
                    trainer.end(m)
                reason = f"invalid config: {_config_error(exc)}"
                trial.set_user_attr(FAIL_REASON, reason)
                heart.discard(trial.number)
                study.tell(trial, state=TrialState.FAIL)
                log.warning("trial %d failed: %s", trial.number, reason)
                failed(reason)
                continue
            for m in members:
                m.overrides = overrides
            trial.set_user_attr(CONFIG, overrides)
            running.append(_Running(trial, members, [True] * len(members)))

    def finish(r: _Running, state: TrialState, **attrs: Any) -> None:
        nonlocal failures
        trial = r.trial
        if state == TrialState.FAIL:
            if not stop.requested:
                failed(str(trial.user_attrs.get(FAIL_REASON, "failed")))
        else:
            failures = 0
        heart.discard(trial.number)
        trial.set_user_attr("epochs", int(r.epochs))
        if len(folds) > 1:
            trial.set_user_attr("fold_rmse", [float(m.best) for m in r.members])
        for k, v in attrs.items():
            trial.set_user_attr(k, v)
        if state == TrialState.COMPLETE:
            kept = _keep(run, r, trainers, y_oof, w_oof)
            if kept is not None and math.isfinite(kept.oof_rmse):
                trial.set_user_attr("oof_rmse", kept.oof_rmse)
            study.tell(trial, r.value)
        else:
            study.tell(trial, state=state)
        for trainer, m, alive in zip(trainers, r.members, r.alive):
            if alive:
                trainer.end(m)
        r.alive = [False] * len(r.alive)
        running.remove(r)

    with heart:
        fill()
        while running:
            started = clock()
            trained = sum(len(trainer.run_epoch()) for trainer in trainers if trainer.members)
            run.epochs += 1
            run.peak = max(run.peak, len(running))
            for r in list(running):
                trial = r.trial
                if stop.requested:
                    trial.set_user_attr(FAIL_REASON, f"{stop.reason or 'interrupted'} before it finished")
                    finish(r, TrialState.FAIL)
                    continue
                bad = [m for m, a in zip(r.members, r.alive) if a and m.diverged]
                if bad:
                    at = bad[0].epochs - 1
                    fold = f", fold {r.members.index(bad[0]) + 1}" if len(folds) > 1 else ""
                    reason = f"diverged: the training loss became NaN or inf (epoch {at}{fold})"
                    trial.set_user_attr(FAIL_REASON, reason)
                    finish(r, TrialState.FAIL)
                    continue
                value = r.score()
                step, r.steps = r.steps, r.steps + 1
                if math.isfinite(value):
                    trial.report(value, step=step)
                    if trial.should_prune():
                        ended_epochs.append(r.epochs)
                        finish(r, TrialState.PRUNED)
                        continue
                # A fold member that stopped on its own patience leaves its trainer.
                for i, (m, alive) in enumerate(zip(r.members, r.alive)):
                    if alive and m.stopped_early:
                        trainers[i].end(m)
                        r.alive[i] = False
                if not any(r.alive):
                    ended_epochs.append(r.epochs)
                    finish(r, TrialState.COMPLETE)
                    have_complete = True
            if deadline is not None and clock() >= deadline and running:
                # At the time limit the running trials stop. Their best epochs are real
                # models: they stay ensemble candidates. Without a complete trial yet
                # (a short budget, a large pack) the best of them completes, so that
                # the study has a best, as a sequential trial's early stop would.
                scored = [r for r in running if math.isfinite(r.value)]
                if scored and not have_complete:
                    lead = min(scored, key=lambda r: r.value)
                    finish(lead, TrialState.COMPLETE, ended="time limit")
                    have_complete = True
                if have_complete:
                    run.timed_out = True
                    for r in list(running):
                        if math.isfinite(r.value):
                            _keep(run, r, trainers, y_oof, w_oof)
                        finish(r, TrialState.PRUNED, stopped="time limit")
            if on_epoch is not None:
                on_epoch(trainers[0])
            # This epoch's seconds per member (the tells and the callback included), smoothed.
            now = (clock() - started) / max(trained, 1)
            prev = speed.get("member_epoch")
            speed["member_epoch"] = now if prev is None else 0.5 * (prev + now)
            fill()
    return run


def _keep(run: PopulationRun, r: _Running, trainers: Sequence[PopulationTrainer],
          y_oof: np.ndarray | None, w_oof: np.ndarray | None = None) -> Finished | None:
    """Keep trial ``r`` as an ensemble candidate if it is among the best finished."""
    if any(m.val_pred is None or not math.isfinite(m.best) for m in r.members):
        return None
    preds = [trainer.predictions(m) for trainer, m in zip(trainers, r.members)]
    lead = r.members[0]
    if len(r.members) == 1:
        history = lead.history_frame()
        pred, oof = preds[0], math.nan
    else:
        history = pd.concat([m.history_frame().assign(member=i)
                             for i, m in enumerate(r.members)], ignore_index=True)
        pred = np.concatenate(preds)
        oof = float(_rmse(pred, y_oof, w_oof))
    kept = Finished(
        number=r.trial.number, value=r.value, config=lead.config,
        overrides=dict(lead.overrides), networks=[m.network for m in r.members],
        val_pred=pred, history=history, oof_rmse=oof,
    )
    run.candidates.append(kept)
    run.candidates.sort(key=lambda f: f.value)
    del run.candidates[ENSEMBLE_CANDIDATES:]
    return kept
