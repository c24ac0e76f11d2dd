"""Train one network on prepared data with a Lightning ``Trainer``.

>>> import numpy as np, pandas as pd
>>> from tabresnet.defaults import RunConfig
>>> from tabresnet.training import prepare, train_network
>>> rng = np.random.default_rng(0)
>>> df = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
>>> df["y"] = 2 * df.a - df.b
>>> cfg = RunConfig().replace(max_epochs=3, num_blocks=[1], c_hidden=[16], progress="none")
>>> result = train_network(prepare(df, "y", cfg), cfg)
>>> len(result.history), result.network.training
(3, False)
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import random
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping

from ..data import TensorBatches
from ..defaults import (
    RunConfig,
    by_table_size,
    output_quantiles,
    resolve_threads,
    torch_threads,
)
from .module import RegressionModule
from .prepare import Prepared, Split

__all__ = [
    "BestWeights",
    "TensorDataModule",
    "TrainResult",
    "build_network",
    "check_trained",
    "keep_global_state",
    "train_network",
]

# Validation and prediction batches: large, since they need no gradients.
EVAL_BATCH = 8192


# What Lightning's seeding and deterministic mode set in the environment.
_ENV_KEYS = ("PL_GLOBAL_SEED", "PL_SEED_WORKERS", "CUBLAS_WORKSPACE_CONFIG")


@contextlib.contextmanager
def keep_global_state():
    """Leave the caller's random streams and torch's modes as they were.

    Training seeds Python's, numpy's and torch's global generators (so a seed
    gives the same model) and switches torch to deterministic algorithms; a
    user's notebook must not notice: a bootstrap loop that draws with
    ``np.random`` around a fit would otherwise draw the same rows after every
    fit. Usable as a decorator.

    Examples
    --------
    >>> np.random.seed(1); expected = np.random.rand(); np.random.seed(1)
    >>> with keep_global_state():
    ...     _ = np.random.seed(0), torch.use_deterministic_algorithms(True)
    >>> np.random.rand() == expected, torch.are_deterministic_algorithms_enabled()
    (True, False)
    """
    state = (random.getstate(), np.random.get_state())  # noqa: NPY002 (the global stream is the point)
    modes = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    env = {k: os.environ.get(k) for k in _ENV_KEYS}
    try:
        # CUDA's generators only where CUDA is already up: asking for them would
        # start it, and a fork-based multiprocessing pool could not use CUDA after.
        cuda = range(torch.cuda.device_count()) if torch.cuda.is_initialized() else []
        with torch.random.fork_rng(devices=cuda):
            yield
    finally:
        random.setstate(state[0])
        np.random.set_state(state[1])  # noqa: NPY002 (the global stream is the point)
        torch.use_deterministic_algorithms(modes[0], warn_only=modes[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = modes[2:]
        for key, value in env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def check_trained(results: Sequence[TrainResult], config: RunConfig) -> None:
    """Raise :class:`~tabresnet.errors.TrainingError` if a network never scored a finite RMSE.

    A training whose loss became NaN or infinite after some finite epochs
    keeps its best weights and is usable; one that diverged before any finite
    validation score has nothing to keep, and a model built from it would
    predict NaN. ``results``: one per network (the members of a bag).
    """
    from ..errors import TrainingError

    for i, r in enumerate(results):
        if math.isfinite(r.best_val_rmse):
            continue
        rows = r.history["train_loss"].to_numpy() if len(r.history) else []
        at = next((e for e, v in enumerate(rows) if not math.isfinite(v)), len(rows) - 1)
        who = f"bag member {i + 1} of {len(results)}: " if len(results) > 1 else ""
        raise TrainingError(
            f"{who}training diverged: the loss became NaN or infinite in epoch {at} before any "
            f"finite validation score; lower lr (now {config.train.lr:g}), set gradient_clip, "
            "or check the target's scale"
        )


def split_tensors(split: Split, normalise: bool = False) -> tuple[torch.Tensor, ...]:
    """``(x_num, x_cat, y)`` of ``split``, and its row weights (float32) if it has them.

    With ``normalise`` the weights are divided by their mean, so that a batch's
    ``mean(w * loss)`` has, in expectation over the permutation, the value it
    would have with every row repeated by its integer weight.
    """
    if split.weight is None:
        return (split.x_num, split.x_cat, split.y)
    w = split.weight / split.weight.mean() if normalise else split.weight
    return (split.x_num, split.x_cat, split.y, torch.tensor(w, dtype=torch.float32))


class TensorDataModule(L.LightningDataModule):
    """Serve the in-memory splits as :class:`~tabresnet.data.TensorBatches`.

    Training batches come from a fresh permutation each epoch; under DDP each
    rank takes its own shard of that permutation. With ``members = k > 1``
    (an ensemble inside one network) each member has its own permutation and
    batches are ``(B, k, ...)``.

    Weighted rows (``Split.weight``) add a fourth tensor to each batch, cut by
    the same permutation: the training weights divided by their mean
    (:func:`split_tensors`), the validation weights as given.
    """

    def __init__(self, prepared: Prepared, batch_size: int, seed: int = 0, members: int = 1):
        super().__init__()
        self.prepared = prepared
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.members = int(members)

    def train_dataloader(self):
        trainer = self.trainer
        rank = trainer.global_rank if trainer is not None else 0
        world = trainer.world_size if trainer is not None else 1
        n = len(self.prepared.train)
        # BatchNorm needs two rows: drop a last batch of one.
        drop_last = (n // max(world, 1)) % self.batch_size == 1
        return TensorBatches(
            split_tensors(self.prepared.train, normalise=True),
            batch_size=self.batch_size,
            shuffle=True,
            seed=self.seed,
            drop_last=drop_last,
            rank=rank,
            world_size=world,
            members=self.members,
        )

    def val_dataloader(self):
        return TensorBatches(split_tensors(self.prepared.val), batch_size=EVAL_BATCH, shuffle=False)


class BestWeights(Callback):
    """Keep the weights of the best validation epoch in memory; restore them at the end."""

    def __init__(self, monitor: str = "val_rmse"):
        self.monitor = monitor
        self.best = math.inf
        self.best_epoch = -1
        self.state: dict[str, torch.Tensor] | None = None

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return
        value = float(value)
        if value < self.best:
            self.best = value
            self.best_epoch = trainer.current_epoch
            # The weights validation scored: the moving average where one is kept.
            self.state = copy.deepcopy(pl_module.eval_network.state_dict())

    def on_fit_end(self, trainer, pl_module) -> None:
        if self.state is not None:
            pl_module.network.load_state_dict(self.state)


class History(Callback):
    """Record ``epoch, train_loss, val_loss, val_rmse`` after each validation."""

    def __init__(self):
        self.rows: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        m = trainer.callback_metrics
        row = {"epoch": int(trainer.current_epoch)}
        for key in ("train_loss", "val_loss", "val_rmse"):
            if key in m:
                row[key] = float(m[key])
        self.rows.append(row)


class EpochLog(Callback):
    """One line on stderr every ``every`` epochs and at the end, for a log, not a terminal.

    Added by :func:`train_network` with ``progress="auto"`` when stderr is not
    a terminal (nohup, CI, ``| tee``), where a progress bar would stay silent
    or fill the log; written by the first process only. A line gives the
    epochs done, the last validation RMSE, the best one with its epoch
    (numbered from 0, as in ``history.csv`` and the metrics' ``best_epoch``)
    and the time since the start.

    >>> import io
    >>> log = EpochLog(every=2, clock=iter([0.0, 5.0]).__next__, out=io.StringIO())
    >>> log.line(done=10, max_epochs=300, val_rmse=0.51234, best=0.4981, best_epoch=6)
    'fit: 10/300 epochs, val_rmse 0.5123; best 0.4981 (epoch 6); 5s'
    """

    def __init__(self, every: int = 10, clock=time.perf_counter, out=None):
        self.every, self.clock, self.out = int(every), clock, out
        self.start = self.clock()
        self.best, self.best_epoch = math.inf, -1

    def line(self, done: int, max_epochs: int, val_rmse: float, best: float,
             best_epoch: int) -> str:

        return (f"fit: {done}/{max_epochs} epochs, val_rmse {val_rmse:.4g}; "
                f"best {best:.4g} (epoch {best_epoch}); {format_seconds(self.clock() - self.start)}")

    def _write(self, trainer, done: int) -> None:
        value = trainer.callback_metrics.get("val_rmse")
        if value is None or not trainer.is_global_zero:
            return
        print(self.line(done, trainer.max_epochs, float(value), self.best, self.best_epoch),
              file=self.out or sys.stderr, flush=True)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        value = trainer.callback_metrics.get("val_rmse")
        if value is not None and float(value) < self.best:
            self.best, self.best_epoch = float(value), int(trainer.current_epoch)
        done = trainer.current_epoch + 1
        if done % self.every == 0:
            self._write(trainer, done)

    def on_fit_end(self, trainer, pl_module) -> None:
        done = trainer.current_epoch  # counts the finished epochs by now
        if done % self.every:  # the last epoch, unless just written
            self._write(trainer, done)


@dataclass
class TrainResult:
    """What :func:`train_network` returns.

    Attributes
    ----------
    network : nn.Module
        The trained network with the best validation epoch's weights, on the CPU,
        in eval mode.
    history : DataFrame
        One row per epoch: ``epoch, train_loss, val_loss, val_rmse``.
    best_epoch : int
    best_val_rmse : float
        In target units.
    seconds : float
        Wall time of ``Trainer.fit``.
    diverged : bool
        The training loss became NaN or infinite.
    is_global_zero : bool
        False in the extra processes of a multi-process (DDP) run.
    batch_size, patience : int
        The values trained with: the config's, or what ``0`` picked by the
        training rows' count (:func:`~tabresnet.defaults.auto_batch_size`,
        :func:`~tabresnet.defaults.auto_patience`).
    """

    network: torch.nn.Module
    history: pd.DataFrame
    best_epoch: int
    best_val_rmse: float
    seconds: float
    diverged: bool
    is_global_zero: bool = True
    batch_size: int = 0
    patience: int = 0

    def training_summary(self) -> dict:
        """The ``training`` entry of a run's metrics (a bag's: :class:`BagResult`)."""
        return {
            "best_epoch": self.best_epoch,
            "epochs": int(len(self.history)),
            "seconds": round(self.seconds, 3),
            "diverged": self.diverged,
            "batch_size": self.batch_size,
            "patience": self.patience,
        }


def _devices(value: str | int):
    if isinstance(value, int):
        return value
    text = str(value).strip()
    return int(text) if text.isdigit() else text


def _progress_enabled(mode: str) -> bool:
    if mode == "none":
        return False
    if mode == "rich":
        return True
    return sys.stderr.isatty()


@keep_global_state()
def train_network(
    prepared: Prepared,
    config: RunConfig,
    callbacks: Sequence[Callback] = (),
    out_dir: str | Path | None = None,
    epochs: int | None = None,
) -> TrainResult:
    """Build the configured network and train it with early stopping (or for ``epochs``).

    Parameters
    ----------
    prepared : Prepared
        From :func:`tabresnet.training.prepare`.
    config : RunConfig
        Uses ``model``, ``train`` and ``seed``.
    callbacks : sequence of Callback
        Extra Lightning callbacks (the tuner adds its pruning callback).
    out_dir : path, optional
        Where logs go; ``None`` writes nothing. (No checkpoint is written: the
        best weights are kept in memory and saved as safetensors by the caller,
        so a run directory holds no pickle.)
    epochs : int, optional
        Train exactly this many epochs on ``prepared.train`` with no validation
        and no early stopping, and keep the last weights (the refit of
        ``refit=True``: its ``best_epoch`` is the last, ``best_val_rmse`` NaN).

    Returns
    -------
    TrainResult

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from tabresnet.training import prepare
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({"a": rng.normal(size=100)})
    >>> df["y"] = 3 * df.a
    >>> cfg = RunConfig().replace(num_blocks=[1], c_hidden=[8], progress="none")
    >>> r = train_network(prepare(df, "y", cfg), cfg, epochs=4)
    >>> len(r.history), r.best_epoch, list(r.history.columns)
    (4, 3, ['epoch', 'train_loss'])
    """
    t = config.train
    with torch_threads(resolve_threads(t.num_threads)):
        return _train(prepared, config, callbacks, out_dir, epochs)


def _train(
    prepared: Prepared,
    config: RunConfig,
    callbacks: Sequence[Callback],
    out_dir: str | Path | None,
    epochs: int | None = None,
) -> TrainResult:
    t = config.train
    L.seed_everything(config.seed, workers=False, verbose=False)
    network = build_network(config, prepared)
    module = RegressionModule(
        network,
        target_scale=[float(s) for s in prepared.target_scale],
        loss=t.loss,
        huber_delta=t.huber_delta,
        optimizer=t.optimizer,
        lr=t.lr,
        weight_decay=t.weight_decay,
        scheduler=t.scheduler,
        max_epochs=t.max_epochs,
        gradient_clip=t.gradient_clip,
        ema_decay=t.ema_decay,
        quantiles=output_quantiles(t),
    )
    batch_size, patience = by_table_size(t, len(prepared.train))
    best = BestWeights()
    history = History()
    stopping: list[Callback] = [
        EarlyStopping(monitor="val_rmse", patience=patience, mode="min", check_finite=False),
        best,
    ]
    cbs: list[Callback] = [*(stopping if epochs is None else []), history, *callbacks]
    logger: object = False
    if out_dir is not None:
        out_dir = Path(out_dir)
        if t.logger == "csv":
            logger = L.pytorch.loggers.CSVLogger(out_dir, name="logs", version="")
        elif t.logger == "tensorboard":
            logger = L.pytorch.loggers.TensorBoardLogger(out_dir, name="logs", version="")
    progress = _progress_enabled(t.progress)
    if progress:
        from lightning.pytorch.callbacks import RichProgressBar

        cbs.append(RichProgressBar(leave=False))
    elif t.progress == "auto":  # not a terminal: a line every few epochs for the log
        cbs.append(EpochLog())
    datamodule = TensorDataModule(
        prepared, batch_size, seed=config.seed, members=config.model.ensemble_size
    )
    with _quiet_lightning():
        with _accelerator_errors(t.accelerator):
            trainer = L.Trainer(
                max_epochs=t.max_epochs if epochs is None else int(epochs),
                limit_val_batches=None if epochs is None else 0,
                accelerator=t.accelerator,
                devices=_devices(t.devices),
                strategy=t.strategy,
                num_nodes=t.num_nodes,
                precision=t.precision,
                deterministic=t.deterministic,
                logger=logger,
                callbacks=cbs,
                enable_progress_bar=progress,
                enable_model_summary=False,
                enable_checkpointing=False,
                num_sanity_val_steps=0,
                log_every_n_steps=1,
                default_root_dir=str(out_dir) if out_dir is not None else None,
            )
        start = time.perf_counter()
        trainer.fit(module, datamodule=datamodule)
    seconds = time.perf_counter() - start
    columns = ["epoch", "train_loss"] + (["val_loss", "val_rmse"] if epochs is None else [])
    frame = pd.DataFrame(history.rows, columns=columns)
    diverged = bool(len(frame) and not math.isfinite(frame["train_loss"].iloc[-1]))
    if epochs is not None and module.ema is not None:  # the last average, as validation would use
        module.network.load_state_dict(module.eval_network.state_dict())
    network = module.network.cpu().eval()
    return TrainResult(
        network=network,
        history=frame,
        best_epoch=int(best.best_epoch) if epochs is None else len(frame) - 1,
        best_val_rmse=float(best.best) if epochs is None else math.nan,
        seconds=seconds,
        diverged=diverged,
        is_global_zero=trainer.is_global_zero,
        batch_size=batch_size,
        patience=patience,
    )


def build_network(config: RunConfig, prepared: Prepared) -> torch.nn.Module:
    """The configured network for ``prepared``'s columns, PLE bins cut on its training rows."""
    pre = prepared.preprocessor
    n_out = len(prepared.targets) * max(1, len(output_quantiles(config.train)))
    network = config.model.build_tabular(
        pre.n_num, list(pre.cardinalities), n_out, n_cont=pre.n_cont
    )
    fit_bins = getattr(network.numeric, "fit_bins", None)
    if fit_bins is not None:
        weight = prepared.train.weight
        fit_bins(prepared.train.x_num, None if weight is None else torch.from_numpy(weight))
    return network


