"""``ModelConfig``: a typed, YAML-friendly description of any network here.

Examples
--------
>>> cfg = ModelConfig(arch="resnet", num_blocks=[3, 3, 3], c_hidden=[64, 64, 64],
...                   block="ResNetBlock", init="chapter", dropout=0.0)
>>> net = cfg.build(input_dim=10, output_dim=1)
>>> type(net).__name__, sum(p.numel() for p in net.parameters())
('ResNet', 85121)
>>> ModelConfig.from_dict(cfg.to_dict()) == cfg
True
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import typing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .names import ARCHS, ENSEMBLE_KINDS, NUM_EMBEDDINGS, SHORTCUTS

if TYPE_CHECKING:
    from torch import nn

    from .tabular import TabularNetwork

# The fields and their defaults import nothing: `tabresnet --help` lists them
# without loading torch. Validation and building load the layers they need.
__all__ = ["ARCHS", "ModelConfig", "as_number", "coerce_scalars"]


@dataclass
class ModelConfig:
    """Architecture hyperparameters; the defaults are the project's defaults.

    Attributes
    ----------
    arch : {"resnet", "resnet_regression", "preact_resnet_regression"}
        The grouped :class:`~tabresnet.models.ResNet` or one of the chapter's
        single-width networks (which take ``num_blocks[0]`` and ``c_hidden[0]``).
    block : str
        ``"ResNetBlock"`` (post-activation) or ``"PreActResNetBlock"``.
    num_blocks, c_hidden : list of int
        Blocks per group and group widths.
    activation : str
        Registry name of the activation.
    norm : str or None
        ``"batch"``, ``"layer"``, ``"none"``; ``None`` is the block's own default
        (BatchNorm for the original block, LayerNorm for pre-activation).
    dropout : float
        Residual dropout in every block.
    shortcut : {"projection", "zero_pad"}
        Shortcut where the width changes.
    zero_init : bool
        Zero each block's branch at construction (also done by ``init="zero_residual"``).
    init : str
        ``"zero_residual"``, ``"torch"``, ``"kaiming_in"`` or ``"chapter"``.
    embedding_dim : int
        Width of each high-cardinality categorical embedding.
    num_embedding : {"none", "ple", "plr"}
        Embedding of each numeric column before the backbone: piecewise-linear
        encoding on training-quantile bins or periodic features, each followed
        by a per-column Linear and ReLU (Gorishniy et al., NeurIPS 2022).
    num_embedding_dim : int
        Embedding size per numeric column.
    n_bins : int
        PLE bins per column (fewer where a column has fewer distinct values).
    n_frequencies : int
        PLR frequencies per column.
    frequency_scale : float
        PLR initial frequency standard deviation.
    ensemble_size : int
        Members trained together in one network (TabM, Gorishniy et al., ICLR
        2025); 1 is the plain network.
    ensemble : {"batch", "mini", "packed"}
        Members share the blocks' weights through rank-1 adapters in every
        Linear (BatchEnsemble) or on the first only (TabM-mini), or are fully
        independent (packed weights, batched products).
    """

    arch: str = "resnet"
    # Pre-activation blocks keep the identity path clean (the chapter: better
    # for deep nets) and LayerNorm does not depend on the batch, so small
    # tabular sets and batch-size changes do not shift the statistics.
    block: str = "PreActResNetBlock"
    # One group of two blocks of width 128: with the ensemble's members (below)
    # the chapter's [3,3,3] x 64 or our former [2,2] x 128 cost more per step and
    # did no better on the development suite (docs/benchmarks.md, "Defaults").
    num_blocks: list[int] = field(default_factory=lambda: [2])
    c_hidden: list[int] = field(default_factory=lambda: [128])
    activation: str = "relu"
    norm: str | None = None
    # No dropout: the members already regularise; with four members and
    # patience 8, 0 scored a little better than 0.1 on the suite's validation
    # rows (0.956 vs 0.960 of LightGBM's RMSE) and skips drawing masks
    # (docs/benchmarks.md, "Defaults suite", the speed round of 2026-12-02).
    dropout: float = 0.0
    shortcut: str = "projection"
    zero_init: bool = False
    # See tabresnet.models.registry.init_zero_residual and bench/init_comparison.py.
    init: str = "zero_residual"
    embedding_dim: int = 8
    # Piecewise-linear embeddings on 48 quantile bins (TabM's default bin
    # count), 8 numbers per column: 16 cost a third more on wide tables for no
    # gain we could measure.
    num_embedding: str = "ple"
    num_embedding_dim: int = 8
    n_bins: int = 48
    n_frequencies: int = 48
    frequency_scale: float = 0.1
    # Four TabM-mini members: most of an ensemble's gain (TabM reports k=32).
    # Eight scored 0.7% better on the suite's validation rows at up to 6.6x the
    # time of a single network; four, with patience 8 and no dropout, stays
    # within 3x on every table (docs/benchmarks.md, "Defaults suite").
    ensemble_size: int = 4
    ensemble: str = "mini"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every field, raising ``ValueError`` that names the bad value."""
        from .registry import get_activation, get_block, get_init, get_norm

        coerce_scalars(self)
        if self.arch not in ARCHS:
            raise ValueError(f"unknown arch {self.arch!r}; valid names are: {', '.join(ARCHS)}")
        get_block(self.block)
        get_activation(self.activation)
        if self.norm is not None:
            get_norm(self.norm)
        get_init(self.init)
        self.num_blocks = _as_int_list(self.num_blocks, "num_blocks")
        self.c_hidden = _as_int_list(self.c_hidden, "c_hidden")
        if len(self.num_blocks) != len(self.c_hidden) or not self.num_blocks:
            raise ValueError(
                "num_blocks and c_hidden need one entry per group, however: "
                f"num_blocks={self.num_blocks}, c_hidden={self.c_hidden}"
            )
        if any(n <= 0 for n in self.num_blocks) or any(c <= 0 for c in self.c_hidden):
            raise ValueError(
                f"block counts and widths must be positive, however: "
                f"num_blocks={self.num_blocks}, c_hidden={self.c_hidden}"
            )
        if self.arch != "resnet" and len(self.num_blocks) != 1:
            raise ValueError(
                f"arch {self.arch!r} has one width, however: num_blocks={self.num_blocks}; "
                "give one group or use arch='resnet'"
            )
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), however: dropout={self.dropout}")
        if self.shortcut not in SHORTCUTS[1:]:
            raise ValueError(
                f"unknown shortcut {self.shortcut!r}; valid names are: projection, zero_pad"
            )
        if int(self.embedding_dim) <= 0:
            raise ValueError(f"embedding_dim must be positive, however: {self.embedding_dim}")
        if self.num_embedding not in NUM_EMBEDDINGS:
            raise ValueError(
                f"unknown num_embedding {self.num_embedding!r}; valid names are: "
                f"{', '.join(NUM_EMBEDDINGS)}"
            )
        if self.ensemble not in ENSEMBLE_KINDS:
            raise ValueError(
                f"unknown ensemble {self.ensemble!r}; valid names are: {', '.join(ENSEMBLE_KINDS)}"
            )
        for name in ("num_embedding_dim", "n_bins", "n_frequencies", "ensemble_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, however: {name}={value!r}")
        if not float(self.frequency_scale) > 0:
            raise ValueError(f"frequency_scale must be positive, however: {self.frequency_scale}")

    # -- building -------------------------------------------------------------
    def block_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {
            "dropout": float(self.dropout),
            "shortcut": self.shortcut,
            "zero_init": bool(self.zero_init),
        }
        if self.norm is not None:
            kw["norm"] = self.norm
        return kw

    def build(self, input_dim: int, output_dim: int = 1) -> nn.Module:
        """Build the backbone network.

        Shape
        -----
        The network maps ``(N, input_dim)`` to ``(N, output_dim)``.
        """
        from .networks import PreActResNetRegression, ResNet, ResNetRegression

        if self.arch == "resnet":
            return ResNet(
                input_dim,
                output_dim,
                num_blocks=self.num_blocks,
                c_hidden=self.c_hidden,
                act_fn_name=self.activation,
                block_name=self.block,
                init=self.init,
                **self.block_kwargs(),
            )
        cls = ResNetRegression if self.arch == "resnet_regression" else PreActResNetRegression
        return cls(
            input_dim,
            output_dim,
            self.block,
            num_blocks=self.num_blocks[0],
            hidden_dim=self.c_hidden[0],
            act_fn=self.activation,
            init=self.init,
            **self.block_kwargs(),
        )

    def build_tabular(
        self, n_num: int, cardinalities: list[int], output_dim: int = 1, n_cont: int = 0
    ) -> TabularNetwork:
        """Build embeddings + backbone for ``n_num`` float and ``len(cardinalities)`` coded columns.

        Parameters
        ----------
        n_num : int
            Width of ``x_num``.
        cardinalities : list of int
            Codes of each embedded categorical column.
        output_dim : int
            Targets.
        n_cont : int
            The leading columns of ``x_num`` that are numeric features (the
            rest are indicators and one-hot codes); ``num_embedding`` applies to
            them. PLE bins are then set with ``network.numeric.fit_bins(x)``.

        Returns
        -------
        TabularNetwork
            A :class:`~tabresnet.models.packed.TabularEnsemble` when
            ``ensemble_size > 1``.

        Examples
        --------
        >>> net = ModelConfig(num_blocks=[1], c_hidden=[16]).build_tabular(4, [3], 2)
        >>> import torch
        >>> net(torch.randn(5, 4), torch.zeros(5, 1, dtype=torch.long)).shape
        torch.Size([5, 2])
        >>> cfg = ModelConfig(num_blocks=[1], c_hidden=[16], num_embedding="ple", ensemble_size=4)
        >>> net = cfg.build_tabular(4, [], 1, n_cont=3)
        >>> net.members(torch.randn(5, 4), torch.zeros(5, 0, dtype=torch.long)).shape
        torch.Size([5, 4, 1])
        """
        from .embeddings import NumericEmbeddings
        from .packed import TabularEnsemble, pack
        from .tabular import TabularNetwork

        numeric = None
        num_width = n_num
        if self.num_embedding != "none" and n_cont > 0:
            numeric = NumericEmbeddings(
                n_cont,
                n_num - n_cont,
                self.num_embedding,
                n_bins=int(self.n_bins),
                d_embedding=int(self.num_embedding_dim),
                n_frequencies=int(self.n_frequencies),
                frequency_scale=float(self.frequency_scale),
            )
            num_width = numeric.out_features
        input_dim = num_width + len(cardinalities) * int(self.embedding_dim)
        if input_dim <= 0:
            raise ValueError("the table has no usable feature columns")
        k = int(self.ensemble_size)
        if k == 1:
            backbone = self.build(input_dim, output_dim)
            return TabularNetwork(backbone, cardinalities, int(self.embedding_dim), numeric)
        backbone = pack([self.build(input_dim, output_dim) for _ in range(k)], self.ensemble)
        return TabularEnsemble(backbone, k, cardinalities, int(self.embedding_dim), numeric)

    # -- (de)serialisation --------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain types only (str, int, float, bool, lists): JSON and YAML safe."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError``."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(
                f"unknown model option(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}"
            )
        return cls(**data)

    def to_yaml(self) -> str:
        import yaml  # lazily: the model layer itself needs torch alone

        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls, text: str) -> ModelConfig:
        """Read a config from YAML text; a top-level ``model:`` section is accepted.

        >>> ModelConfig.from_yaml("block: ResNetBlock\\nnum_blocks: [1]\\nc_hidden: [8]").block
        'ResNetBlock'
        """
        import yaml

        data = yaml.safe_load(text) or {}
        if not isinstance(data, dict):
            raise ValueError("a model config must be a YAML mapping of option: value")
        if "model" in data and isinstance(data["model"], dict):
            data = data["model"]
        return cls.from_dict(data)


