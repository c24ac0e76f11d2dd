"""Embeddings for numerical features: each numeric column becomes a small vector.

Gorishniy, Rubachev & Babenko, "On Embeddings for Numerical Features in Tabular
Deep Learning" (NeurIPS 2022) show that mapping every scalar feature to a vector
before the backbone lets MLPs and ResNets fit the irregular, step-like
functions that gradient-boosted trees find easily. Two of their embeddings:

* **PLE** (:class:`PiecewiseLinearEmbeddings`): piecewise-linear encoding on
  bins cut at the training quantiles, then a per-column ``Linear`` and ReLU
  (the paper's "Q-LR").
* **PLR** (:class:`PeriodicEmbeddings`): ``[cos(2 pi c x), sin(2 pi c x)]`` with
  trainable frequencies ``c ~ N(0, sigma)``, then a per-column ``Linear`` and
  ReLU.

:class:`NumericEmbeddings` applies one of them to the first ``n_cont`` columns
of ``x_num`` (the scaled numeric columns; see
:class:`tabresnet.data.Preprocessor`) and passes the rest (missing-value
indicators, one-hot codes) through unchanged. Every module accepts any number of
leading dimensions (``(N, n)`` or ``(N, k, n)`` for the ensembles of
:mod:`tabresnet.models.packed`) and scripts and exports to ONNX.

>>> import torch
>>> emb = NumericEmbeddings(n_cont=2, n_other=1, kind="ple", n_bins=4, d_embedding=3)
>>> _ = emb.fit_bins(torch.randn(100, 3))
>>> emb(torch.randn(5, 3)).shape     # 2 columns x 3 + 1 passed through
torch.Size([5, 7])
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .names import NUM_EMBEDDINGS

__all__ = [
    "NUM_EMBEDDINGS",
    "NumericEmbeddings",
    "PeriodicEmbeddings",
    "PiecewiseLinearEmbeddings",
    "quantile_bins",
    "weighted_quantile",
]


# Stands in for an unbounded side of the first and last bin: finite, so that
# min/max stay exportable (ONNX Min/Max) and no inf reaches a product.
_OPEN = 1e30


def _check_positive(**values: int) -> None:
    # A plain function (no f-string "=" conversions inside modules' methods, which
    # TorchScript's frontend refuses if it ever reads them).
    bad = {k: v for k, v in values.items() if not v > 0}
    if bad:
        shown = ", ".join(f"{k}={v!r}" for k, v in values.items())
        raise ValueError(f"{', '.join(values)} must be positive, however: {shown}")


def weighted_quantile(x: torch.Tensor, q: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Quantiles of ``x`` whose values count ``weight`` times each.

    For integer weights this is ``torch.quantile(x.repeat_interleave(weight), q)``
    (linear interpolation between order statistics) without repeating anything;
    other weights >= 0 continue it (a row covers a stretch of ``weight`` of the
    sorted, virtually repeated values).

    Shape
    -----
    - ``x``, ``weight``: ``(N,)``; ``q``: ``(Q,)`` in [0, 1]
    - Output: ``(Q,)``, float64

    Examples
    --------
    >>> x, w = torch.tensor([3.0, 1.0, 2.0]), torch.tensor([1.0, 2.0, 0.0])
    >>> q = torch.tensor([0.0, 0.3, 0.5, 1.0])
    >>> weighted_quantile(x, q, w).tolist() == torch.quantile(
    ...     torch.tensor([1.0, 1.0, 3.0], dtype=torch.float64), q.double()).tolist()
    True
    """
    x, w, q = x.to(torch.float64), weight.to(torch.float64), q.to(torch.float64)
    order = torch.argsort(x)
    xs, ws = x[order], w[order]
    keep = ws > 0
    xs, ws = xs[keep], ws[keep]
    ends = torch.cumsum(ws, 0)  # row i covers the repeated positions [ends[i-1], ends[i])
    pos = q * torch.clamp(ends[-1] - 1, min=0.0)
    lo = torch.floor(pos)
    last = xs.numel() - 1

    def value(j: torch.Tensor) -> torch.Tensor:
        return xs[torch.clamp(torch.searchsorted(ends, j, right=True), max=last)]

    # torch.lerp, as torch.quantile and numpy interpolate: ties stay exact ties.
    return torch.lerp(value(lo), value(lo + 1), pos - lo)