def format_seconds(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h04m``.

    >>> format_seconds(42.4), format_seconds(185), format_seconds(7440)
    ('42s', '3m05s', '2h04m')
    """
    s = int(round(max(seconds, 0.0)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


@contextlib.contextmanager
def _accelerator_errors(accelerator: str):
    """Lightning's refusal of an accelerator this machine lacks, as a one-line ConfigError."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    from ..errors import ConfigError

    try:
        yield
    except MisconfigurationException as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"accelerator {accelerator!r}: {first} - use accelerator 'auto' "
                          "(what this machine has) or 'cpu'") from None


class _quiet_lightning:
    """Silence Lightning's start-up banners and advice (GPU available, ...)."""

    names = ("lightning.pytorch", "lightning.fabric", "lightning", "pytorch_lightning")

    def __enter__(self):
        self.levels = {n: logging.getLogger(n).level for n in self.names}
        for n in self.names:
            logging.getLogger(n).setLevel(logging.WARNING)
        self.warn = warnings.catch_warnings()
        self.warn.__enter__()
        for pattern in (
            ".*does not have many workers.*",
            ".*is smaller than the logging interval.*",
            ".*LeafSpec.*",
            ".*You defined a `validation_step` but have no `val_dataloader`.*",
            ".*GPU available but not used.*",
            ".*Checkpoint directory .* exists and is not empty.*",
        ):
            warnings.filterwarnings("ignore", message=pattern)
        return self

    def __exit__(self, *exc):
        self.warn.__exit__(*exc)
        for n, level in self.levels.items():
            logging.getLogger(n).setLevel(level)
        return False
