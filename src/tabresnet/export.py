"""A trained model as one graph that runs without Python: ONNX or TorchScript.

    tabresnet export RUN_DIR --onnx model.onnx          # + model.onnx.json beside it
    tabresnet export RUN_DIR --torchscript model.pt     # + model.pt.json

The graph holds the network *and* the fitted numeric preprocessing, so it
takes raw columns and returns predictions in target units::

    numeric      float64 (N, n_numeric)  raw values, NaN (or inf) for missing
                 (float32 with float32=True)
                 -> median imputation, missing indicators,
                    quantile transform (piecewise-linear over the fitted quantiles,
                    then the normal quantile function) | standardisation | none
    categorical  int64 (N, n_categorical)  codes from the JSON beside the graph:
                 1 + the category's index, 0 (or any code out of range) = missing
                 or unseen -> one-hot columns | embedding codes
    -> network (one network, an in-network ensemble or a bag: the members' mean)
    -> (a quantile model: each target's Q levels sorted)
    -> prediction float32 (N, n_targets) = output * target std + target mean
                 (a quantile model: its level nearest 0.5, as predict)
    -> quantiles  float32 (N, n_targets, Q), a quantile model only: every level,
                 sorted, in target units; [:, t, q] is predict_quantiles's
                 [:, t, q] ([:, q] for one target). ONNX: a second output;
                 TorchScript: module.quantiles(numeric, categorical)

The JSON sidecar (``<file>.json``) names the inputs, their column order, the
category -> code mapping of every categorical column, the target names, the
outputs (name, dtype, shape), the quantile levels (``"quantiles": [0.1, 0.5,
0.9]``, ``[]`` for a point model), the ONNX opset and the tabresnet version.
Categories are matched as text, the way :class:`tabresnet.data.Preprocessor`
reads them (an integral float ``3.0`` is ``"3"``: a client that reads such a
column as a double must format 4.0 as ``"4"``, or every row gets code 0). A date
column enters as its numeric parts, listed among the numeric inputs:
``<col>__days`` (days since 1970-01-01, the time of day as a fraction; text
dates as written, datetimes with a time zone in UTC), ``__year``, ``__month`` (1-12),
``__day`` (1-31) and ``__weekday`` (Monday 0 to Sunday 6, as pandas counts:
not C's ``tm_wday`` or JavaScript's ``getDay``, where Sunday is 0).

The preprocessing is computed in float64 inside the graph, as ``predict``
computes it, and the network in float32; the only approximation is the normal
quantile function (Acklam's rational approximation, relative error below
1.2e-9, far under float32's 6e-8). The numeric input is float64 by default
because the quantile transform is steep where training values crowd together
and jumps at a value many rows share: a value rounded to float32 (5.5683 ->
5.5682998) can move the prediction by 1e-4 relative or more. With
``float32=True`` the graph takes float32 and snaps a value that equals a
quantile knot in float32 back to the knot's decimal value (5.5683), which
removes the jumps; the rounding elsewhere remains (see docs/benchmarks.md).

Examples
--------
>>> import numpy as np, pandas as pd, tempfile, tabresnet
>>> from pathlib import Path
>>> rng = np.random.default_rng(0)
>>> df = pd.DataFrame({"a": rng.normal(size=200), "c": rng.choice(["x", "y"], 200)})
>>> df["y"] = 3 * df.a + (df.c == "x")
>>> run = tabresnet.fit(df, target="y", max_epochs=2, c_hidden=[8], num_blocks=[1],
...                     ensemble_size=2, progress="none", report=False)
>>> path = tabresnet.export_onnx(run.model, Path(tempfile.mkdtemp()) / "model.onnx")
>>> meta = read_sidecar(path)
>>> [(i["name"], i["columns"]) for i in meta["inputs"]]
[('numeric', ['a']), ('categorical', ['c'])]
>>> meta["categories"]["c"]
{'x': 1, 'y': 2}
>>> import onnxruntime as ort
>>> session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
>>> new = pd.DataFrame({"a": [0.5, None], "c": ["y", "unseen"]})
>>> (got,) = session.run(None, inputs_from_frame(new, meta))
>>> got.shape
(2, 1)
>>> bool(np.allclose(got[:, 0], run.model.predict(new), rtol=1e-4))
True

A quantile model's graph gives its levels as a second output:

>>> run = tabresnet.fit(df, target="y", loss="quantile", quantiles=[0.1, 0.5, 0.9],
...                     max_epochs=2, c_hidden=[8], num_blocks=[1], progress="none",
...                     report=False)
>>> path = tabresnet.export_onnx(run.model, path)
>>> meta = read_sidecar(path)
>>> [(o["name"], o["shape"]) for o in meta["outputs"]], meta["quantiles"]
([('prediction', ['batch', 1]), ('quantiles', ['batch', 1, 3])], [0.1, 0.5, 0.9])
>>> session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
>>> prediction, levels = session.run(None, inputs_from_frame(new, meta))
>>> bool(np.allclose(levels[:, 0], run.model.predict_quantiles(new), rtol=1e-4))
True
>>> bool((prediction[:, 0] == levels[:, 0, 1]).all())  # the level nearest 0.5
True
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from . import __version__
from .artifact import TabularModel, _create_temp, as_model
from .data import read_table
from .data.io import is_stream
from .data.preprocess import _category_strings
from .data.schema import DATE_PARTS, as_float, date_parts
from .defaults import point_quantile
from .errors import ConfigError, DataError, ExportError

__all__ = [
    "ONNX_OPSET",
    "NormalQuantile",
    "RawInputModel",
    "export_onnx",
    "export_torchscript",
    "inputs_from_frame",
    "read_sidecar",
]

# Opset 17: supported by onnxruntime releases from 1.13 (2022) on and by
# torch's TorchScript-based exporter; the graph needs nothing newer.
ONNX_OPSET = 17
SIDECAR_FORMAT = "tabresnet-export"
SIDECAR_VERSION = 1
_F32_MAX = float(np.finfo(np.float32).max)
# sklearn's QuantileTransformer: values within this distance of the first or
# last quantile map to the ends of [0, 1], which are then clipped so that the
# normal quantile function stays finite (sklearn.preprocessing._data).
_BOUNDS_THRESHOLD = 1e-7
_P_MIN = _BOUNDS_THRESHOLD - float(np.spacing(1))
_P_MAX = 1.0 - _P_MIN

# Acklam's rational approximation of the standard normal quantile function
# (P. J. Acklam, "An algorithm for computing the inverse normal cumulative
# distribution function", 2003): relative error < 1.15e-9 on (0, 1). ONNX has
# no erfinv; these are plain multiplications, divisions, a log and a sqrt.
_A = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
      1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)
_B = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
      6.680131188771972e01, -1.328068155288572e01)
_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
      -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00,
      3.754408661907416e00)
_P_LOW = 0.02425


def _horner(coefficients: list[float], x: torch.Tensor) -> torch.Tensor:
    out = torch.full_like(x, coefficients[0])
    for c in coefficients[1:]:
        out = out * x + c
    return out


class NormalQuantile(nn.Module):
    """The standard normal quantile function (``scipy.stats.norm.ppf``) from exportable ops.

    Acklam's rational approximations: one on the central region, one on the
    tails (relative error below 1.2e-9). ONNX has no ``erfinv``; this is
    multiplications, divisions, a log and a square root.

    Shape
    -----
    - Input: any shape, values in ``(0, 1)``
    - Output: the same shape

    Examples
    --------
    >>> from scipy import stats
    >>> p = torch.tensor([1e-7, 0.01, 0.3, 0.5, 0.9, 0.999], dtype=torch.float64)
    >>> expected = torch.from_numpy(stats.norm.ppf(p.numpy()))
    >>> bool(torch.allclose(NormalQuantile()(p), expected, rtol=2e-9, atol=1e-12))
    True
    """

    def __init__(self):
        super().__init__()
        self.a, self.b, self.c, self.d = (list(v) for v in (_A, _B, _C, _D))
        self.p_low = _P_LOW

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        q = p - 0.5
        r = q * q
        central = _horner(self.a, r) * q / (_horner(self.b, r) * r + 1.0)
        tail_p = torch.where(p < 0.5, p, 1.0 - p)
        s = torch.sqrt(-2.0 * torch.log(tail_p))
        tail = _horner(self.c, s) / (_horner(self.d, s) * s + 1.0)
        tail = torch.where(p < 0.5, tail, -tail)
        return torch.where((p >= self.p_low) & (p <= 1.0 - self.p_low), central, tail)


class _Interp(nn.Module):
    """``np.interp(x[:, j], xp[j], fp[j])`` for every column ``j``, exportable.

    A binary search unrolled into ``ceil(log2(n + 1))`` steps of gathers and
    comparisons finds, per value, the last knot ``<= x`` (numpy's rule); the
    value is then ``slope * (x - xp) + fp`` on that segment; outside
    ``[xp[0], xp[-1]]`` it is ``fp[0]`` or ``fp[-1]``, as numpy's.

    Shape
    -----
    - Input: ``(N, m)`` float64
    - Output: ``(N, m)`` float64
    """

    def __init__(self, xp: np.ndarray, fp: np.ndarray):
        super().__init__()
        m, n = xp.shape
        if n < 2:
            raise ValueError(f"need at least 2 knots per column, however: {n}")
        dx, dy = np.diff(xp, axis=1), np.diff(fp, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            # A segment of width 0 is never the one a value falls in (the
            # search takes the last knot <= x): its slope is never read.
            slope = np.where(dx > 0, dy / np.where(dx > 0, dx, 1.0), 0.0)
        slope = np.concatenate([slope, np.zeros((m, 1))], axis=1)
        self.n = int(n)
        self.steps = int(n).bit_length()
        for name, table in (("xp", xp), ("fp", fp), ("slope", slope)):
            self.register_buffer(name, torch.tensor(np.array(table, dtype=np.float64)).reshape(-1))
        self.register_buffer("offset", torch.arange(m, dtype=torch.long) * n)

    def search(self, x: torch.Tensor) -> torch.Tensor:
        """The number of knots ``<= x`` in each column, ``(N, m)`` int64."""
        lo = torch.zeros_like(x, dtype=torch.long)
        hi = torch.full_like(lo, self.n)
        for _ in range(self.steps):
            mid = torch.div(lo + hi, 2, rounding_mode="floor")
            knot = self.xp[self.offset + torch.clamp(mid, max=self.n - 1)]
            active = lo < hi
            right = active & (knot <= x)
            lo = torch.where(right, mid + 1, lo)
            hi = torch.where(active & ~right, mid, hi)
        return lo

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        count = self.search(x)
        # The segment starts at the last knot <= x.
        idx = self.offset + torch.clamp(count - 1, min=0, max=self.n - 2)
        out = self.slope[idx] * (x - self.xp[idx]) + self.fp[idx]
        # Outside the knots (and on the last one, whatever ties precede it): the end values.
        out = torch.where(count == 0, self.fp[self.offset], out)
        return torch.where(count == self.n, self.fp[self.offset + self.n - 1], out)


# Each numeric transform is a module ``forward(x, from_float32) -> (N, k)`` float64;
# ``from_float32`` says that ``x`` was float32 before (see _QuantileNormal.snap).
class _Standardise(nn.Module):
    def __init__(self, mean: np.ndarray, std: np.ndarray):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float64))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float64))

    def forward(self, x: torch.Tensor, from_float32: bool) -> torch.Tensor:
        return (x - self.mean) / self.std


class _Unscaled(nn.Module):
    def forward(self, x: torch.Tensor, from_float32: bool) -> torch.Tensor:
        return x


class _QuantileNormal(nn.Module):
    """scikit-learn's ``QuantileTransformer(output_distribution="normal").transform``.

    ``u = (interp(x, q, r) - interp(-x, -q[::-1], -r[::-1])) / 2`` (both
    directions, so that tied quantiles map to the middle of their references),
    ``u = 0`` within 1e-7 of the first quantile and 1 within 1e-7 of the last,
    then the normal quantile function, clipped as sklearn clips it. Columns
    constant in training are 0.
    """

    def __init__(self, quantiles: np.ndarray, constant: np.ndarray):
        super().__init__()
        from scipy import stats

        q = np.asarray(quantiles, dtype=np.float64).T  # (m, n_quantiles)
        m, n = q.shape
        ref = np.broadcast_to(np.linspace(0.0, 1.0, n), (m, n))
        self.forward_interp = _Interp(q, ref)
        self.backward_interp = _Interp(-q[:, ::-1], -ref[:, ::-1])
        # Each knot as float32 holds it, and the number a person would have
        # written for that float32 (its shortest decimal form, read as float64):
        # see snap().
        k32 = q.astype(np.float32)
        self.register_buffer("knots32", torch.tensor(k32.astype(np.float64)).reshape(-1))
        decimal = np.array([float(str(v)) for v in k32.reshape(-1)], dtype=np.float64)
        self.register_buffer("decimal", torch.tensor(decimal))
        self.register_buffer("first", torch.from_numpy(q[:, 0].copy()))
        self.register_buffer("last", torch.from_numpy(q[:, -1].copy()))
        self.register_buffer("columns", torch.from_numpy(np.flatnonzero(~constant)).long())
        # Output column j takes z[:, place[j]]; place m is a column of zeros.
        place = np.full(len(constant), m, dtype=np.int64)
        place[np.flatnonzero(~constant)] = np.arange(m)
        self.register_buffer("place", torch.from_numpy(place))
        self.ppf = NormalQuantile()
        self.threshold, self.p_min, self.p_max = _BOUNDS_THRESHOLD, _P_MIN, _P_MAX
        self.z_min = float(stats.norm.ppf(_P_MIN))
        self.z_max = float(stats.norm.ppf(_P_MAX))

    def forward(self, x: torch.Tensor, from_float32: bool) -> torch.Tensor:
        xq = x.index_select(1, self.columns)
        if from_float32:
            xq = self.snap(xq)
        u = 0.5 * (self.forward_interp(xq) - self.backward_interp(-xq))
        u = torch.where(xq + self.threshold > self.last, torch.ones_like(u), u)
        u = torch.where(xq - self.threshold < self.first, torch.zeros_like(u), u)
        z = self.ppf(torch.clamp(u, min=self.p_min, max=self.p_max))
        z = torch.clamp(z, min=self.z_min, max=self.z_max)
        z = torch.cat([z, torch.zeros_like(z[:, :1])], dim=1)
        return z.index_select(1, self.place)


    def snap(self, x: torch.Tensor) -> torch.Tensor:
        """A float32 value that equals a knot as float32 becomes the knot's decimal value.

        The quantile transform is steep, or jumps, at a value that several
        training rows share (tied quantiles map to the middle of their
        range). Such a value, e.g. 5.5683, arrives as float32 5.5682998 and
        would land below its knot, far from where ``predict`` puts it; read
        back as its shortest decimal form it is 5.5683 again. Away from the
        knots the transform is smooth and float32 rounding moves it as little.
        """
        interp, n = self.forward_interp, self.forward_interp.n
        count = interp.search(x)
        below = interp.offset + torch.clamp(count - 1, min=0, max=n - 1)
        above = interp.offset + torch.clamp(count, min=0, max=n - 1)
        snapped = torch.where(self.knots32[above] == x, self.decimal[above], x)
        return torch.where(self.knots32[below] == x, self.decimal[below], snapped)


class _Zeros(nn.Module):
    """Quantile transform of columns that were all constant in training: 0."""

    def forward(self, x: torch.Tensor, from_float32: bool) -> torch.Tensor:
        return torch.zeros_like(x)


class RawInputModel(nn.Module):
    """A model's network with its preprocessing folded in: raw columns in, target units out.

    Build it with :meth:`from_model`; :func:`export_onnx` and
    :func:`export_torchscript` write it. It computes what
    :meth:`tabresnet.artifact.TabularModel.predict` computes, from tensors.

    Parameters
    ----------
    model : TabularModel
        A trained model (``tabresnet.load(...)`` or ``fit(...).model``).

    Shape
    -----
    - Input: ``numeric`` ``(N, n_numeric)`` float64 or float32 (NaN or inf =
      missing; see :class:`_QuantileNormal.snap` for float32),
      ``categorical`` ``(N, n_categorical)`` int64 codes (0 = missing or unseen)
    - Output: ``(N, n_targets)`` float32, in target units (a quantile model:
      its level nearest 0.5, as ``predict``); :meth:`quantiles` gives a
      quantile model's ``(N, n_targets, Q)`` levels

    Examples
    --------
    >>> import numpy as np, pandas as pd, tabresnet
    >>> df = pd.DataFrame({"a": np.arange(50.0), "y": np.arange(50.0) % 7})
    >>> run = tabresnet.fit(df, target="y", max_epochs=1, c_hidden=[8], num_blocks=[1],
    ...                     progress="none", report=False)
    >>> module = RawInputModel(run.model)
    >>> numeric = torch.tensor([[3.0], [float("nan")]], dtype=torch.float64)
    >>> out = module(numeric, torch.zeros(2, 0, dtype=torch.long))
    >>> out.shape, out.dtype
    (torch.Size([2, 1]), torch.float32)
    """

    def __init__(self, model: TabularModel):
        super().__init__()
        pre = model.preprocessor
        names = list(pre._num_names)
        self.n_numeric = len(names)
        self.register_buffer("median", torch.as_tensor(pre.median_, dtype=torch.float64))
        self.scale: nn.Module
        if pre.numeric_transform == "standard":
            self.scale = _Standardise(pre.mean_, pre.std_)
        elif pre.numeric_transform == "quantile" and pre.quantiles_ is not None:
            self.scale = _QuantileNormal(pre.quantiles_, np.asarray(pre.constant_, bool))
        elif pre.numeric_transform == "quantile":
            self.scale = _Zeros()
        else:
            self.scale = _Unscaled()
        self.register_buffer(
            "indicators", torch.tensor([names.index(c) for c in pre.indicators_], dtype=torch.long)
        )
        cats = list(pre.schema.categorical)
        self.n_categorical = len(cats)
        # One-hot: slot s compares input column onehot_column[s] with code onehot_code[s].
        columns, codes = [], []
        for c in pre.onehot_:
            columns += [cats.index(c)] * len(pre.categories_[c])
            codes += range(1, len(pre.categories_[c]) + 1)
        self.n_onehot = len(columns)
        self.register_buffer("onehot_column", torch.tensor(columns, dtype=torch.long))
        self.register_buffer("onehot_code", torch.tensor(codes, dtype=torch.long))
        self.n_embedded = len(pre.embedded_)
        self.register_buffer(
            "embedded_column", torch.tensor([cats.index(c) for c in pre.embedded_], dtype=torch.long)
        )
        self.register_buffer(
            "embedded_max",
            torch.tensor([len(pre.categories_[c]) for c in pre.embedded_], dtype=torch.long),
        )
        self.register_buffer("target_mean", torch.as_tensor(pre.target_mean_, dtype=torch.float64))
        self.register_buffer("target_std", torch.as_tensor(pre.target_std_, dtype=torch.float64))
        self.f32_max = _F32_MAX
        self.network = model.network.eval()
        self.n_targets = len(model.targets)
        # A quantile model (``--loss quantile``) outputs Q levels per target (``t * Q + q``):
        # sorted, as predict sorts them, and the level nearest 0.5 is the prediction.
        levels = list(model.quantiles)
        self.n_q = max(1, len(levels))
        self.point = point_quantile(levels) if levels else 0
        self.is_quantile = bool(levels)
        self.eval()

    def _network(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        """Raw columns -> the network's outputs ``(N, n_targets * Q)``, float64."""
        n = numeric.shape[0]
        x = numeric.to(torch.float64)
        gaps = torch.isnan(x) | torch.isinf(x)
        x = torch.where(gaps, self.median.expand_as(x), x)
        parts = [self.scale(x, numeric.dtype == torch.float32), gaps.index_select(1, self.indicators).to(torch.float64)]
        x_num = torch.clamp(torch.cat(parts, dim=1), min=-self.f32_max, max=self.f32_max).to(torch.float32)
        if self.n_onehot > 0:
            hot = categorical.index_select(1, self.onehot_column) == self.onehot_code
            x_num = torch.cat([x_num, hot.to(torch.float32)], dim=1)
        if self.n_embedded > 0:
            codes = categorical.index_select(1, self.embedded_column)
            known = (codes >= 0) & (codes <= self.embedded_max)
            x_cat = torch.where(known, codes, torch.zeros_like(codes))
        else:
            x_cat = torch.zeros((n, 0), dtype=torch.long, device=numeric.device)
        return self.network(x_num, x_cat).to(torch.float64)

    def _levels(self, z: torch.Tensor) -> torch.Tensor:
        """Network outputs ``(N, n_targets * Q)`` -> ``(N, n_targets, Q)`` float64 target units.

        Each target's levels sorted, as ``predict`` sorts them (never crossing).
        """
        z = z.reshape(z.shape[0], self.n_targets, self.n_q).sort(dim=-1).values
        return z * self.target_std.unsqueeze(-1) + self.target_mean.unsqueeze(-1)

    def _prediction(self, z: torch.Tensor) -> torch.Tensor:
        if self.n_q > 1:
            return self._levels(z)[:, :, self.point].to(torch.float32)
        return (z * self.target_std + self.target_mean).to(torch.float32)

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        return self._prediction(self._network(numeric, categorical))

    @torch.jit.export
    def quantiles(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        """A quantile model's levels, ``(N, n_targets, Q)`` float32 in target units.

        Each target's levels sorted, in the order of the sidecar's
        ``"quantiles"`` (:attr:`tabresnet.artifact.TabularModel.quantiles`):
        ``out[:, t, q]`` is :meth:`~tabresnet.artifact.TabularModel.predict_quantiles`'s
        ``[:, t, q]``, or ``[:, q]`` for a model of one target. ``forward``'s
        prediction is the level nearest 0.5. Kept in the TorchScript module as
        ``module.quantiles(numeric, categorical)``.

        Raises
        ------
        RuntimeError
            For a point model (trained without ``--loss quantile``), as
            ``predict_quantiles`` refuses one.

        Examples
        --------
        >>> import numpy as np, pandas as pd, tabresnet
        >>> df = pd.DataFrame({"a": np.arange(50.0), "y": np.arange(50.0) % 7})
        >>> run = tabresnet.fit(df, target="y", loss="quantile", quantiles=[0.1, 0.5, 0.9],
        ...                     max_epochs=1, c_hidden=[8], num_blocks=[1],
        ...                     progress="none", report=False)
        >>> module = RawInputModel(run.model)
        >>> numeric = torch.tensor([[3.0], [float("nan")]], dtype=torch.float64)
        >>> levels = module.quantiles(numeric, torch.zeros(2, 0, dtype=torch.long))
        >>> levels.shape
        torch.Size([2, 1, 3])
        >>> bool((levels.diff(dim=-1) >= 0).all())
        True
        >>> expected = run.model.predict_quantiles(pd.DataFrame({"a": [3.0, None]}))
        >>> bool(np.allclose(levels[:, 0].detach().numpy(), expected, rtol=1e-4))
        True
        """
        if not self.is_quantile:
            raise RuntimeError("this model predicts a point, not quantiles; train with "
                               "--loss quantile --quantiles 0.1 0.5 0.9")
        return self._levels(self._network(numeric, categorical)).to(torch.float32)

    @classmethod
    def from_model(cls, model: TabularModel | str | Path) -> RawInputModel:
        """From a :class:`~tabresnet.artifact.TabularModel` or a model path."""
        return cls(_as_model(model))


class _OnnxInputs(nn.Module):
    """Only the inputs the model has: a graph input of width 0 helps no one.

    A quantile model's graph has two outputs, the prediction and all levels,
    from one pass through the network.
    """

    def __init__(self, core: RawInputModel):
        super().__init__()
        self.core = core

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        core = self.core
        if core.n_numeric and core.n_categorical:
            numeric, categorical = inputs
        elif core.n_numeric:
            (numeric,) = inputs
            categorical = torch.zeros((numeric.shape[0], 0), dtype=torch.long)
        else:
            (categorical,) = inputs
            numeric = torch.zeros((categorical.shape[0], 0), dtype=torch.float64)
        if not core.is_quantile:
            return core(numeric, categorical)
        z = core._network(numeric, categorical)
        return core._prediction(z), core._levels(z).to(torch.float32)


# -- the sidecar ------------------------------------------------------------------------
def sidecar_path(path: str | Path) -> Path:
    """``model.onnx`` -> ``model.onnx.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def _sidecar(model: TabularModel, kind: str, inputs: list[str],
             numeric_dtype: str = "float64") -> dict[str, Any]:
    pre = model.preprocessor
    schema = pre.schema
    specs = {
        "numeric": {
            "name": "numeric",
            "dtype": numeric_dtype,
            "shape": ["batch", len(pre._num_names)],
            "columns": list(pre._num_names),
            "missing": "NaN (inf counts as missing too)",
        },
        "categorical": {
            "name": "categorical",
            "dtype": "int64",
            "shape": ["batch", len(schema.categorical)],
            "columns": list(schema.categorical),
            "missing": 0,
            "unknown": 0,
        },
    }
    meta: dict[str, Any] = {
        "format": SIDECAR_FORMAT,
        "format_version": SIDECAR_VERSION,
        "kind": kind,
        "tabresnet_version": __version__,
        "torch_version": torch.__version__.split("+")[0],
        "inputs": [specs[name] for name in inputs],
        "outputs": _output_specs(model, kind),
        "targets": list(model.targets),
        # A quantile model's levels, sorted: the last axis of the "quantiles" output.
        "quantiles": list(model.quantiles),
        # code = 1 + index; 0 (and any code not listed) means missing or unseen.
        "categories": {
            c: {v: i + 1 for i, v in enumerate(pre.categories_[c])} for c in schema.categorical
        },
        "dates": {
            d: {"inputs": [f"{d}__{part}" for part in DATE_PARTS],
                "format": pre.date_formats_.get(d)}
            for d in schema.dates
        },
        "preprocessing": {
            "numeric_transform": pre.numeric_transform,
            "target_transform": pre.target_transform,
            "missing_indicators": list(pre.indicators_),
            "onehot": list(pre.onehot_),
            "embedded": list(pre.embedded_),
        },
    }
    if kind == "onnx":
        meta["opset"] = ONNX_OPSET
    return meta


def _output_specs(model: TabularModel, kind: str) -> list[dict[str, Any]]:
    """``prediction``; a quantile model adds ``quantiles`` (N, n_targets, Q)."""
    targets, levels = list(model.targets), list(model.quantiles)
    prediction: dict[str, Any] = {
        "name": "prediction",
        "dtype": "float32",
        "shape": ["batch", len(targets)],
        "columns": targets,
    }
    if not levels:
        return [prediction]
    prediction["quantile"] = levels[point_quantile(levels)]
    quantiles: dict[str, Any] = {
        "name": "quantiles",
        "dtype": "float32",
        "shape": ["batch", len(targets), len(levels)],
        "columns": targets,
        "levels": levels,
    }
    if kind == "torchscript":  # forward() gives the prediction, a method the levels
        prediction["method"], quantiles["method"] = "forward", "quantiles"
    return [prediction, quantiles]


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """The JSON written beside an exported model (pass either file's path).

    Raises
    ------
    DataError
        If it is missing or not a tabresnet export description.
    """
    path = Path(path)
    json_path = path if path.suffix == ".json" else sidecar_path(path)
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"export description not found: {json_path}; export the model "
                        "again with tabresnet export") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise DataError(f"{json_path} is not valid JSON; export the model again") from None
    if not isinstance(meta, dict) or meta.get("format") != SIDECAR_FORMAT:
        raise DataError(f"{json_path} is not a tabresnet export description")
    return meta


def inputs_from_frame(frame: pd.DataFrame, meta: dict[str, Any]) -> dict[str, np.ndarray]:
    """The graph's inputs for a raw table, as a reference for other languages.

    Numeric columns as the graph's dtype (float64, or float32; text that is
    no number, missing cells and inf as NaN; values beyond the float32 range
    clipped to it, as ``predict`` clips them), date columns as their parts, categorical columns as the codes of
    ``meta["categories"]`` (0 for missing or unseen).

    Parameters
    ----------
    frame : DataFrame or path
        Rows with the model's feature columns, read as ``predict`` reads them
        (:func:`tabresnet.data.read_table`).
    meta : dict
        From :func:`read_sidecar`.

    Returns
    -------
    dict
        ``{input name: array}``, ready for ``onnxruntime.InferenceSession.run``.
    """
    frame = read_table(frame)  # as predict reads it: object columns of numbers are numeric
    feeds: dict[str, np.ndarray] = {}
    dates = meta.get("dates", {})
    for spec in meta["inputs"]:
        if spec["name"] == "numeric":
            cols = []
            done: set[str] = set()
            for name in spec["columns"]:
                date = name.rsplit("__", 1)[0]
                if date in dates and name in dates[date]["inputs"]:
                    if date not in done:
                        done.add(date)
                        cols.append(date_parts(_column(frame, date), dates[date]["format"])[0])
                    continue
                cols.append(as_float(_column(frame, name))[:, None])
            x = np.concatenate(cols, axis=1) if cols else np.zeros((len(frame), 0))
            x[np.isinf(x)] = np.nan
            x = np.clip(x, -_F32_MAX, _F32_MAX)
            feeds["numeric"] = x.astype(np.dtype(spec["dtype"]))
        else:
            codes = np.zeros((len(frame), len(spec["columns"])), dtype=np.int64)
            for j, name in enumerate(spec["columns"]):
                series = _column(frame, name)
                mapping = meta["categories"][name]
                strings = _category_strings(series).astype(object)
                mapped = strings.map(mapping).where(series.notna().to_numpy(), 0)
                codes[:, j] = mapped.fillna(0).to_numpy(dtype=np.int64)
            feeds["categorical"] = codes
    return feeds


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    if name not in frame.columns:
        raise DataError(f"column {name!r} is not in the table; the exported model needs it")
    return frame[name]


# -- writing -----------------------------------------------------------------------------
def _as_model(model: Any) -> TabularModel:
    return as_model(model, "export")


def _check_target(path: str | Path, flag: str) -> Path:
    path = Path(path)
    if str(path) in ("", "."):
        raise ConfigError(f"{flag} needs a file name, e.g. {flag} model.onnx")
    if path.is_dir():
        raise ConfigError(f"{flag} {path} is a folder; give a file name inside it")
    for folder in (path.parent, *path.parent.parents):
        if folder.exists():
            if not folder.is_dir():
                raise ConfigError(f"{flag} {path}: {folder} is a file, not a folder; choose another path")
            break
    return path


def _write_pair(path: Path, data: bytes, meta: dict[str, Any]) -> None:
    """The model file and its JSON, each through a temporary name and a rename.

    Both temporaries are complete before either is renamed, so a failure
    (disk full, no permission) leaves neither half-written.
    """
    side = sidecar_path(path)
    if is_stream(path):  # a rename would replace the device itself (/dev/null)
        raise ConfigError(f"{path} is a device or pipe, not a file; the export writes a file "
                          "and its JSON beside it - choose a file path")
    path.parent.mkdir(parents=True, exist_ok=True)  # as fit's and predict's outputs do
    temps: list[str] = []
    try:
        for target, payload in ((path, data), (side, json.dumps(meta, indent=2).encode())):
            fd, tmp = _create_temp(target)
            temps.append(tmp)
            with os.fdopen(fd, "wb") as f:
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
        os.replace(temps[0], path)
        os.replace(temps[1], side)
    except BaseException:
        for tmp in temps:
            Path(tmp).unlink(missing_ok=True)
        raise


def _example_inputs(
    core: RawInputModel, n: int = 3, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor]:
    # Row 0 all missing, then the medians, then the medians + 1 (...).
    numeric = core.median.repeat(n, 1) + torch.arange(n, dtype=torch.float64).unsqueeze(1) - 1.0
    numeric = numeric.to(dtype)
    if core.n_numeric:
        numeric[0, :] = float("nan")
    categorical = torch.ones((n, core.n_categorical), dtype=torch.long)
    categorical[0, :] = 0
    return numeric, categorical


def onnx_bytes(
    model: TabularModel | str | Path, float32: bool = False
) -> tuple[bytes, list[str]]:
    """The ONNX graph of :class:`RawInputModel` and the names of its inputs."""
    core = RawInputModel.from_model(model)
    dtype = torch.float32 if float32 else torch.float64
    numeric, categorical = _example_inputs(core, dtype=dtype)
    names, args = [], []
    if core.n_numeric:
        names.append("numeric")
        args.append(numeric)
    if core.n_categorical:
        names.append("categorical")
        args.append(categorical)
    if not names:
        raise ExportError("the model has no feature columns; there is nothing to export")
    outputs = ["prediction", "quantiles"] if core.is_quantile else ["prediction"]
    axes = {name: {0: "batch"} for name in [*names, *outputs]}
    import io

    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's notes on tracing and deprecation
            torch.onnx.export(
                _OnnxInputs(core).eval(),
                tuple(args),
                buffer,
                dynamo=False,
                input_names=names,
                output_names=outputs,
                dynamic_axes=axes,
                opset_version=ONNX_OPSET,
            )
    except ImportError as exc:
        raise ExportError(
            f"ONNX export needs the onnx package ({exc}); pip install 'tabresnet[export]'"
        ) from None
    except Exception as exc:  # the exporter's own errors have no common base class
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(
            f"this model cannot be exported to ONNX ({type(exc).__name__}: {first[:200]}); "
            "try --torchscript, or report it with the model's config"
        ) from None
    data = buffer.getvalue()
    _verify_onnx(core, data, names, dtype)
    return data, names


def _verify_onnx(core: RawInputModel, data: bytes, names: list[str], dtype: torch.dtype) -> None:
    """Run the graph once with onnxruntime (when installed) against the torch module.

    Rows with every value missing, with the medians and with the first
    category, at two batch sizes: a wrong graph fails here, not at a user's.
    Each output (a quantile model's levels too) within 1e-4 relative.
    """
    try:
        import onnxruntime as ort
    except ImportError:  # optional: the export itself does not need it
        return
    try:
        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        for n in (1, 3):
            numeric, categorical = _example_inputs(core, n, dtype)
            feeds = {"numeric": numeric.numpy(), "categorical": categorical.numpy()}
            outputs = session.run(None, {name: feeds[name] for name in names})
            with torch.no_grad():
                expected = [core(numeric, categorical).numpy()]
                if core.is_quantile:
                    expected.append(core.quantiles(numeric, categorical).numpy())
            if len(outputs) != len(expected):
                raise ValueError(f"{len(outputs)} outputs, expected {len(expected)}")
            for got, want in zip(outputs, expected):
                if got.shape != want.shape or not np.allclose(
                    got, want, rtol=1e-4, atol=1e-6 * (1.0 + float(np.abs(want).max()))
                ):
                    raise ValueError(
                        f"onnxruntime computes {got.ravel()[:3]}, torch {want.ravel()[:3]}"
                    )
    except Exception as exc:  # onnxruntime's errors have no common base class
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(
            f"the exported ONNX graph does not run as the model does ({first[:200]}); "
            "try --torchscript, or report it with the model's config"
        ) from None


def export_onnx(
    model: TabularModel | str | Path | Any, path: str | Path, *, float32: bool = False
) -> Path:
    """Write a model as one ONNX graph, preprocessing included, and its JSON description.

    The graph takes ``numeric`` (float64, NaN for missing) and ``categorical``
    (int64 codes) inputs, only those the model has, with a dynamic batch
    dimension, and returns ``prediction`` (float32, target units). A
    quantile model's graph returns ``quantiles`` (float32, ``(N, n_targets,
    Q)``, each target's levels sorted) after it; ``prediction`` is its level
    nearest 0.5. The description ``<path>.json`` lists the input columns in
    order, the category -> code mapping, the targets, the outputs, the
    quantile levels and the opset (:func:`read_sidecar`,
    :func:`inputs_from_frame`).

    Parameters
    ----------
    model : TabularModel, path, Run or fitted estimator
        A trained model, a run directory / ``model.json``, ``fit``'s result or a
        fitted ``ResNetRegressor``.
    path : path
        The ``.onnx`` file to write; a missing folder is created. Written through a
        temporary name and a rename, like the JSON.
    float32 : bool
        Take the numeric input as float32 instead of float64 (for runtimes
        that prefer it); values are then rounded to float32 before the
        preprocessing, which moves predictions slightly (module docstring).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ExportError
        If the network cannot be expressed in ONNX.
    ConfigError
        If ``path`` is a folder, or a part of its folder is a file.

    Examples
    --------
    >>> import numpy as np, pandas as pd, tempfile, tabresnet
    >>> from pathlib import Path
    >>> df = pd.DataFrame({"a": np.arange(60.0), "y": np.arange(60.0) % 5})
    >>> run = tabresnet.fit(df, target="y", max_epochs=1, c_hidden=[8], num_blocks=[1],
    ...                     progress="none", report=False)
    >>> out = tabresnet.export_onnx(run.model, Path(tempfile.mkdtemp()) / "m.onnx")
    >>> sorted(p.name for p in out.parent.iterdir())
    ['m.onnx', 'm.onnx.json']
    """
    path = _check_target(path, "--onnx")
    model = _as_model(model)
    data, names = onnx_bytes(model, float32=float32)
    _write_pair(path, data, _sidecar(model, "onnx", names, "float32" if float32 else "float64"))
    return path


def export_torchscript(model: TabularModel | str | Path | Any, path: str | Path) -> Path:
    """Write a model as one TorchScript module, preprocessing included, and its JSON.

    Load it in Python with ``torch.jit.load(path)`` or in C++ with
    ``torch::jit::load``; call it with both inputs, ``numeric`` ``(N,
    n_numeric)`` float64 (or float32, as in :func:`export_onnx`) and
    ``categorical`` ``(N, n_categorical)`` int64 (a tensor of width 0 where
    the model has no such column). ``module(numeric, categorical)`` gives the
    prediction, ``(N, n_targets)``; a quantile model's levels are
    ``module.quantiles(numeric, categorical)``, ``(N, n_targets, Q)``
    (:meth:`RawInputModel.quantiles`; a point model's raises).

    Parameters
    ----------
    model : TabularModel, path, Run or fitted estimator
        A trained model, a run directory / ``model.json``, ``fit``'s result or a
        fitted ``ResNetRegressor``.
    path : path
        The file to write (``.pt``); a missing folder is created.

    Returns
    -------
    Path
        ``path``.

    Examples
    --------
    >>> import numpy as np, pandas as pd, tempfile, tabresnet
    >>> from pathlib import Path
    >>> df = pd.DataFrame({"a": np.arange(60.0), "y": np.arange(60.0) % 5})
    >>> run = tabresnet.fit(df, target="y", max_epochs=1, c_hidden=[8], num_blocks=[1],
    ...                     progress="none", report=False)
    >>> out = tabresnet.export_torchscript(run.model, Path(tempfile.mkdtemp()) / "m.pt")
    >>> module = torch.jit.load(str(out))
    >>> module(torch.tensor([[2.0]], dtype=torch.float64), torch.zeros(1, 0, dtype=torch.long)).shape
    torch.Size([1, 1])
    """
    path = _check_target(path, "--torchscript")
    model = _as_model(model)
    # Saved for inference: outputs that need no gradient (.numpy() without no_grad());
    # frozen on a copy, since the core shares the caller's network.
    core = copy.deepcopy(RawInputModel.from_model(model)).requires_grad_(False)
    import io

    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TorchScript's deprecation notice
            torch.jit.save(torch.jit.script(core), buffer)
    except Exception as exc:  # TorchScript's frontend errors have no common base class
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(
            f"this model cannot be exported to TorchScript ({type(exc).__name__}: "
            f"{first[:200]}); try --onnx, or report it with the model's config"
        ) from None
    _write_pair(path, buffer.getvalue(), _sidecar(model, "torchscript",
                                                  ["numeric", "categorical"]))
    return path