def coerce_scalars(config: Any) -> None:
    """Make each ``int``, ``float`` and ``bool`` field of a config dataclass that type.

    A count may arrive as a whole float (a grid from ``np.linspace``) or as
    text (``"3"``), a rate as text (PyYAML reads ``1e-3`` as a string), a flag
    as a numpy bool: each becomes the field's type. Anything else raises a
    ``ValueError`` naming the field: ``2.5`` or ``True`` for a count, ``"fast"``
    for a rate, ``"false"`` or ``1`` for a flag (a string would be truthy).

    Examples
    --------
    >>> cfg = ModelConfig(ensemble_size=4.0, dropout="0.1")
    >>> cfg.ensemble_size, cfg.dropout
    (4, 0.1)
    >>> ModelConfig(ensemble_size=2.5)
    Traceback (most recent call last):
    ...
    ValueError: ensemble_size must be a whole number, however: ensemble_size=2.5
    """
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        kind, value = hints[f.name], getattr(config, f.name)
        if kind is bool:
            if not (isinstance(value, bool) or getattr(getattr(value, "dtype", None), "kind", "") == "b"):
                raise ValueError(f"{f.name} must be true or false, however: {f.name}={value!r}")
            setattr(config, f.name, bool(value))
        elif kind in (int, float):
            number = as_number(value)
            if number is None or not math.isfinite(number) or (
                    kind is int and not float(number).is_integer()):
                what = "a whole number" if kind is int else "a finite number"
                raise ValueError(f"{f.name} must be {what}, however: {f.name}={value!r}")
            setattr(config, f.name, kind(number))


def as_number(value: Any) -> float | int | None:
    """``value`` as a real number (text that reads as one included; no bool), else None.

    >>> as_number("1e-3"), as_number(3), as_number(True), as_number("fast")
    (0.001, 3, None, None)
    """
    if isinstance(value, bool) or getattr(getattr(value, "dtype", None), "kind", "") == "b":
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, str):
        try:
            text = value.strip()
            return int(text) if text.lstrip("+-").isdigit() else float(text)
        except ValueError:
            return None
    return None


def _as_int_list(value: Any, name: str) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if isinstance(value, (list, tuple)):
        try:
            # int() alone would turn 2.7 into 2 and True into 1 without a word.
            if all(not isinstance(v, bool) and int(v) == float(v) for v in value):
                return [int(v) for v in value]
        except (TypeError, ValueError):
            pass
    raise ValueError(f"{name} must be a list of ints, however: {name}={value!r}")

