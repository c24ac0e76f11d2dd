"""Train a population: many configurations at once as one packed network.

:class:`PopulationTrainer` holds up to ``k`` members (each a full run config,
trained as in :func:`tabresnet.training.train_network`) in one
:class:`~tabresnet.models.population.PopulationNetwork` and trains them epoch by
epoch in one forward and backward pass per batch:

* each member sees its own row permutation (``TensorBatches(members=k)``;
  member slot 0 sees the permutation a single ``fit`` sees);
* each member has its own loss term (the members' losses are summed, so each
  member's gradient is that of its own loss), its own optimiser state, step
  count, learning rate, weight decay, schedule and gradient clipping
  (:class:`MemberOptimizer`: the pack's weights and moments are one
  ``(members, n)`` buffer each, a member's update one fused call on its row);
* members of one width share a pack (their depths are gated); each width has
  its own pack, so that no member computes a wider one's padding, and wide
  members (:data:`SPLIT_DEPTHS_AT`) have one pack per depth too;
* each member has its own early stopping (patience), best epoch and best
  weights, kept in a plain network of its own configuration;
* a member whose loss turns NaN or inf leaves the loss at once and ends at
  the end of the epoch as diverged; the others train on;
* weighted rows (``--weight``) weigh each member's loss and validation RMSE
  as ``fit`` weighs its own.

A caller (the population tuner) adds members between epochs and ends them
(pruning); the pack is rebuilt to the new members' widths and depths when
they change, keeping the running members' weights and optimiser state.

Shared by a pack (one value for all members): the optimiser kind, the batch
size, the loss and the patience and epoch limit; the model options of
:data:`~tabresnet.models.population.SHARED_OPTIONS`.

With one member, its training is the one ``train_network`` gives: the same
initial weights (the member network is built the same way after seeding),
the same batches, the same update (torch's fused AdamW, Adam or SGD kernel,
called per member here), the same early stopping and
schedules -- equal predictions within float tolerance
(``tests/test_tuning_population.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.optim.adam import adam
from torch.optim.adamw import adamw
from torch.optim.sgd import sgd

from ..data import TensorBatches
from ..defaults import RunConfig, by_table_size, resolve_threads, torch_threads
from ..models.population import PopulationNetwork, block_key, pack_layout
from .loop import EVAL_BATCH, build_network, split_tensors
from .prepare import Prepared

__all__ = ["Member", "MemberOptimizer", "PopulationTrainer", "SPLIT_DEPTHS_AT"]

# Members of one width but different depths share a pack (the shallower skip the
# deeper's last blocks, computing them anyway) unless batch * width**2 reaches this:
# 32 rows at width 256, 128 rows at width 128 -- products large enough that the
# wasted blocks cost more than one more pack's per-step overhead (measured with
# bench/population_throughput.py on two CPU cores).
SPLIT_DEPTHS_AT = 2**21


@dataclass(eq=False)
class Member:
    """One configuration in the pack, its schedule and its best epoch so far.

    ``key`` is the caller's handle (the tuner's Optuna trial). ``network`` is a
    plain network of the member's configuration holding its best weights (the
    initial ones until a validation improves on infinity).
    """

    config: RunConfig
    key: Any = None
    overrides: dict = field(default_factory=dict)  # the options the search set
    network: torch.nn.Module | None = None
    epochs: int = 0
    steps: int = 0
    lr: float = 0.0
    best: float = math.inf
    best_epoch: int = -1
    wait: int = 0
    last_rmse: float = math.inf
    diverged: bool = False
    history: list = field(default_factory=list)
    val_pred: torch.Tensor | None = None  # (N_val, n_out) at the best epoch, transformed units
    plateau: dict = field(default_factory=lambda: {"best": math.inf, "bad": 0})

    @property
    def stopped_early(self) -> bool:
        """Patience ran out or the epoch limit is reached."""
        t = self.config.train
        return self.wait >= t.patience or self.epochs >= t.max_epochs

    def history_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.history, columns=["epoch", "train_loss", "val_loss", "val_rmse"])


class MemberOptimizer:
    """AdamW, Adam or SGD (Nesterov momentum 0.9) over stacked member tensors.

    Every parameter has the member dimension first. The parameters are made
    views of one ``(k, n)`` buffer (member ``i``'s weights in row ``i``), and so
    are the moments and the gathered gradients, so that one update of member
    ``i`` is one call of torch's fused optimiser on row ``i`` (its functional
    form, ``torch.optim.adamw.adamw`` and friends), whatever the number of
    tensors. Each member has its own learning rate, weight decay, gradient
    clipping (as ``clip_grad_norm_``), step count and moments: one member's
    steps are ``fit``'s (``AdamW``, ``Adam``, ``SGD`` with ``momentum=0.9,
    nesterov=True``) within float rounding.
    """

    BETAS, EPS, MOMENTUM = (0.9, 0.999), 1e-8, 0.9

    def __init__(self, kind: str, params: Sequence[tuple[str, torch.Tensor]], k: int):
        if kind not in ("adamw", "adam", "sgd"):
            raise ValueError(f"unknown optimizer {kind!r}; valid names are: adam, adamw, sgd")
        self.kind, self.k = kind, int(k)
        self.params = [(n, p) for n, p in params]
        sizes = [p[0].numel() for _, p in self.params]
        self.offsets = [0, *np.cumsum(sizes).tolist()]
        first = self.params[0][1] if self.params else torch.zeros(0)
        self.flat = torch.zeros(self.k, self.offsets[-1], dtype=first.dtype, device=first.device)
        with torch.no_grad():
            for (_, p), a, b in zip(self.params, self.offsets, self.offsets[1:]):
                view = self.flat[:, a:b].view(p.shape)
                view.copy_(p)
                p.data = view  # the module keeps its Parameter; its storage is now the buffer's
        self.index = {n: j for j, (n, _) in enumerate(self.params)}
        # Each member's step count, a tensor: the fused Adam(W) call counts it in place.
        self.steps = [torch.zeros((), dtype=torch.float32) for _ in range(self.k)]
        if kind == "sgd":
            self.moments = [torch.zeros_like(self.flat)]  # the momentum buffer
            self.names = ("momentum_buffer",)
        else:
            self.moments = [torch.zeros_like(self.flat), torch.zeros_like(self.flat)]
            self.names = ("exp_avg", "exp_avg_sq")
        self.grad: torch.Tensor | None = None

    def _view(self, t: torch.Tensor, i: int, j: int) -> torch.Tensor:
        shape = self.params[j][1].shape[1:]
        return t[i, self.offsets[j] : self.offsets[j + 1]].view(shape)

    def member_state(self, i: int, name: str) -> dict | None:
        """Slot ``i``'s optimiser state for parameter ``name`` (None before its first step)."""
        if float(self.steps[i]) == 0.0:
            return None
        j = self.index[name]
        out = {"step": self.steps[i].clone()}
        for key, t in zip(self.names, self.moments):
            out[key] = self._view(t, i, j)
        return out

    def set_member_state(self, i: int, name: str, state: dict) -> None:
        j = self.index[name]
        with torch.no_grad():
            self.steps[i].fill_(float(state["step"]))
            for key, t in zip(self.names, self.moments):
                self._view(t, i, j).copy_(state[key])

    def _gather(self) -> torch.Tensor:
        """Every member's gradient as one ``(k, n)`` tensor (zeros where none)."""
        if self.grad is None:
            self.grad = torch.cat([
                p.grad.reshape(self.k, -1) if p.grad is not None
                else torch.zeros(self.k, b - a, dtype=self.flat.dtype)
                for (_, p), a, b in zip(self.params, self.offsets, self.offsets[1:])], 1)
        return self.grad

    @torch.no_grad()
    def clip(self, max_norms: Sequence[float]) -> None:
        """Scale each member's gradient to norm at most ``max_norms[i]`` (0: no clipping)."""
        if not any(m > 0 for m in max_norms) or not self.params:
            return
        g = self._gather()
        norms = g.pow(2).sum(1, keepdim=True).sqrt()
        limit = torch.tensor([float(m) for m in max_norms], dtype=g.dtype).view(-1, 1)
        coef = torch.where(limit > 0, (limit / (norms + 1e-6)).clamp(max=1.0), 1.0)
        g.mul_(coef)

    @torch.no_grad()
    def step(self, lrs: Sequence[float], weight_decays: Sequence[float],
             active: Sequence[bool]) -> None:
        """One update of the ``active`` members; the others keep their weights and moments."""
        if not self.params:
            return
        g = self._gather()
        for i in range(self.k):
            if not active[i]:
                continue
            lr, wd = float(lrs[i]), float(weight_decays[i])
            if self.kind == "sgd":
                started = float(self.steps[i]) > 0
                bufs = [self.moments[0][i] if started else None]
                sgd([self.flat[i]], [g[i]], bufs, fused=True, weight_decay=wd,
                    momentum=self.MOMENTUM, lr=lr, dampening=0.0, nesterov=True,
                    maximize=False)
                if not started:
                    self.moments[0][i].copy_(bufs[0])
                self.steps[i] += 1.0
                continue
            update = adamw if self.kind == "adamw" else adam
            update([self.flat[i]], [g[i]], [self.moments[0][i]], [self.moments[1][i]], [],
                   [self.steps[i]], fused=True, amsgrad=False, beta1=self.BETAS[0],
                   beta2=self.BETAS[1], lr=lr, weight_decay=wd, eps=self.EPS, maximize=False)

    def zero_grad(self) -> None:
        for _, p in self.params:
            p.grad = None
        self.grad = None


