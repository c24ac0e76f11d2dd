"""A thin LightningModule around a plain network: loss, optimiser, logging.

Each step is "unpack, forward, loss, log". The network stays a plain
``nn.Module`` (``forward(x_num, x_cat)``); hyperparameters are primitives.

An ensemble inside one network (:class:`~tabresnet.models.TabularEnsemble`)
trains on batches that carry the member dimension, ``(B, k, ...)``: the loss is
the mean of the members' losses, and validation scores the members' mean.
A batch may carry row weights as a fourth tensor (``(B,)``, or ``(B, k)``
with members): the loss is then ``mean(w * per-row loss)`` and the
validation loss and RMSE are weighted means.
With ``ema_decay > 0`` an exponential moving average of the weights is kept
beside the live ones (torch's ``AveragedModel``); it is what validation scores
and what early stopping keeps (Polyak & Juditsky 1992; the EMA of Izmailov et
al. 2018 and Morales-Brotons et al., TMLR 2024).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..defaults import point_quantile

__all__ = ["RegressionModule", "make_loss", "row_losses"]


def make_loss(name: str, huber_delta: float = 1.0, quantiles: Sequence[float] = ()):
    """``f(pred, target) -> scalar`` for ``"mse"``, ``"mae"``, ``"huber"`` or ``"quantile"``.

    ``"quantile"`` is the pinball loss (Koenker & Bassett 1978) of the sorted
    ``quantiles``: ``pred`` has ``Q = len(quantiles)`` columns per target,
    target after target (``(..., T * Q)`` against ``y`` of ``(..., T)``), and
    each column ``q`` is charged ``tau_q * (y - p)`` above and
    ``(1 - tau_q) * (p - y)`` below; the mean over all of them is returned.

    >>> import torch
    >>> f = make_loss("quantile", quantiles=[0.1, 0.9])
    >>> round(float(f(torch.zeros(1, 2), torch.ones(1, 1))), 6)   # (0.1 + 0.9) / 2
    0.5
    """
    if name == "mse":
        return F.mse_loss
    if name == "mae":
        return F.l1_loss
    if name == "huber":
        return lambda p, y: F.huber_loss(p, y, delta=huber_delta)
    if name == "quantile":
        if not quantiles:
            raise ValueError("loss 'quantile' needs quantiles, e.g. [0.1, 0.5, 0.9]")
        taus = torch.tensor(sorted(float(q) for q in quantiles), dtype=torch.float64)

        def pinball(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            tau = taus.to(pred.device, pred.dtype).repeat(y.shape[-1])  # (T * Q,)
            diff = y.repeat_interleave(len(taus), dim=-1) - pred
            return torch.maximum(tau * diff, (tau - 1) * diff).mean()

        return pinball
    raise ValueError(f"unknown loss {name!r}; valid names are: huber, mae, mse, quantile")


def row_losses(loss_fn, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The loss of each row: ``loss_fn`` (a mean over its arguments) mapped over rows.

    ``pred`` and ``y`` are ``(*rows, out)``; the result has shape ``rows``, and
    its mean is ``loss_fn(pred, y)``. Any loss of :func:`make_loss` works,
    through ``torch.vmap``, so a weighted loss needs no second definition.

    >>> pred, y = torch.tensor([[1.0], [3.0]]), torch.zeros(2, 1)
    >>> row_losses(make_loss("mse"), pred, y)
    tensor([1., 9.])
    """
    fn = loss_fn
    for _ in range(pred.dim() - 1):
        fn = torch.vmap(fn)
    return fn(pred, y)


