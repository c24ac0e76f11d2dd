"""The one source of defaults.

Every default of tabresnet lives in the dataclasses below: the YAML config
files, the ``tabresnet`` command's flags, the estimator's constructor and the
tuning search space are generated from (or checked against) these fields and
never retype a value.

A run is described by :class:`RunConfig`, with three sections::

    model:  architecture (tabresnet.models.ModelConfig)
    data:   column roles, preprocessing, splits (DataConfig)
    train:  optimisation and the Trainer (TrainConfig)
    seed:   one seed for splits, init and batch order

Every field has a *flat* name that is unique across sections (``lr``,
``dropout``, ``batch_size``): the CLI's ``--lr`` and the estimator's
``ResNetRegressor(lr=...)`` use it.

Examples
--------
>>> cfg = RunConfig()
>>> cfg.train.batch_size, cfg.model.block, cfg.model.ensemble_size
(0, 'PreActResNetBlock', 4)
>>> cfg2 = RunConfig.from_flat({"lr": 3e-3, "num_blocks": [1], "c_hidden": [32]})
>>> cfg2.train.lr, cfg2.model.c_hidden
(0.003, [32])
>>> RunConfig.from_yaml(cfg2.to_yaml()) == cfg2
True
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .models.config import ModelConfig, coerce_scalars

__all__ = [
    "DataConfig",
    "ModelConfig",
    "RunConfig",
    "TrainConfig",
    "auto_batch_size",
    "auto_patience",
    "by_table_size",
    "changed_options",
    "ignored_options",
    "flat_defaults",
    "flat_fields",
    "load_yaml",
    "output_quantiles",
    "point_quantile",
    "refuse_unused",
    "resolve_threads",
    "torch_threads",
    "unused_options",
]


@dataclass
class DataConfig:
    """Column roles, preprocessing and splits.

    Attributes
    ----------
    categorical, numeric, ignore : list of str
        Override the inferred role of these columns.
    int_as_categorical : int
        Integer columns with at most this many distinct values are treated as
        categorical; 0 switches the rule off.
    numeric_transform : {"quantile", "standard", "none"}
        Scaling of numeric columns after median imputation.
    n_quantiles : int
        Quantiles of the quantile-normal transform (fewer if fewer rows).
    onehot_max_cardinality : int
        Categoricals with at most this many categories are one-hot encoded;
        above it they get a learned embedding.
    target_transform : {"standard", "none"}
        Standardise the target for training (predictions are mapped back).
    val_size : float
        Fraction of the rows held out for early stopping (validation).
    test_size : float
        Fraction of the rows held out as a test split, scored once at the end;
        0 (the default) keeps none, so the model learns from every other row.
    cv_folds : int
        k-fold cross-validation when > 1 (0 or 1: one split).
    bag : int
        Train a bag of K networks when > 1: K-fold, one network per fold, each
        early-stopped on its own fold, averaged (Breiman 1996); every row trains
        K - 1 of them and the run's score is out-of-fold.
    weight : str or None
        Column of row weights (numbers >= 0, not a feature) that the loss, the early-stopping RMSE and the metrics weigh each row by.
        An integer weight w trains as the row repeated w times would, in
        expectation over the batches (preprocessing included); rows of weight
        0 are left out.
    """

    categorical: list[str] = field(default_factory=list)
    numeric: list[str] = field(default_factory=list)
    ignore: list[str] = field(default_factory=list)
    int_as_categorical: int = 0
    # Quantile-normal inputs: the recipe of Gorishniy et al. (2021) and the
    # chapter's training set-up; robust to skewed columns and outliers.
    numeric_transform: str = "quantile"
    n_quantiles: int = 1000
    onehot_max_cardinality: int = 16
    target_transform: str = "standard"
    # 16% of the rows pick the epoch; no test rows unless asked for (a user's
    # file is their training data: --test-size or --test-data make a test split).
    val_size: float = 0.16
    test_size: float = 0.0
    cv_folds: int = 0
    bag: int = 0
    # None: every row counts once. An integer weight w acts as the row repeated w times.
    weight: str | None = None


@dataclass
class TrainConfig:
    """Optimisation and Trainer settings.

    Attributes
    ----------
    max_epochs : int
        Upper bound; early stopping usually ends training sooner.
    batch_size : int
        Rows per optimisation step; 0 picks it by the training rows' count
        (:func:`auto_batch_size`).
    optimizer : {"adamw", "adam", "sgd"}
        The optimiser.
    lr : float
        Learning rate.
    weight_decay : float
        Decoupled weight decay (AdamW) or L2 penalty (Adam, SGD).
    loss : {"mse", "mae", "huber", "quantile"}
        Training loss, on the standardised target; ``quantile`` is the pinball
        loss of ``quantiles`` (quantile regression).
    huber_delta : float
        Threshold of the Huber loss, in standardised target units.
    quantiles : list of float
        Levels in (0, 1) that ``loss="quantile"`` learns, one network output
        per level and target (Koenker & Bassett 1978); sorted at prediction so
        they never cross; the one nearest 0.5 is the point prediction.
    scheduler : {"none", "cosine", "plateau"}
        Learning-rate schedule over the epochs.
    gradient_clip : float
        Clip the gradient norm to this value; 0 disables clipping.
    patience : int
        Epochs without validation-RMSE improvement before stopping; 0 picks it
        by the training rows' count (:func:`auto_patience`).
    accelerator, devices, strategy, precision : str
        Passed to ``lightning.Trainer``.
    num_nodes : int
        Machines in a data-parallel run, ``devices`` processes on each
        (Lightning's ``num_nodes``; docs/scaling.md). Above 1, start the same
        command on every machine.
    num_threads : int
        Torch intra-op threads; 0 picks half the cores, at most 4.
    logger : {"csv", "tensorboard", "none"}
        Format of the training-curve log in the run directory.
    progress : {"auto", "rich", "none"}
        ``auto`` shows a Rich progress bar on a terminal and otherwise writes
        a log line every 10 epochs (``tune``: one per finished trial).
    deterministic : bool
        Ask torch for deterministic algorithms.
    ema_decay : float
        Keep an exponential moving average of the weights with this per-step
        decay; validation, early stopping and the saved model use it. 0: off.
    refit : bool
        After early stopping, train the network again on the training and
        validation rows together for the best epoch count, and save that one.
        The refit starts from scratch at the same batch size; the validation
        score and the interval calibration stay the early-stopped network's
        (the refit trains on those rows). Costs about one more training; not
        with a bag (which trains on every row already) or the ``plateau``
        scheduler (its reductions follow validation scores the refit does not
        have).
    """

    max_epochs: int = 300
    # By table size (auto_batch_size): 32 rows for a few hundred, 128 from 3k.
    batch_size: int = 0
    # AdamW (decoupled weight decay, Loshchilov & Hutter 2019) at 2e-3 and
    # weight decay 3e-4: TabM's region for its defaults; the chapter's Adam at
    # 1e-3 trained the ensemble more slowly for no gain.
    optimizer: str = "adamw"
    lr: float = 2e-3
    weight_decay: float = 3e-4
    loss: str = "mse"
    huber_delta: float = 1.0
    # A central 80% band and the median: the usual first question of a user
    # who asks for quantiles; the median doubles as the point prediction.
    quantiles: list[float] = field(default_factory=lambda: [0.1, 0.5, 0.9])
    scheduler: str = "none"
    gradient_clip: float = 0.0
    # By table size (auto_patience): 8 epochs, 16 on mid-size tables. Most small
    # tables' best epoch came early, so a longer wait was most of their time;
    # mid-size ones kept improving slowly at a cheap epoch (docs/benchmarks.md,
    # "Defaults suite").
    patience: int = 0
    accelerator: str = "auto"
    devices: str = "auto"
    strategy: str = "auto"
    precision: str = "32-true"
    num_nodes: int = 1
    num_threads: int = 0
    logger: str = "csv"
    progress: str = "auto"
    deterministic: bool = True
    ema_decay: float = 0.0
    refit: bool = False


def auto_batch_size(n_train: int) -> int:
    """The batch size for ``batch_size=0``: about ``n_train / 32``, a power of two in [32, 128].

    Small tables get small batches (enough steps per epoch for early stopping
    to see progress), larger ones larger batches (fewer, better-filled steps),
    up to 128: on diamonds (34,521 training rows) batch 1024 trained to a
    validation RMSE 2.8% worse than 128 (256: 1.4% worse; docs/benchmarks.md,
    "Defaults suite").

    >>> [auto_batch_size(n) for n in (300, 2_000, 20_000, 200_000)]
    [32, 64, 128, 128]
    """
    import math

    return int(min(128, max(32, 2 ** round(math.log2(max(n_train, 1) / 32)))))


#: Training rows where ``patience=0`` waits 16 epochs instead of 8: [low, high).
LONG_PATIENCE_ROWS = (3_000, 10_000)


def auto_patience(n_train: int) -> int:
    """The patience for ``patience=0``: 8 epochs, 16 within :data:`LONG_PATIENCE_ROWS`.

    On the suite's mid-size table (computers, 4,006 training rows) the
    validation RMSE kept improving in small steps after a first plateau and an
    epoch is cheap; on the small ones the best epoch came early, so the longer
    wait was mostly lost time; on the largest an epoch is long, and 16 epochs
    took diamonds past three times the old network's seconds
    (docs/benchmarks.md, "Defaults suite").

    >>> [auto_patience(n) for n in (300, 2_999, 3_000, 9_999, 10_000)]
    [8, 8, 16, 16, 8]
    """
    low, high = LONG_PATIENCE_ROWS
    return 16 if low <= n_train < high else 8


def by_table_size(train: TrainConfig, n_train: int) -> tuple[int, int]:
    """``(batch_size, patience)`` as trained: the config's, or by the training rows where 0.

    >>> by_table_size(TrainConfig(), 4_000), by_table_size(TrainConfig(batch_size=64), 300)
    ((128, 16), (64, 8))
    """
    return (train.batch_size or auto_batch_size(n_train),
            train.patience or auto_patience(n_train))


def output_quantiles(train: TrainConfig) -> list[float]:
    """The quantile levels a network outputs per target, sorted; ``[]`` for a point loss.

    The network has ``len(targets) * max(1, len(levels))`` outputs, target after
    target (``t * Q + q``).

    >>> output_quantiles(TrainConfig(loss="quantile", quantiles=[0.9, 0.1, 0.5]))
    [0.1, 0.5, 0.9]
    >>> output_quantiles(TrainConfig())
    []
    """
    return sorted(float(q) for q in train.quantiles) if train.loss == "quantile" else []


def point_quantile(levels: list[float]) -> int:
    """Index of the level that is the point prediction: the one nearest 0.5 (lower on a tie).

    >>> point_quantile([0.1, 0.5, 0.9]), point_quantile([0.25, 0.75]), point_quantile([0.9])
    (1, 0, 0)
    """
    return min(range(len(levels)), key=lambda i: (abs(levels[i] - 0.5), levels[i]))


_SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}
_CHOICES = {
    ("data", "numeric_transform"): ("quantile", "standard", "none"),
    ("data", "target_transform"): ("standard", "none"),
    ("train", "optimizer"): ("adamw", "adam", "sgd"),
    ("train", "loss"): ("mse", "mae", "huber", "quantile"),
    ("train", "scheduler"): ("none", "cosine", "plateau"),
    ("train", "logger"): ("csv", "tensorboard", "none"),
    ("train", "progress"): ("auto", "rich", "none"),
}


def choices(section: str, name: str) -> tuple[str, ...] | None:
    """The allowed values of a string option, or ``None`` if it is free."""
    return _CHOICES.get((section, name))


@dataclass
class RunConfig:
    """Everything a run needs besides the data: ``model``, ``data``, ``train``, ``seed``."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check values against their choices and ranges; ``ValueError`` names the field.

        Counts, rates and flags are made their field's type first
        (:func:`~tabresnet.models.config.coerce_scalars`: ``3.0`` and ``"3"``
        are 3 epochs, ``"1e-3"`` a learning rate; ``2.5`` epochs is an error).
        """
        self.model.validate()
        coerce_scalars(self.data)
        coerce_scalars(self.train)
        coerce_scalars(self)
        for (section, name), allowed in _CHOICES.items():
            value = getattr(getattr(self, section), name)
            if value not in allowed:
                raise ValueError(
                    f"{section}.{name} must be one of {', '.join(allowed)}, however: {value!r}"
                )
        d, t = self.data, self.train
        if not (0 <= d.test_size < 1 and 0 < d.val_size < 1 and d.val_size + d.test_size < 1):
            raise ValueError(
                "val_size must be in (0, 1), test_size in [0, 1), and they must sum below 1, "
                f"however: val_size={d.val_size}, test_size={d.test_size}"
            )
        for name in ("bag", "cv_folds"):
            if int(getattr(d, name)) < 0:
                raise ValueError(f"{name} must be 0 or 1 (none) or a fold count >= 2, "
                                 f"however: {getattr(d, name)}")
        for name in ("max_epochs", "num_nodes"):
            if int(getattr(t, name)) <= 0:
                raise ValueError(f"{name} must be positive, however: {getattr(t, name)}")
        if int(t.patience) < 0:
            raise ValueError(f"patience must be positive (0: by table size), however: {t.patience}")
        if int(t.batch_size) < 0:
            raise ValueError(f"batch_size must be positive (0: by table size), however: {t.batch_size}")
        if not 0.0 <= t.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), however: ema_decay={t.ema_decay}")
        if t.refit and t.scheduler == "plateau":
            raise ValueError("refit replays the early-stopped epochs without validation rows, "
                             "so it cannot follow the plateau scheduler; use scheduler none or "
                             "cosine, or drop refit")
        if t.lr <= 0:
            raise ValueError(f"lr must be positive, however: lr={t.lr}")
        if t.weight_decay < 0 or t.gradient_clip < 0:
            raise ValueError("weight_decay and gradient_clip must be >= 0")
        qs = list(t.quantiles or [])
        if t.loss == "quantile" and not qs:
            raise ValueError("loss 'quantile' needs at least one level in quantiles, e.g. "
                             "[0.1, 0.5, 0.9]")
        if any(isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 < q < 1
               for q in qs) or len(set(qs)) != len(qs):
            raise ValueError(f"quantiles must be distinct numbers in (0, 1), however: {qs}")

    # -- dict / YAML -----------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> RunConfig:
        """Build from nested sections; missing keys take defaults, unknown keys raise."""
        data = dict(data or {})
        unknown = sorted(set(data) - {*_SECTIONS, "seed"})
        if unknown:
            raise ValueError(
                f"unknown config section(s) {', '.join(unknown)}; valid: model, data, train, seed"
            )
        kwargs: dict[str, Any] = {}
        for section, cls_ in _SECTIONS.items():
            values = data.get(section) or {}
            if not isinstance(values, dict):
                raise ValueError(f"config section {section!r} must be a mapping")
            names = {f.name for f in dataclasses.fields(cls_)}
            bad = sorted(set(values) - names)
            if bad:
                raise ValueError(
                    f"unknown {section} option(s) {', '.join(bad)}; valid: {', '.join(sorted(names))}"
                )
            kwargs[section] = cls_(**values)
        if "seed" in data:
            kwargs["seed"] = data["seed"]  # validate makes it an int, or names it
        return cls(**kwargs)

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls, text: str) -> RunConfig:
        import yaml

        try:
            data = load_yaml(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
            what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ValueError(f"config is not valid YAML{where}: {what}") from None
        if data is not None and not isinstance(data, dict):
            raise ValueError("a config file must be a YAML mapping with model/data/train sections")
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        """Read a YAML config file."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        try:
            return cls.from_yaml(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None

    # -- flat names ---------------------------------------------------------------
    def to_flat(self) -> dict[str, Any]:
        out: dict[str, Any] = {"seed": self.seed}
        for name, (section, _) in flat_fields().items():
            if section != "":
                out[name] = getattr(getattr(self, section), name)
        return out

    @classmethod
    def from_flat(cls, values: dict[str, Any], base: RunConfig | None = None) -> RunConfig:
        """A copy of ``base`` (default: the defaults) with flat-named values replaced."""
        data = (base or cls()).to_dict()
        fields = flat_fields()
        for name, value in values.items():
            if name not in fields:
                import difflib

                near = difflib.get_close_matches(str(name), list(fields), n=1)
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                raise ValueError(
                    f"unknown option {name!r}{hint}; valid: {', '.join(sorted(fields))}"
                )
            section, _ = fields[name]
            if section == "":
                data[name] = value
            else:
                data[section][name] = value
        return cls.from_dict(data)

    def replace(self, **flat: Any) -> RunConfig:
        """A copy with flat-named values replaced."""
        return RunConfig.from_flat(flat, base=self)


def load_yaml(text: str) -> Any:
    r"""``yaml.safe_load``, refusing a key given twice in one mapping.

    PyYAML keeps the last of two equal keys without a word, so ``lr: 0.1`` on
    one line and ``lr: 0.01`` further down would silently be 0.01. The error
    is a ``yaml.YAMLError`` naming the line, as PyYAML's own are.

    >>> load_yaml("a: 1\nb: 2")
    {'a': 1, 'b': 2}
    >>> load_yaml("a: 1\na: 2")
    Traceback (most recent call last):
    ...
    yaml.constructor.ConstructorError: ...key 'a' is given twice...
    """
    import yaml

    class _Strict(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> dict:
            seen: set = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` merges
                    continue
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} is given twice", key_node.start_mark)
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return yaml.load(text, Loader=_Strict)  # noqa: S506 - a SafeLoader subclass


def flat_fields() -> dict[str, tuple[str, dataclasses.Field]]:
    """Flat option name -> (section, dataclass field); ``seed`` has section ``""``."""
    out: dict[str, tuple[str, Any]] = {}
    for section, cls_ in _SECTIONS.items():
        for f in dataclasses.fields(cls_):
            if f.name in out:  # pragma: no cover - guarded by a test
                raise RuntimeError(f"flat option name {f.name!r} is not unique")
            out[f.name] = (section, f)
    seed = next(f for f in dataclasses.fields(RunConfig) if f.name == "seed")
    out["seed"] = ("", seed)
    return out


def flat_defaults() -> dict[str, Any]:
    """Flat option name -> default value (lists copied), read from the fields alone.

    Nothing is built or validated, so listing the defaults (``--help``) does
    not load the model layer's torch.

    >>> flat_defaults()["lr"] == RunConfig().train.lr
    True
    """
    out: dict[str, Any] = {}
    for name, (_, f) in flat_fields().items():
        has_factory = f.default_factory is not dataclasses.MISSING
        out[name] = f.default_factory() if has_factory else f.default
    return out


def resolve_threads(requested: int) -> int:
    """Torch threads for training and prediction: ``requested``, or for 0 half the cores, at most 4.

    Steps of tabular networks are small (a few 100k multiply-adds per row), so
    extra threads buy little and, on a shared or busy machine, cost a lot: on 2
    cores with other work running, 2 threads trained 4-6x slower than 1
    (docs/benchmarks.md, "Threads"). Half the cores leaves room for the data
    work and for other processes.
    """
    if requested > 0:
        return int(requested)
    return max(1, min(4, (os.cpu_count() or 2) // 2))


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block on ``count`` torch threads, then give torch back its own number.

    torch is imported here, not with this module: listing the options needs no torch.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# Options that only act under another option's value: name -> (that option, its values).
_ACTS_WITH: dict[str, tuple[str, tuple[Any, ...]]] = {
    "quantiles": ("loss", ("quantile",)),
    "huber_delta": ("loss", ("huber",)),
    "n_bins": ("num_embedding", ("ple",)),
    "n_frequencies": ("num_embedding", ("plr",)),
    "frequency_scale": ("num_embedding", ("plr",)),
    "num_embedding_dim": ("num_embedding", ("ple", "plr")),
    "n_quantiles": ("numeric_transform", ("quantile",)),
    "refit": ("bag", (0, 1)),
}


def unused_options(config: RunConfig, given: Any) -> dict[str, str]:
    """Options in ``given`` that ``config`` ignores -> the option each needs.

    ``--quantiles 0.1 0.9`` without ``--loss quantile`` would train a point model
    and silently drop the levels: callers turn this into an error or a warning.

    >>> cfg = RunConfig().replace(loss="mse", quantiles=[0.1, 0.9])
    >>> unused_options(cfg, ["quantiles", "lr"])
    {'quantiles': "it needs loss quantile; loss is 'mse'"}
    >>> unused_options(cfg.replace(loss="quantile"), ["quantiles"])
    {}
    """
    fields = flat_fields()
    out = {}
    for name in given:
        if name not in _ACTS_WITH:
            continue
        needs, values = _ACTS_WITH[name]
        section, _ = fields[needs]
        value = getattr(getattr(config, section), needs)
        if value not in values:
            out[name] = f"it needs {needs} {' or '.join(map(str, values))}; {needs} is {value!r}"
    return out


def changed_options(overrides: dict[str, Any]) -> list[str]:
    """The options in ``overrides`` set to something other than their default.

    >>> import numpy as np
    >>> changed_options({"lr": 2e-3, "quantiles": (0.2, 0.8), "report": False,
    ...                  "weight": np.ones(3)})
    ['quantiles', 'weight']
    """
    defaults = flat_defaults()
    return [k for k, v in overrides.items() if k in defaults and _differs(v, defaults[k])]


def _differs(value: Any, default: Any) -> bool:
    try:
        return bool((list(value) if isinstance(value, tuple) else value) != default)
    except (TypeError, ValueError):  # an array (one weight per row) has no single truth value
        return True


def ignored_options(config: RunConfig, overrides: dict[str, Any]) -> str:
    """The changed options in ``overrides`` that ``config`` ignores, as one phrase ('' if none).

    >>> ignored_options(RunConfig().replace(loss="mse"), {"huber_delta": 2.0, "lr": 1e-2})
    "huber_delta (it needs loss huber; loss is 'mse')"
    """
    unused = unused_options(config, changed_options(overrides))
    return "; ".join(f"{k} ({why})" for k, why in unused.items())


def refuse_unused(config: RunConfig, overrides: dict[str, Any]) -> None:
    """Raise :class:`~tabresnet.errors.ConfigError` if ``config`` ignores a changed option.

    ``fit`` and ``tune`` (and so the CLI) call it with the options they were
    given: a value other than the default that the run then drops in silence is
    a trap. An option at its default value is let through, so that a complete
    set of options (a config written out, another run's parameters) still works.

    >>> refuse_unused(RunConfig().replace(loss="mse"), {"quantiles": [0.2, 0.8]})
    Traceback (most recent call last):
    ...
    tabresnet.errors.ConfigError: option(s) this run would ignore: quantiles (it needs loss quantile; loss is 'mse'); give the option each needs or drop it
    >>> refuse_unused(RunConfig().replace(loss="mse"), {"quantiles": [0.1, 0.5, 0.9]})
    """
    listed = ignored_options(config, overrides)
    if listed:
        from .errors import ConfigError

        raise ConfigError(f"option(s) this run would ignore: {listed}; "
                          "give the option each needs or drop it")