def _member_losses(name: str, delta: float, pred: torch.Tensor, y: torch.Tensor,
                   w: torch.Tensor | None = None) -> torch.Tensor:
    """Each member's loss ``(k,)`` from ``(B, k, out)``: the mean over rows and targets.

    ``w``, ``(B, k)`` or ``(B, 1)``: row weights of mean 1, as ``fit`` weighs its loss
    (``mean(w * row loss)``; :class:`~tabresnet.training.loop.TensorDataModule`).
    """
    if name == "mse":
        e = F.mse_loss(pred, y, reduction="none")
    elif name == "mae":
        e = F.l1_loss(pred, y, reduction="none")
    elif name == "huber":
        e = F.huber_loss(pred, y, reduction="none", delta=delta)
    else:
        raise ValueError(f"unknown loss {name!r}; valid names are: huber, mae, mse")
    e = e.mean(dim=2)
    return (e if w is None else e * w).mean(dim=0)


class PopulationTrainer:
    """Up to ``slots`` members trained side by side, one epoch per :meth:`run_epoch`.

    Parameters
    ----------
    prepared : Prepared
        The split every member trains on (train) and is scored on (val).
    base : RunConfig
        The pack's shared options: the optimiser kind, batch size, loss,
        seed (the row permutations) and threads.
    slots : int
        Members at most.
    """

    def __init__(self, prepared: Prepared, base: RunConfig, slots: int):
        if int(slots) < 1:
            raise ValueError(f"a population needs at least one slot, however: {slots=}")
        self.prepared, self.base, self.slots = prepared, base, int(slots)
        t = base.train
        self.batch_size = by_table_size(t, len(prepared.train))[0]
        self.members: list[Member] = []  # their order: their columns in the batches
        self.packs: dict[tuple, _Pack] = {}
        self._fresh: set[int] = set()  # members not in a pack yet
        self.epoch = 0  # the pack's epochs: the row permutations' clock
        self.trained = 0  # members that trained in the last epoch
        self.threads = resolve_threads(t.num_threads)
        tr = prepared.train
        n = len(tr)
        self._drop_last = n % self.batch_size == 1  # BatchNorm needs two rows
        self._scale = torch.tensor([float(s) for s in prepared.target_scale])

    # -- members in and out ------------------------------------------------------------------
    @property
    def active(self) -> list[tuple[int, Member]]:
        """``(column, member)``: the members training, by their column in the batches."""
        return list(enumerate(self.members))

    @property
    def free(self) -> int:
        return self.slots - len(self.members)

    def add(self, config: RunConfig, key: Any = None) -> Member:
        """A new member of ``config`` (initialised as ``fit`` would with ``config.seed``)."""
        if self.free <= 0:
            raise RuntimeError("the population is full")
        self._check_shared(config)
        # Patience by table size where 0, as fit resolves it.
        config = config.replace(patience=by_table_size(config.train, len(self.prepared.train))[1])
        # As train_network: seed, then build, so the initial weights are fit's.
        L.seed_everything(config.seed, workers=False, verbose=False)
        network = build_network(config.replace(ensemble_size=1), self.prepared)
        member = Member(config=config, key=key, network=network, lr=float(config.train.lr))
        self.members.append(member)
        self._fresh.add(id(member))
        return member

    def _check_shared(self, config: RunConfig) -> None:
        t, b = config.train, self.base.train
        for name in ("optimizer", "batch_size", "loss", "huber_delta"):
            if getattr(t, name) != getattr(b, name):
                raise ValueError(f"the members of a pack need the same {name}, however: "
                                 f"{getattr(b, name)!r} and {getattr(t, name)!r}")
        if t.ema_decay > 0:
            raise ValueError("a pack does not keep moving averages; set ema_decay=0")

    def end(self, member: Member) -> None:
        """Take ``member`` out (finished, pruned or failed); its place is free."""
        self.members.remove(member)
        self._fresh.discard(id(member))

    # -- the packs ------------------------------------------------------------------------------
    def _arrange(self) -> None:
        """One pack per width (and depth, if wide): rebuild the packs whose members changed.

        Members of one width share a pack (their depths are gated); members of
        different widths train in separate packs, so that no member pays for a
        wider one's padding (:meth:`_pack_key`). Unchanged packs are kept.
        """
        groups: dict[tuple, list[Member]] = {}
        for m in self.members:
            groups.setdefault(self._pack_key(m.config.model), []).append(m)
        packs = {}
        for key, members in groups.items():
            old = self.packs.get(key)
            if old is not None and [id(m) for m in old.members] == [id(m) for m in members]:
                packs[key] = old
                continue
            configs = [m.config.model for m in members]
            widths, blocks = pack_layout(configs)
            net = PopulationNetwork(configs, *_dims(self.prepared), widths=widths, blocks=blocks)
            opt = MemberOptimizer(self.base.train.optimizer, _params(net), net.k)
            moved: dict[int, int] = {}
            if old is not None:
                where = {id(m): i for i, m in enumerate(old.members)}
                moved = {j: where[id(m)] for j, m in enumerate(members)
                         if id(m) in where and id(m) not in self._fresh}
                if moved:
                    _copy_slots(old.network, net, moved, old.optimizer, opt)
            for j, m in enumerate(members):
                if j in moved:
                    net.configure_member(j, m.config.model)
                else:
                    net.load_member(j, m.network, m.config.model)
            packs[key] = _Pack(members, net, opt)
        self.packs = packs
        self._fresh.clear()

    def _pack_key(self, model) -> tuple:
        """The pack a member of ``model`` trains in: its widths, and its depths if wide.

        A shallower member computes its pack's gated blocks and throws them
        away. Where one block's products are large (:data:`SPLIT_DEPTHS_AT`
        multiply-adds per row batch and Linear) that waste costs more than a
        pack's fixed per-step costs save, so members of different depths train
        in separate packs; small networks share one pack per width.
        """
        widths = tuple(int(w) for w in model.c_hidden)
        if self.batch_size * max(widths) ** 2 >= SPLIT_DEPTHS_AT:
            return widths, tuple(int(b) for b in model.num_blocks)
        return widths, ()

    # -- one epoch ------------------------------------------------------------------------------
    def run_epoch(self) -> list[Member]:
        """Train every member one epoch, validate, update schedules; returns the members.

        Afterwards each member's ``last_rmse``, ``best``, ``wait``,
        ``diverged`` and ``history`` are current; ending members is the
        caller's (:meth:`end`).
        """
        if not self.members:
            return []
        with torch_threads(self.threads):
            self._arrange()
            sums, n = self._train_epoch()
            self._validate(sums, n)
        self.epoch += 1
        self.trained = len(self.members)
        return list(self.members)

    def _columns(self) -> list[tuple[_Pack, torch.Tensor | None]]:
        column = {id(m): j for j, m in enumerate(self.members)}
        out = []
        for pack in self.packs.values():
            cols = [column[id(m)] for m in pack.members]
            whole = cols == list(range(len(self.members)))
            out.append((pack, None if whole else torch.tensor(cols)))
        return out

    def _train_epoch(self) -> tuple[torch.Tensor, float]:
        k = len(self.members)
        tr = self.prepared.train
        batches = TensorBatches(split_tensors(tr, normalise=True), batch_size=self.batch_size,
                                shuffle=True, seed=self.base.seed, drop_last=self._drop_last,
                                members=k)
        # fit's Trainer takes one iterator of the batches before training (its check of
        # the loader), so its epoch e uses permutation e + 1: follow it, so that a
        # member in column 0 sees the batches fit sees.
        batches.set_epoch(self.epoch + 1)
        t = self.base.train
        packs = self._columns()
        alive = {id(p): torch.tensor([not m.diverged for m in p.members]) for p, _ in packs}
        sums, rows = torch.zeros(k), 0.0
        for pack, _ in packs:
            pack.network.train()
        for x_num, x_cat, y, *weight in batches:
            w = weight[0] if weight else None  # (B, k): each member's rows' weights
            if k == 1:
                x_num, x_cat, y = x_num.unsqueeze(1), x_cat.unsqueeze(1), y.unsqueeze(1)
                w = w.unsqueeze(1) if w is not None else None
            total = None
            results = []
            for pack, cols in packs:
                xn, xc, yy = (x_num, x_cat, y) if cols is None else (
                    x_num[:, cols], x_cat[:, cols], y[:, cols])
                ww = w if w is None or cols is None else w[:, cols]
                losses = _member_losses(t.loss, t.huber_delta, pack.network(xn, xc), yy, ww)
                finite = torch.isfinite(losses.detach())
                use = alive[id(pack)] & finite
                term = torch.where(use, losses, torch.zeros_like(losses)).sum()
                total = term if total is None else total + term
                results.append((pack, cols, losses.detach(), use))
            for pack, _ in packs:
                pack.optimizer.zero_grad()
            total.backward()
            for pack, cols, losses, use in results:
                opt, members = pack.optimizer, pack.members
                opt.clip([m.config.train.gradient_clip for m in members])
                for i, m in enumerate(members):
                    if bool(use[i]):
                        m.steps += 1
                    else:
                        m.diverged = True
                alive[id(pack)] = use
                opt.step([m.lr for m in members], [m.config.train.weight_decay for m in members],
                         [bool(u) for u in use])
                if cols is None:
                    sums += losses * y.shape[0]
                else:
                    sums[cols] += losses * y.shape[0]
            rows += y.shape[0]
        return sums, rows

    @torch.no_grad()
    def _validate(self, sums: torch.Tensor, rows: float) -> None:
        va = self.prepared.val
        t = self.base.train
        y = va.y.unsqueeze(1)
        # Weighted rows: each member's loss and RMSE are weighted means, as fit's are.
        w_val = split_tensors(va, normalise=True)[3][:, None] if va.weight is not None else None
        train_loss = sums / max(rows, 1.0)
        column = {id(m): j for j, m in enumerate(self.members)}
        for pack in self.packs.values():
            net = pack.network.eval()
            pred = torch.cat([net(va.x_num[i : i + EVAL_BATCH], va.x_cat[i : i + EVAL_BATCH])
                              for i in range(0, len(va), EVAL_BATCH)])  # (N, k, out)
            val_loss = _member_losses(t.loss, t.huber_delta, pred, y.expand_as(pred), w_val)
            se = (pred - y) ** 2 if w_val is None else (pred - y) ** 2 * w_val[..., None]
            mse = se.sum(0) / len(va) * self._scale**2
            rmse = torch.sqrt(mse).mean(-1)  # over targets: the mean RMSE, as the metrics'
            for i, m in enumerate(pack.members):
                value = float(rmse[i]) if math.isfinite(float(rmse[i])) else math.inf
                tl = float(train_loss[column[id(m)]])
                m.diverged = m.diverged or not math.isfinite(tl)
                m.history.append({"epoch": m.epochs, "train_loss": tl,
                                  "val_loss": float(val_loss[i]), "val_rmse": value})
                m.last_rmse = value
                if value < m.best:  # as BestWeights and EarlyStopping: a strict improvement
                    m.best, m.best_epoch, m.wait = value, m.epochs, 0
                    m.network = net.member_network(i, m.config.model, into=m.network)
                    m.val_pred = pred[:, i].clone()
                else:
                    m.wait += 1
                m.epochs += 1
                self._schedule(m, value)

    def _schedule(self, m: Member, rmse: float) -> None:
        t = m.config.train
        if t.scheduler == "plateau":  # torch's ReduceLROnPlateau(factor=0.5, patience=4)
            p = m.plateau
            if rmse < p["best"] * (1 - 1e-4):
                p["best"], p["bad"] = rmse, 0
            else:
                p["bad"] += 1
            if p["bad"] > 4:
                new = max(m.lr * 0.5, 0.0)
                if m.lr - new > 1e-8:
                    m.lr = new
                p["bad"] = 0
        elif t.scheduler == "cosine":  # torch's CosineAnnealingLR, stepped once per epoch
            e, T = m.epochs, max(t.max_epochs, 1)
            m.lr = (1 + math.cos(math.pi * e / T)) / (1 + math.cos(math.pi * (e - 1) / T)) * m.lr

    def predictions(self, member: Member) -> np.ndarray:
        """``member``'s validation predictions at its best epoch, in target units."""
        z = member.val_pred.double().numpy()
        return self.prepared.preprocessor.inverse_target(z)