class RegressionModule(L.LightningModule):
    """Train ``network`` on ``(x_num, x_cat, y)`` batches.

    Parameters
    ----------
    network : nn.Module
        ``forward(x_num, x_cat) -> (N, n_targets)``.
    target_scale : sequence of float
        Per-target factor from the transformed target to target units; the
        validation RMSE (``val_rmse``, the early-stopping monitor) is reported
        in target units (root of the mean over targets of each one's MSE).
    loss, huber_delta, optimizer, lr, weight_decay, scheduler, max_epochs, ema_decay
        See :class:`tabresnet.defaults.TrainConfig`.
    quantiles : sequence of float
        With ``loss="quantile"``: the sorted levels; the network then has one
        output per level and target, and ``val_rmse`` scores the level nearest
        0.5 (:func:`tabresnet.defaults.point_quantile`).
    """

    def __init__(
        self,
        network: nn.Module,
        target_scale: Sequence[float] = (1.0,),
        loss: str = "mse",
        huber_delta: float = 1.0,
        optimizer: str = "adamw",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        scheduler: str = "none",
        max_epochs: int = 100,
        gradient_clip: float = 0.0,
        ema_decay: float = 0.0,
        quantiles: Sequence[float] = (),
    ):
        super().__init__()
        self.network = network
        self.ema = (
            AveragedModel(network, multi_avg_fn=get_ema_multi_avg_fn(ema_decay), use_buffers=True)
            if ema_decay > 0
            else None
        )
        self.save_hyperparameters(ignore=["network"])
        self.members = getattr(network, "members", None)  # an ensemble's per-member outputs
        # Manual optimisation: one zero_grad/backward/step per batch without
        # Lightning's closure machinery, which cost about 10% of an epoch of a
        # small network at batch 256 (bench/data_path.py).
        self.automatic_optimization = False
        self.loss_fn = make_loss(loss, huber_delta, quantiles)
        levels = sorted(float(q) for q in quantiles) if loss == "quantile" else []
        self._n_q = max(1, len(levels))
        self._point_q = point_quantile(levels) if levels else 0
        self.register_buffer(
            "target_scale", torch.tensor([float(s) for s in target_scale]), persistent=False
        )
        self._sums: dict[str, torch.Tensor] = {}

    @property
    def eval_network(self) -> nn.Module:
        """The weights validation scores: the moving average if kept, else the live ones."""
        return self.ema.module if self.ema is not None else self.network

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        return self.eval_network(x_num, x_cat)

    def _point(self, pred: torch.Tensor) -> torch.Tensor:
        """``(N, T * Q)`` quantile outputs -> the point column of each target, ``(N, T)``."""
        if self._n_q == 1:
            return pred
        return pred.unflatten(-1, (-1, self._n_q)).sort(dim=-1).values[..., self._point_q]

    # Per-epoch sums instead of self.log on every step: logging each step costs
    # about as much as a small network's step (bench/data_path.py).
    def _accumulate(self, key: str, value: torch.Tensor) -> None:
        if key in self._sums:
            self._sums[key] += value
        else:
            self._sums[key] = value.clone()

    def _loss(self, pred: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
        if w is None:
            return self.loss_fn(pred, y)
        # Weights normalised to mean 1 over the training rows (TensorDataModule):
        # in expectation the loss of the rows repeated by their weights.
        return (row_losses(self.loss_fn, pred, y) * w).mean()

    def training_step(self, batch, batch_idx):
        x_num, x_cat, y, *weight = batch
        opt = self.optimizers()
        # (B, k, out) against (B, k, out) for an ensemble: the mean of its members' losses.
        pred = self.members(x_num, x_cat) if self.members is not None else self.network(x_num, x_cat)
        loss = self._loss(pred, y, weight[0] if weight else None)
        opt.zero_grad()
        self.manual_backward(loss)
        if self.hparams.gradient_clip > 0:
            self.clip_gradients(
                opt, gradient_clip_val=self.hparams.gradient_clip, gradient_clip_algorithm="norm"
            )
        opt.step()
        if self.ema is not None:
            self.ema.update_parameters(self.network)
        n = y.new_tensor(float(y.shape[0]))
        self._accumulate("train_loss", loss.detach() * n)
        self._accumulate("train_n", n)
        return loss

    def _log_train_loss(self) -> None:
        if "train_n" in self._sums:
            value = (self._sums.pop("train_loss") / self._sums.pop("train_n")).item()
            if not math.isfinite(value):
                # Divergence: stop now rather than train on NaN (tuning records the reason).
                self.trainer.should_stop = True
            self.log("train_loss", value, sync_dist=True)

    def on_train_epoch_end(self) -> None:
        self._log_train_loss()  # only where no validation ran this epoch
        sched = self.lr_schedulers()
        if sched is not None and self.hparams.scheduler == "cosine":
            sched.step()

    def validation_step(self, batch, batch_idx):
        x_num, x_cat, y, *weight = batch
        pred = self(x_num, x_cat)
        if weight:  # weighted sums; val_n is the sum of the weights
            w = weight[0]
            self._accumulate("val_loss", (row_losses(self.loss_fn, pred, y) * w).sum())
            self._accumulate("val_se", (((self._point(pred) - y) ** 2) * w[:, None]).sum(dim=0))
            self._accumulate("val_n", w.sum())
            return
        n = y.new_tensor(float(y.shape[0]))
        self._accumulate("val_loss", self.loss_fn(pred, y) * n)
        self._accumulate("val_se", ((self._point(pred) - y) ** 2).sum(dim=0))
        self._accumulate("val_n", n)

    def on_validation_epoch_end(self) -> None:
        # Validation runs after the epoch's last training step, before the
        # epoch-end hooks: log the finished epoch's training loss here so that
        # callbacks see it with the validation metrics.
        self._log_train_loss()
        if "val_n" not in self._sums:
            return
        n = self._sums.pop("val_n")
        val_loss = self._sums.pop("val_loss") / n
        mse = self._sums.pop("val_se") / n * self.target_scale.to(n.device) ** 2
        rmse = torch.sqrt(mse).mean()  # several targets: their mean RMSE, as the metrics'
        if not torch.isfinite(rmse):
            rmse = torch.tensor(float("inf"))
        self.log("val_loss", val_loss.item(), sync_dist=True)
        self.log("val_rmse", rmse.item(), prog_bar=True, sync_dist=True)
        sched = self.lr_schedulers()
        if (
            sched is not None
            and self.hparams.scheduler == "plateau"
            and not self.trainer.sanity_checking
        ):
            sched.step(rmse.item())

    def configure_optimizers(self):
        hp = self.hparams
        kinds = {
            "adamw": (torch.optim.AdamW, {}),
            "adam": (torch.optim.Adam, {}),
            "sgd": (torch.optim.SGD, {"momentum": 0.9, "nesterov": True}),
        }
        if hp.optimizer not in kinds:
            raise ValueError(
                f"unknown optimizer {hp.optimizer!r}; valid names are: adam, adamw, sgd"
            )
        cls, extra = kinds[hp.optimizer]
        params = list(self.network.parameters())
        kw = dict(extra, lr=hp.lr, weight_decay=hp.weight_decay)
        # torch's fused kernel: the same update in one call for all parameters,
        # where the default loops over them in Python: steps 3-26% shorter at
        # batch 32-128 on a CPU (bench/optimizer_step.py). Devices or older
        # torch without it get the default.
        try:
            opt = cls(params, fused=True, **kw)
        except (RuntimeError, TypeError, ValueError):
            opt = cls(params, **kw)
        # Schedulers are stepped by hand (manual optimisation): cosine once per
        # epoch, reduce-on-plateau on each validation RMSE.
        if hp.scheduler == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(hp.max_epochs, 1))
            return {"optimizer": opt, "lr_scheduler": sched}
        if hp.scheduler == "plateau":
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=4)
            return {"optimizer": opt, "lr_scheduler": sched}
        return opt