def quantile_bins(
    x: torch.Tensor, n_bins: int, weight: torch.Tensor | None = None
) -> list[torch.Tensor]:
    """Bin edges at the quantiles of each column of ``x``, duplicates removed.

    Parameters
    ----------
    x : Tensor, shape (N, n)
        Training values of the columns.
    n_bins : int
        Bins per column at most; a column with fewer distinct values gets fewer.
    weight : Tensor, shape (N,), optional
        Row weights: the quantiles of the rows repeated by their weights
        (:func:`weighted_quantile`).

    Returns
    -------
    list of Tensor
        ``n`` sorted edge vectors of length ``T_j + 1``; a constant column gets
        a single edge (no bin).

    Examples
    --------
    >>> [e.tolist() for e in quantile_bins(torch.tensor([[0.0, 1.0], [1.0, 1.0], [2.0, 1.0]]), 2)]
    [[0.0, 1.0, 2.0], [1.0]]
    """
    _check_positive(n_bins=n_bins)
    q = torch.linspace(0.0, 1.0, n_bins + 1, dtype=torch.float64)
    x = x.detach().to(torch.float64)
    # Deduplicated after the cast: two float64 quantiles may round to one float32
    # edge, and a bin of width 0 would divide by zero.
    if weight is not None:
        return [torch.unique(weighted_quantile(x[:, j], q, weight).float())
                for j in range(x.shape[1])]
    return [torch.unique(torch.quantile(x[:, j], q).float()) for j in range(x.shape[1])]


class _PerColumnLinear(nn.Module):
    """``n`` independent ``Linear(d_in, d_out)``, one per column: ``(..., n, d_in) -> (..., n, d_out)``."""

    def __init__(self, n: int, d_in: int, d_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n, d_in, d_out))
        self.bias = nn.Parameter(torch.empty(n, d_out))
        # nn.Linear's default init, column by column.
        bound = 1.0 / math.sqrt(d_in)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("...nt,ntd->...nd", x, self.weight) + self.bias