def _dims(prepared: Prepared) -> tuple:
    pre = prepared.preprocessor
    return pre.n_num, list(pre.cardinalities), len(prepared.targets), pre.n_cont


def _params(net: PopulationNetwork) -> list[tuple[str, torch.Tensor]]:
    return [(n, p) for n, p in net.net.named_parameters()]


@dataclass(eq=False)
class _Pack:
    """Members of one width, their packed network and optimiser."""

    members: list
    network: PopulationNetwork
    optimizer: MemberOptimizer


@torch.no_grad()
def _copy_slots(old: PopulationNetwork, new: PopulationNetwork, moved: dict[int, int],
                old_opt: MemberOptimizer, new_opt: MemberOptimizer) -> None:
    """Running members' tensors (and optimiser state) from ``old``'s slots into ``new``'s."""
    dst = dict(new.member_tensors())
    shared = dict(new.net.named_buffers())
    src_all = dict(old.net.named_parameters()) | dict(old.net.named_buffers())
    old_params = {n for n, _ in old_opt.params}
    new_params = {n for n, _ in new_opt.params}
    for key, t in src_all.items():
        target = block_key(key, old.blocks, new.blocks)
        if target is None:
            continue
        if target in dst:
            d = dst[target]
            region = tuple(slice(0, min(a, b)) for a, b in zip(d.shape[1:], t.shape[1:]))
            for j, i in moved.items():
                d[j][region] = t[i][region]
                state = old_opt.member_state(i, key) if key in old_params else None
                if state is None or target not in new_params:
                    continue
                fresh = {}
                for name, value in state.items():
                    if name == "step" or value.dim() == 0:
                        fresh[name] = value.clone()
                    else:
                        grown = torch.zeros_like(d[j])
                        grown[region] = value[region]
                        fresh[name] = grown
                new_opt.set_member_state(j, target, fresh)
        elif target in shared and shared[target].shape == t.shape and key.startswith(
                "numeric."):
            shared[target].copy_(t)  # the PLE bins