class PiecewiseLinearEmbeddings(nn.Module):
    """Piecewise-linear encoding (PLE) of each column, then Linear + ReLU per column.

    For column ``j`` with edges ``b_0 < ... < b_T`` the encoding has ``T``
    components; component ``t`` is ``(x - b_t) / (b_{t+1} - b_t)`` clipped to
    ``[0, 1]``, except that the first is not clipped below and the last not
    above (Gorishniy et al. 2022, eq. 1). Columns with fewer bins than
    ``n_bins`` are padded with components that are always 0.

    Parameters
    ----------
    n : int
        Number of columns.
    n_bins : int
        Bins per column at most (the paper's ``T``).
    d_embedding : int
        Output size per column.

    Shape
    -----
    - Input: ``(..., n)``
    - Output: ``(..., n, d_embedding)``

    Examples
    --------
    >>> emb = PiecewiseLinearEmbeddings(2, n_bins=3, d_embedding=4)
    >>> emb.set_bins(quantile_bins(torch.randn(50, 2), 3))
    >>> emb(torch.randn(6, 2)).shape
    torch.Size([6, 2, 4])
    >>> emb.encode(torch.tensor([[-9.0, 9.0]])).shape   # (..., n, n_bins)
    torch.Size([1, 2, 3])
    """

    def __init__(self, n: int, n_bins: int, d_embedding: int):
        super().__init__()
        _check_positive(n=n, n_bins=n_bins, d_embedding=d_embedding)
        # The bins are data (set from the training rows), saved with the
        # weights; until set_bins they are one unit bin per slot.
        self.register_buffer("left", torch.zeros(n, n_bins))
        self.register_buffer("width", torch.ones(n, n_bins))
        self.register_buffer("low", torch.zeros(n, n_bins))
        self.register_buffer("high", torch.ones(n, n_bins))
        self.register_buffer("mask", torch.ones(n, n_bins))
        self.linear = _PerColumnLinear(n, n_bins, d_embedding)
        self.activation = nn.ReLU()

    def set_bins(self, edges: list[torch.Tensor]) -> None:
        """Use these edges (from :func:`quantile_bins`); one vector per column."""
        n, n_bins = self.left.shape
        if len(edges) != n:
            raise ValueError(f"need edges for {n} columns, however: {len(edges)}")
        left, width = torch.zeros(n, n_bins), torch.ones(n, n_bins)
        low, high = torch.zeros(n, n_bins), torch.ones(n, n_bins)
        mask = torch.zeros(n, n_bins)
        for j, e in enumerate(edges):
            t = int(e.numel()) - 1
            if t > n_bins:
                raise ValueError(f"column {j} has {t} bins, more than n_bins={n_bins}")
            if t < 1:
                continue  # a constant column: every component stays 0
            left[j, :t] = e[:-1]
            width[j, :t] = e[1:] - e[:-1]
            low[j, 0] = -_OPEN
            high[j, t - 1] = _OPEN
            mask[j, :t] = 1.0
        for name, value in (("left", left), ("width", width), ("low", low), ("high", high), ("mask", mask)):
            getattr(self, name).copy_(value)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The piecewise-linear encoding alone: ``(..., n) -> (..., n, n_bins)``."""
        z = (x.unsqueeze(-1) - self.left) / self.width
        return torch.minimum(torch.maximum(z, self.low), self.high) * self.mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.linear(self.encode(x)))


class PeriodicEmbeddings(nn.Module):
    """Periodic features with trainable frequencies, then Linear + ReLU per column (PLR).

    ``v = [cos(2 pi c x), sin(2 pi c x)]`` with ``c`` of shape ``(n,
    n_frequencies)`` initialised from ``N(0, frequency_scale)`` (Gorishniy et
    al. 2022, section 3.3; the scale ``sigma`` matters most and is worth tuning).

    Parameters
    ----------
    n : int
        Number of columns.
    n_frequencies : int
        Frequencies per column (``k`` in the paper).
    d_embedding : int
        Output size per column.
    frequency_scale : float
        Standard deviation ``sigma`` of the initial frequencies.

    Shape
    -----
    - Input: ``(..., n)``
    - Output: ``(..., n, d_embedding)``

    Examples
    --------
    >>> emb = PeriodicEmbeddings(3, n_frequencies=8, d_embedding=4, frequency_scale=0.1)
    >>> emb(torch.randn(5, 2, 3)).shape
    torch.Size([5, 2, 3, 4])
    """

    def __init__(self, n: int, n_frequencies: int, d_embedding: int, frequency_scale: float):
        super().__init__()
        _check_positive(n=n, n_frequencies=n_frequencies, d_embedding=d_embedding)
        _check_positive(frequency_scale=frequency_scale)
        self.frequencies = nn.Parameter(torch.randn(n, n_frequencies) * frequency_scale)
        self.linear = _PerColumnLinear(n, 2 * n_frequencies, d_embedding)
        self.activation = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = 2 * math.pi * self.frequencies * x.unsqueeze(-1)
        return self.activation(self.linear(torch.cat([torch.cos(v), torch.sin(v)], dim=-1)))


class NumericEmbeddings(nn.Module):
    """Embed the first ``n_cont`` columns, pass the other ``n_other`` through.

    Parameters
    ----------
    n_cont : int
        Leading columns to embed (the scaled numeric columns).
    n_other : int
        Trailing columns kept as they are (indicators, one-hot codes).
    kind : {"ple", "plr"}
        :class:`PiecewiseLinearEmbeddings` or :class:`PeriodicEmbeddings`.
    n_bins : int
        PLE bins per column.
    d_embedding : int
        Embedding size per column.
    n_frequencies : int
        PLR frequencies per column.
    frequency_scale : float
        PLR initial frequency scale.

    Attributes
    ----------
    out_features : int
        ``n_cont * d_embedding + n_other``.

    Shape
    -----
    - Input: ``(..., n_cont + n_other)``
    - Output: ``(..., out_features)``

    Examples
    --------
    >>> emb = NumericEmbeddings(2, 0, kind="plr", d_embedding=4)
    >>> emb(torch.randn(3, 2)).shape
    torch.Size([3, 8])
    """

    def __init__(
        self,
        n_cont: int,
        n_other: int,
        kind: str = "ple",
        *,
        n_bins: int = 48,
        d_embedding: int = 16,
        n_frequencies: int = 48,
        frequency_scale: float = 0.1,
    ):
        super().__init__()
        if n_cont <= 0 or n_other < 0:
            raise ValueError(
                f"need n_cont > 0 and n_other >= 0, however: n_cont={n_cont}, n_other={n_other}"
            )
        if kind == "ple":
            self.embedding: nn.Module = PiecewiseLinearEmbeddings(n_cont, n_bins, d_embedding)
        elif kind == "plr":
            self.embedding = PeriodicEmbeddings(n_cont, n_frequencies, d_embedding, frequency_scale)
        else:
            raise ValueError(f"unknown numeric embedding {kind!r}; valid names are: ple, plr")
        self.n_cont = int(n_cont)
        self.out_features = n_cont * d_embedding + n_other

    def fit_bins(self, x: torch.Tensor, weight: torch.Tensor | None = None) -> NumericEmbeddings:
        """Cut PLE bins at the quantiles of the training rows ``x`` ``(N, n_cont + n_other)``.

        ``weight`` ``(N,)``: row weights, as if each row were repeated by its weight.
        """
        if isinstance(self.embedding, PiecewiseLinearEmbeddings):
            n_bins = self.embedding.left.shape[1]
            self.embedding.set_bins(quantile_bins(x[:, : self.n_cont], n_bins, weight))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cont, other = x[..., : self.n_cont], x[..., self.n_cont :]
        return torch.cat([self.embedding(cont).flatten(-2), other], dim=-1)
