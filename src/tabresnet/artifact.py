"""The model file: JSON for everything but the weights, safetensors for the weights.

A saved model is two files in one directory::

    model.json          format, versions, run config, column schema,
                        preprocessing state, metrics, the weights' SHA-256
    model.safetensors   the network's tensors

A bag of networks (``tune`` with cross-validation saves one network per fold,
averaged; :class:`tabresnet.models.MeanEnsemble`) shares the schema and the
preprocessing; ``model.json`` then says ``"members": k`` under ``network`` and
has format version 2, which tabresnet 0.1 without bags refuses cleanly.

A model trained by ``fit`` also carries its conformal calibration
(:mod:`tabresnet.calibrate`) under ``calibration``: the sorted conformity
scores of its validation (or out-of-fold) rows, plain numbers from which
``predict(df, interval=0.9)`` computes bounds at any level.

Nothing is pickled, so loading a model file never runs code. Both files are
written to temporary names and renamed, the weights first: a crash leaves the
old model (or nothing), never a half-written one.

Examples
--------
>>> import numpy as np, pandas as pd, tempfile, tabresnet
>>> rng = np.random.default_rng(0)
>>> df = pd.DataFrame({"a": rng.normal(size=120), "c": rng.choice(["x", "y"], 120)})
>>> df["y"] = df.a * 3
>>> run = tabresnet.fit(df, target="y", max_epochs=2, c_hidden=[8], num_blocks=[1],
...                     progress="none", report=False)
>>> path = run.model.save(tempfile.mkdtemp())
>>> model = tabresnet.load(path)
>>> model.predict(df[["c", "a"]]).shape      # raw columns, any order
(120,)
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from . import __version__
from .calibrate import Calibration, check_level
from .data import Preprocessor, Schema, check_columns, read_table
from .data.io import is_stream
from .defaults import RunConfig, output_quantiles, point_quantile, resolve_threads, torch_threads
from .errors import ConfigError, DataError, ModelFileError, TabResNetWarning, user_stacklevel
from .metrics import quantile_metrics, regression_metrics
from .models import MeanEnsemble, ModelConfig, TabularEnsemble

__all__ = ["FORMAT", "FORMAT_VERSION", "TabularModel", "load"]

FORMAT = "tabresnet-model"
# The newest format this version reads and the one it writes. Version 1 held a
# single network, 2 added bags; 3 adds the model options of numeric embeddings
# and in-network ensembles (and ``network.n_cont``), which releases before it
# would reject as unknown options: they say "upgrade tabresnet" instead.
# Version 4 marks quantile regression (``loss: quantile``: several outputs per
# target) and weighted ensembles of members with their own model options
# (``tune --pack``: ``network.member_models`` and ``network.member_weights``).
# Other models are still written as 3, which releases before 4 read (they
# ignore the optional ``calibration``).
FORMAT_VERSION = 4
# Model options that files of versions 1 and 2 do not name, with the values
# those files were trained with (the defaults have changed since).
_OPTIONS_BEFORE_V3 = {"num_embedding": "none", "ensemble_size": 1}
MODEL_JSON = "model.json"
WEIGHTS = "model.safetensors"
_O_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation


def _create_temp(path: Path, suffix: str = ".tmp") -> tuple[int, str]:
    """An exclusive new file beside ``path``, mode 0666 less the umask.

    ``tempfile.mkstemp`` would make it 0600 whatever the umask, and the rename
    keeps the mode: a team sharing a run directory could not read it.
    """
    while True:
        tmp = str(path.parent / f".{path.name}.{secrets.token_hex(6)}{suffix}")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY, 0o666), tmp
        except FileExistsError:  # pragma: no cover - 48 random bits collided
            continue


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    The file's mode follows the umask, like a file written with ``open``. A
    symbolic link is written through (the file it points to is replaced); a
    device or pipe (:func:`is_stream`) is written directly.
    """
    path = Path(path)
    if is_stream(path):
        with open(path, "wb") as f:
            f.write(data)
        return
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, default=_json_default, allow_nan=True)


def dumps_standard(data: Any) -> str:
    """``data`` as standard JSON: an undefined number (NaN, infinity) is ``null``.

    For the files and output other programs read (``metrics.json``,
    ``evaluate --json``): JSON has no NaN, and JavaScript's ``JSON.parse``
    refuses Python's.

    >>> print(dumps_standard({"rmse": 0.5, "r2": float("nan")}))
    {
      "rmse": 0.5,
      "r2": null
    }
    """
    return json.dumps(_finite_or_none(json.loads(dumps(data))), indent=2, allow_nan=False)


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    return value


class TabularModel:
    """A trained network with the schema and preprocessing that feed it.

    Use :func:`tabresnet.load` to read one from disk, or ``fit(...).model``.

    Parameters
    ----------
    network : nn.Module
        ``forward(x_num, x_cat) -> (N, n_targets * Q)`` in transformed target
        units (``Q`` quantile levels with ``loss="quantile"``, else 1).
    config : RunConfig
    schema : Schema
    preprocessor : Preprocessor
        Fitted.
    metrics : dict, optional
    calibration : Calibration, optional
        Conformal scores for prediction intervals (:mod:`tabresnet.calibrate`);
        ``fit`` sets it, :meth:`calibrate` replaces it.

    Examples
    --------
    Prediction intervals with a coverage guarantee (conformal; ``fit`` has
    calibrated the model on its validation rows):

    >>> import numpy as np, pandas as pd, tabresnet
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({"a": rng.normal(size=300)})
    >>> df["y"] = df.a + rng.normal(scale=0.3, size=300)
    >>> run = tabresnet.fit(df, target="y", max_epochs=3, c_hidden=[8], num_blocks=[1],
    ...                     progress="none", report=False)
    >>> pred, lower, upper = run.model.predict(df.head(3), interval=0.9)
    >>> bool((lower <= pred).all() and (pred <= upper).all())
    True
    >>> list(run.model.predict_frame(df.head(2), interval=0.8).columns)
    ['y_pred', 'y_lower', 'y_upper']
    """

    def __init__(
        self,
        network: torch.nn.Module,
        config: RunConfig,
        schema: Schema,
        preprocessor: Preprocessor,
        metrics: dict | None = None,
        calibration: Calibration | None = None,
    ):
        self.network = network.eval()
        self.config = config
        self.schema = schema
        self.preprocessor = preprocessor
        self.metrics = metrics or {}
        self.calibration = calibration

    @property
    def targets(self) -> list[str]:
        return list(self.schema.targets)

    @property
    def quantiles(self) -> list[float]:
        """The quantile levels the network predicts (sorted), ``[]`` for a point model."""
        return output_quantiles(self.config.train)

    # -- prediction ---------------------------------------------------------------
    def _units(self, z: np.ndarray) -> np.ndarray:
        """Network outputs ``(..., T * Q)`` -> target units ``(..., T, Q)``, sorted over Q.

        Sorting makes the quantiles non-crossing (Chernozhukov, Fernández-Val &
        Galichon 2010: the sorted curve is never further from the true one).
        """
        n_t, n_q = len(self.targets), max(1, len(self.quantiles))
        lead = z.shape[:-1]
        z = np.sort(z.reshape(-1, n_t, n_q), axis=-1)
        out = np.stack(
            [self.preprocessor.inverse_target(z[:, :, q]) for q in range(n_q)], axis=-1
        )
        return out.reshape(*lead, n_t, n_q)

    def _forward(self, x_num: torch.Tensor, x_cat: torch.Tensor, batch: int, fn) -> np.ndarray:
        self.network.eval()
        outs = []
        # Training's thread policy (``num_threads``; 0: half the cores, at most 4, and
        # never more than torch has now): on a busy machine every extra thread of a
        # small network's forward pass waits for a core (2 threads predicted 88 rows
        # 13x slower than 1 on 2 busy cores; docs/benchmarks.md, "Threads").
        requested = self.config.train.num_threads
        threads = resolve_threads(requested)
        if requested == 0:
            threads = min(threads, torch.get_num_threads())
        with torch_threads(threads), torch.inference_mode():
            for i in range(0, int(x_num.shape[0]), batch):
                outs.append(fn(x_num[i : i + batch], x_cat[i : i + batch]))
        if not outs:
            return np.zeros((0, len(self.targets) * max(1, len(self.quantiles))))
        return torch.cat(outs).double().numpy()

    def predict_quantile_tensors(
        self, x_num: torch.Tensor, x_cat: torch.Tensor, batch: int = 8192
    ) -> np.ndarray:
        """All outputs in target units, ``(N, n_targets, Q)`` (``Q = 1`` for a point model)."""
        return self._units(self._forward(x_num, x_cat, batch, self.network))

    def predict_tensors(
        self, x_num: torch.Tensor, x_cat: torch.Tensor, batch: int = 8192
    ) -> np.ndarray:
        """Predictions in target units, shape ``(N, n_targets)``, from preprocessed tensors.

        A quantile model's point prediction is its level nearest 0.5
        (:func:`tabresnet.defaults.point_quantile`).
        """
        return self.point(self.predict_quantile_tensors(x_num, x_cat, batch))

    def point(self, q: np.ndarray) -> np.ndarray:
        """The point prediction ``(N, n_targets)`` from all outputs ``(N, n_targets, Q)``."""
        return q[..., point_quantile(self.quantiles) if self.quantiles else 0]

    def _member_outputs(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        """``(N, G, k, out)``: G bag members, each with k in-network members."""
        bag = list(self.network.members) if isinstance(self.network, MeanEnsemble) else [
            self.network]
        outs = []
        for net in bag:
            out = net.members(x_num, x_cat) if isinstance(net, TabularEnsemble) else (
                net(x_num, x_cat).unsqueeze(1))
            outs.append(out)
        return torch.stack(outs, dim=1)

    def interval_parts(
        self, x_num: torch.Tensor, x_cat: torch.Tensor, batch: int = 8192,
        folds: int | None = None,
    ) -> dict[str, np.ndarray | None]:
        """What a conformal interval is built from, in target units.

        Parameters
        ----------
        x_num, x_cat : Tensor
            Preprocessed rows.
        batch : int
            Rows per forward pass.
        folds : int, optional
            The bag's folds, when its ``G`` members are ``G / folds`` networks
            per fold (``tune --pack P --cv K`` saves the chosen trials' fold
            networks, trial after trial: member ``j`` left fold ``j % folds``
            out). ``members`` is then one entry per fold: the weighted mean
            of that fold's networks (the model that did not see the fold).

        Returns
        -------
        dict
            ``pred`` ``(N, T)``: the prediction (as :meth:`predict_tensors`);
            ``members`` ``(N, G, T)``: each bag member's prediction (``G = 1``
            without a bag; ``G = folds`` with ``folds``); ``spread`` ``(N, T)``:
            the standard deviation of all member networks' predictions, or
            None for a single network; ``member_spread`` ``(N, G, T)``: each
            bag member's own in-network spread (with ``folds``: the spread of
            the fold's networks), or None for single networks.
        """
        n_out = len(self.targets) * max(1, len(self.quantiles))
        g = len(self.network.members) if isinstance(self.network, MeanEnsemble) else 1
        if folds is not None and (folds < 1 or g % folds):
            raise ValueError(f"{g} member(s) do not split into {folds} folds")
        if int(x_num.shape[0]) == 0:
            empty, gg = np.zeros((0, len(self.targets))), folds or g
            return {"pred": empty, "members": np.zeros((0, gg, len(self.targets))),
                    "spread": empty, "member_spread": np.zeros((0, gg, len(self.targets)))}
        both = self._forward(
            x_num, x_cat, batch,
            lambda a, b: torch.cat(
                [self.network(a, b), self._member_outputs(a, b).flatten(start_dim=1)], dim=1),
        )
        raw = both[:, n_out:].reshape(len(both), g, -1, n_out)  # (N, G, k, out)
        point = point_quantile(self.quantiles) if self.quantiles else 0
        # The prediction is the network's own forward (exactly predict's numbers).
        pred = self._units(both[:, :n_out])[..., point]
        members = self._units(raw.mean(axis=2))[..., point]
        points = self._units(raw)[..., point]  # (N, G, k, T)
        k = raw.shape[2]
        flat = points.reshape(len(points), g * k, -1)
        spread = flat.std(axis=1) if g * k > 1 else None
        if folds is not None and folds < g:
            # Member j = t * folds + i: trial t's network of fold i. Fold i's model is
            # its networks weighted as in the ensemble (the weights within a fold
            # renormalised), its spread theirs (each with its in-network members).
            w = np.asarray(getattr(self.network, "weights", [1.0 / g] * g)).reshape(-1, folds)
            w = w / w.sum(axis=0, keepdims=True)  # (G / folds, folds)
            by_fold = members.reshape(len(members), -1, folds, members.shape[-1])
            members = np.einsum("ntfj,tf->nfj", by_fold, w)
            grouped = points.reshape(len(points), -1, folds, k, points.shape[-1])
            grouped = grouped.transpose(0, 2, 1, 3, 4).reshape(len(points), folds, -1,
                                                             points.shape[-1])
            return {"pred": pred, "members": members, "spread": spread,
                    "member_spread": grouped.std(axis=2)}
        return {
            "pred": pred,
            "members": members,
            "spread": spread,
            "member_spread": points.std(axis=2) if k > 1 else None,
        }

    def _calibration(self) -> Calibration:
        if self.calibration is None:
            raise ConfigError(
                "this model has no interval calibration (it kept no held-out rows to "
                "calibrate on, or a tabresnet before intervals saved it); calibrate it on rows "
                "it did not train on: model.calibrate(data)"
            )
        return self.calibration

    def interval_tensors(
        self,
        x_num: torch.Tensor,
        x_cat: torch.Tensor,
        level: float,
        mode: str | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(pred, lower, upper)``, each ``(N, n_targets)``, from preprocessed tensors."""
        cal = self._calibration()
        level = check_level(level)
        cv = cal.kind == "cv+"
        parts = self.interval_parts(x_num, x_cat, folds=len(cal.fold_sizes) if cv else None)
        if cv:
            lower, upper = cal.interval_cv(parts["members"], parts["member_spread"], level, mode)
        else:
            lower, upper = cal.interval(parts["pred"], parts["spread"], level, mode)
        return parts["pred"], lower, upper

    def _tensors(self, data: Any, strict: bool) -> tuple[torch.Tensor, torch.Tensor]:
        frame = read_table(data)
        check_columns(frame, self.schema)
        self.preprocessor.check(frame, strict=strict)
        empty = int(frame[self.schema.feature_columns].isna().all(axis=1).sum())
        if empty:  # a row of nothing gets the prediction of the medians, silently otherwise
            warnings.warn(
                f"{empty} of {len(frame)} rows have every feature missing: nothing tells them "
                "apart, so each gets the same prediction (from imputed values only)",
                TabResNetWarning,
                stacklevel=user_stacklevel(),
            )
        x_num, x_cat = self.preprocessor.transform(frame)
        return torch.as_tensor(x_num), torch.as_tensor(x_cat)

    @staticmethod
    def _squeeze(a: np.ndarray) -> np.ndarray:
        return a[:, 0] if a.shape[1] == 1 else a

    def predict(
        self,
        data: Any,
        strict: bool = False,
        interval: float | None = None,
        mode: str | None = None,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Predict from raw columns.

        Parameters
        ----------
        data : DataFrame, path or ndarray
            Needs every feature column the model was trained on, in any order;
            extra columns (the target included) are ignored.
        strict : bool
            Cells the model cannot use as trained (text in a numeric column,
            no date in a date column, a category unseen in training) are read
            as missing and counted in one
            :class:`~tabresnet.errors.TabResNetWarning`; with ``strict=True``
            they raise :class:`~tabresnet.errors.DataError` instead
            (:meth:`tabresnet.data.Preprocessor.check`).
        interval : float, optional
            A level in (0, 1), e.g. 0.9: also return conformal bounds that
            hold the true value of that share of new rows (see
            :meth:`predict_interval`).
        mode : {"adaptive", "constant"}, optional
            With ``interval``: the interval's width rule; default: the
            calibration's own choice.

        Returns
        -------
        ndarray of shape (n,) for one target, (n, n_targets) for several;
        with ``interval``: a tuple ``(pred, lower, upper)`` of three such arrays.
        """
        if interval is not None:
            return self.predict_interval(data, interval, mode=mode, strict=strict)
        pred = self.predict_tensors(*self._tensors(data, strict))
        return self._squeeze(pred)

    def predict_interval(
        self, data: Any, level: float = 0.9, mode: str | None = None, strict: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Predictions with conformal prediction intervals.

        The bounds come from the conformity scores stored at fit time
        (:mod:`tabresnet.calibrate`): split conformal on the validation rows
        (Lei et al. 2018), or CV+ on a bag's out-of-fold rows (Barber et al.
        2021). On new rows drawn like the calibration rows, a share of at
        least ``level`` of the true values falls inside, on average.

        Parameters
        ----------
        data : DataFrame, path or ndarray
        level : float
            In (0, 1); any level works from one calibration.
        mode : {"adaptive", "constant"}, optional
            ``constant``: one width for every row; ``adaptive``: widths
            proportional to the spread of the ensemble's members plus a floor,
            narrower where they agree. Default: the one the calibration chose
            (the narrower on held-out calibration rows).
        strict : bool
            As in :meth:`predict`.

        Returns
        -------
        (pred, lower, upper)
            Each of shape (n,) for one target, (n, n_targets) for several.

        Raises
        ------
        ConfigError
            A level outside (0, 1), an unknown mode, or a model without
            calibration (:meth:`calibrate` adds one).
        """
        self._calibration()
        check_level(level)
        pred, lower, upper = self.interval_tensors(*self._tensors(data, strict), level, mode)
        return self._squeeze(pred), self._squeeze(lower), self._squeeze(upper)

    def predict_quantiles(self, data: Any, strict: bool = False) -> np.ndarray:
        """A quantile model's predicted quantiles, sorted (never crossing).

        Returns
        -------
        ndarray of shape (n, Q) for one target, (n, n_targets, Q) for several,
        the levels in :attr:`quantiles` order.
        """
        if not self.quantiles:
            raise ConfigError(
                "this model predicts a point, not quantiles; train it with loss quantile "
                "(command line: --loss quantile --quantiles 0.1 0.5 0.9; Python: "
                "loss='quantile', quantiles=(0.1, 0.5, 0.9))"
            )
        q = self.predict_quantile_tensors(*self._tensors(data, strict))
        return q[:, 0] if q.shape[1] == 1 else q

    def predict_frame(
        self,
        data: Any,
        strict: bool = False,
        interval: float | None = None,
        mode: str | None = None,
    ) -> pd.DataFrame:
        """Predictions as a DataFrame with one ``<target>_pred`` column per target.

        A quantile model adds ``<target>_q<level>`` columns (``y_q0.1``, ...);
        ``interval=0.9`` adds ``<target>_lower`` and ``<target>_upper``.
        ``strict`` and ``mode`` as in :meth:`predict`.
        """
        x = self._tensors(data, strict)
        cols: dict[str, np.ndarray] = {}
        if interval is not None:
            self._calibration()
            pred, lower, upper = self.interval_tensors(*x, interval, mode)
        else:
            pred = self.predict_tensors(*x)
        quant = self.predict_quantile_tensors(*x) if self.quantiles else None
        for j, t in enumerate(self.targets):
            cols[f"{t}_pred"] = pred[:, j]
            if quant is not None:
                for i, q in enumerate(self.quantiles):
                    cols[f"{t}_q{q:g}"] = quant[:, j, i]
            if interval is not None:
                cols[f"{t}_lower"] = lower[:, j]
                cols[f"{t}_upper"] = upper[:, j]
        return pd.DataFrame(cols)

    def calibrate(self, data: Any, strict: bool = False, mode: str | None = None) -> TabularModel:
        """Replace the interval calibration by split conformal on these labelled rows.

        Use rows the model never trained or early-stopped on (Lei et al. 2018):
        then the coverage guarantee is exact, whatever the training did.

        Parameters
        ----------
        data : DataFrame, path or ndarray
            Feature columns and the target(s).
        strict : bool
            As in :meth:`predict`.
        mode : {"adaptive", "constant"}, optional
            The default mode to store; None chooses the narrower one.

        Returns
        -------
        TabularModel
            ``self``; :meth:`save` writes the new calibration (with
            ``overwrite=True`` into the directory it came from).
        """
        from .data import clean_target

        frame = read_table(data)
        missing = [t for t in self.targets if t not in frame.columns]
        if missing:
            raise DataError(
                f"target column(s) {', '.join(missing)} not in the data; calibrate needs them"
            )
        frame = clean_target(frame, self.targets)
        parts = self.interval_parts(*self._tensors(frame, strict))
        y = frame[self.targets].to_numpy(dtype=np.float64)
        self.calibration = Calibration.fit_split(
            y, parts["pred"], parts["spread"], self.targets, mode=mode
        )
        return self

    def evaluate(self, data: Any, strict: bool = False) -> dict:
        """RMSE, MAE, R² (and MAPE where defined) on a table that has the target(s).

        ``strict`` as in :meth:`predict`. A model trained with a weight column
        scores a table that has that column with its weights (``weighted_by``
        names it), as the run's own metrics were.
        """
        from .data import clean_target, clean_weight

        frame = read_table(data)
        missing = [t for t in self.targets if t not in frame.columns]
        if missing:
            raise DataError(
                f"target column(s) {', '.join(missing)} not in the data; evaluate needs them"
            )
        frame = clean_target(frame, self.targets)
        weight = getattr(self.config.data, "weight", None)
        weight = weight if weight in frame.columns else None
        frame = clean_weight(frame, weight)
        q = self.predict_quantile_tensors(*self._tensors(frame, strict))  # one pass: all outputs
        y = frame[self.targets].to_numpy(dtype=np.float64)
        w = None if weight is None else frame[weight].to_numpy(dtype=np.float64)
        metrics = regression_metrics(y, self.point(q), self.targets, sample_weight=w)
        if self.quantiles:  # each level against its share of values below it
            metrics["quantiles"] = quantile_metrics(y, q, self.quantiles, sample_weight=w)
        if weight is not None:
            metrics["weighted_by"] = weight
        return metrics

    # -- persistence ----------------------------------------------------------------
    @property
    def n_members(self) -> int:
        """Networks averaged: 1, or k for a bag (:class:`~tabresnet.models.MeanEnsemble`)."""
        return len(self.network.members) if isinstance(self.network, MeanEnsemble) else 1

    def to_json_dict(self, weights_sha256: str) -> dict:
        network = {
            "n_num": int(self.preprocessor.n_num),
            "cardinalities": [int(c) for c in self.preprocessor.cardinalities],
            "output_dim": len(self.targets) * max(1, len(self.quantiles)),
            "n_cont": int(self.preprocessor.n_cont),
        }
        if isinstance(self.network, MeanEnsemble):
            network["members"] = self.n_members
            if self.network.configs is not None:
                network["member_models"] = self.network.configs
            if self.network.weighted:
                network["member_weights"] = self.network.weights
        extra = {"calibration": self.calibration.to_dict()} if self.calibration else {}
        # The oldest version that holds everything in the file (see FORMAT_VERSION).
        packed = {"member_models", "member_weights"} & set(network)
        version = FORMAT_VERSION if (self.quantiles or packed) else 3
        config = self.config.to_dict()
        # train.num_nodes is younger than version 3 and means nothing to a saved
        # model: left out at its default, so releases before it still read the file.
        if config["train"].get("num_nodes") == 1:
            del config["train"]["num_nodes"]
        return {
            "format": FORMAT,
            "format_version": version,
            "tabresnet_version": __version__,
            "torch_version": torch.__version__.split("+")[0],
            "config": config,
            "schema": self.schema.to_dict(),
            "preprocessor": self.preprocessor.to_dict(),
            "network": network,
            "metrics": self.metrics,
            "weights": WEIGHTS,
            "weights_sha256": weights_sha256,
            **extra,
        }

    def save(self, directory: str | Path, overwrite: bool = False) -> Path:
        """Write ``model.json`` and ``model.safetensors`` into ``directory``; returns the JSON path.

        A directory that holds a model already (a run directory, say, whose
        metrics and report describe that model) is refused unless
        ``overwrite``: e.g. ``model.calibrate(rows).save(run, overwrite=True)``
        to store a new calibration in the model's own run directory.
        """
        directory = Path(directory)
        if (directory / MODEL_JSON).exists() and not overwrite:
            raise ConfigError(
                f"{directory} holds a model already ({MODEL_JSON}); choose another directory, "
                "or pass overwrite=True to replace that model"
            )
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.network.state_dict().items()}
        data = save_safetensors(tensors, metadata={"format": FORMAT})
        text = dumps(self.to_json_dict(hashlib.sha256(data).hexdigest()))
        # Through our own temporary file (safetensors' writer makes it 0600):
        # the files follow the umask like any other file of the run.
        atomic_write_bytes(directory / WEIGHTS, data)
        # The JSON names the weights' digest: it is renamed last, so a reader
        # never sees a JSON that points at weights other than its own.
        atomic_write_text(directory / MODEL_JSON, text)
        return directory / MODEL_JSON

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.network.parameters())
        bag = f", members={self.n_members}" if self.n_members > 1 else ""
        return (
            f"TabularModel(targets={self.targets}, features={len(self.schema.feature_columns)}, "
            f"parameters={n}{bag})"
        )


def as_model(model: Any, needs: str = "this") -> TabularModel:
    """The :class:`TabularModel` of a run directory, ``model.json``, ``Run`` or fitted estimator.

    ``needs`` names the caller in the error (``"importance"``, ``"export"``).
    """
    if isinstance(model, TabularModel):
        return model
    if isinstance(model, (str, os.PathLike)):
        return load(model)
    for attr in ("model_", "model"):  # a fitted estimator, a Run
        inner = getattr(model, attr, None)
        if isinstance(inner, TabularModel):
            return inner
    raise ConfigError(
        f"{needs} needs a trained model (a run directory, model.json, TabularModel, Run "
        f"or fitted estimator), however: {type(model).__name__}"
    )


def resolve_model_path(path: str | Path) -> Path:
    """``RUN_DIR`` or ``RUN_DIR/model.json`` -> the ``model.json`` path."""
    if not isinstance(path, (str, os.PathLike)):
        hint = (" (a fitted estimator holds its model as .model_)"
                if hasattr(path, "get_params") else "")
        raise TypeError(
            f"a model is loaded from a run directory or its {MODEL_JSON}, however got a "
            f"{type(path).__name__}{hint}"
        )
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_JSON
    if not path.is_file():
        raise ModelFileError(
            f"model file not found: {path}; pass a run directory or its model.json"
        )
    return path


# -- checking a model file before anything is built from it ---------------------------
# safetensors' dtype names (its header format) for the dtypes a network holds.
_ST_DTYPES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}
_ST_ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2,
                "I8": 1, "U8": 1, "BOOL": 1, "U16": 2, "U32": 4, "U64": 8,
                "F8_E4M3": 1, "F8_E5M2": 1}
# A header larger than this is no header of ours (a network of a million
# tensors has one of ~100 MB); refusing it keeps a damaged length from
# making the reader allocate.
_MAX_HEADER_BYTES = 100 * 2**20
_SHA256_HEX = frozenset("0123456789abcdef")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_fields(meta: dict, path: Path) -> None:
    """Every field load() reads has the type save() writes; one-line ModelFileError otherwise."""

    def bad(field: str, want: str) -> ModelFileError:
        got = meta
        for part in field.split("."):
            got = got.get(part) if isinstance(got, dict) else None
        return ModelFileError(
            f"model file {path} is corrupted: {field} must be {want}, however: "
            f"{json.dumps(got)[:60]}; re-run fit"
        )

    version = meta.get("format_version")
    if not _is_int(version) or version < 1:
        raise bad("format_version", "a positive integer")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path} has format version {version}, newer than this "
            f"tabresnet reads ({FORMAT_VERSION}); upgrade tabresnet"
        )
    if "weights" in meta and (not isinstance(meta["weights"], str) or not meta["weights"]):
        raise bad("weights", "a file name")
    digest = meta.get("weights_sha256")
    if not isinstance(digest, str) or len(digest) != 64 or not set(digest) <= _SHA256_HEX:
        raise bad("weights_sha256", "64 hexadecimal digits")
    for name in ("config", "schema", "preprocessor", "network"):
        if not isinstance(meta.get(name), dict):
            raise bad(name, "an object")
    if meta.get("metrics") is not None and not isinstance(meta["metrics"], dict):
        raise bad("metrics", "an object")
    if not isinstance(meta["preprocessor"].get("target"), dict):
        raise bad("preprocessor.target", "the target's fitted mean and std")
    net = meta["network"]
    for key in ("n_num", "output_dim"):
        if not _is_int(net.get(key)) or net[key] < (0 if key == "n_num" else 1):
            raise bad(f"network.{key}", "a non-negative integer" if key == "n_num"
                      else "a positive integer")
    cards = net.get("cardinalities")
    if not isinstance(cards, list) or not all(_is_int(c) and c >= 1 for c in cards):
        raise bad("network.cardinalities", "a list of positive integers")
    if "members" in net and (not _is_int(net["members"]) or net["members"] < 1):
        raise bad("network.members", "a positive integer")
    if "n_cont" in net and (not _is_int(net["n_cont"]) or not 0 <= net["n_cont"] <= net["n_num"]):
        raise bad("network.n_cont", "an integer from 0 to n_num")
    members = net.get("members")
    models = net.get("member_models")
    if models is not None and (members is None or not isinstance(models, list)
                               or len(models) != members
                               or not all(isinstance(m, dict) for m in models)):
        raise bad("network.member_models", "one object of model options per member")
    weights = net.get("member_weights")
    if weights is not None and (
        members is None or not isinstance(weights, list) or len(weights) != members
        or not all(isinstance(w, (int, float)) and not isinstance(w, bool) and w >= 0
                   for w in weights)
        or abs(sum(weights) - 1.0) > 1e-6
    ):
        raise bad("network.member_weights", "one non-negative weight per member, summing to 1")


def _weights_path(meta: dict, path: Path) -> Path:
    """The weights file named in ``meta``: a plain name inside the model's directory."""
    name = meta.get("weights", WEIGHTS)
    rel = Path(name)
    try:
        folder = path.parent.resolve()
        weights = (path.parent / rel).resolve()
        (path.parent / rel).stat()
        usable = True
    except FileNotFoundError:  # reported below, once the name is known to be inside
        usable = True
    except (OSError, ValueError):  # a NUL byte, a name too long for the file system
        usable = False
    if not usable:
        raise ModelFileError(
            f"model file {path} names an unusable weights file {name[:60]!r}; "
            "re-run fit or restore the file"
        )
    if rel.is_absolute() or ".." in rel.parts or not weights.is_relative_to(folder):
        raise ModelFileError(
            f"model file {path} names weights {name!r} outside its directory; a model's "
            "weights must sit beside its model.json - re-run fit or restore the file"
        )
    return path.parent / rel


def _safetensors_header(raw: bytes, weights: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """``{key: (dtype, shape)}`` from the safetensors header, checked against the file size.

    Only the header is parsed (8-byte little-endian length, then JSON); no
    tensor is materialised.
    """

    def bad(why: str) -> ModelFileError:
        return ModelFileError(
            f"weights file {weights} is corrupted ({why}); re-run fit"
        )

    if len(raw) < 8:
        raise bad("shorter than a safetensors header")
    n = int.from_bytes(raw[:8], "little")
    if n > min(len(raw) - 8, _MAX_HEADER_BYTES):
        raise bad(f"its header claims {n} bytes, the file has {len(raw)}")
    try:
        header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise bad("its header is not valid JSON") from None
    if not isinstance(header, dict):
        raise bad("its header is not an object")
    data_size = len(raw) - 8 - n
    out: dict[str, tuple[str, tuple[int, ...]]] = {}
    for key, info in header.items():
        if key == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
            ok = (
                isinstance(dtype, str)
                and isinstance(shape, list)
                and all(_is_int(d) and d >= 0 for d in shape)
                and _is_int(begin) and _is_int(end) and 0 <= begin <= end <= data_size
            )
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise bad(f"tensor {key!r} has a malformed entry")
        if dtype in _ST_ITEMSIZE and end - begin != _ST_ITEMSIZE[dtype] * int(np.prod(shape)):
            raise bad(f"tensor {key!r} of shape {tuple(shape)} does not match its byte size")
        out[key] = (dtype, tuple(shape))
    return out


def _check_counts(config: RunConfig, net: dict, members: int, header: dict, path: Path) -> None:
    """Refuse counts that the weights cannot hold, before building anything.

    Building a network loops in Python once per block, member and embedded
    column, even on the meta device; each of these holds at least one tensor,
    so the header's tensor count bounds them.
    """
    n_tensors = len(header)
    blocks = [sum(ModelConfig.from_dict(m).num_blocks) for m in net.get("member_models") or []]
    per_member = (
        sum(b + len(net["cardinalities"]) for b in blocks) if blocks
        else (sum(config.model.num_blocks) + len(net["cardinalities"])) * max(members, 1)
    )
    if max(members, 1) > n_tensors or per_member > n_tensors:
        raise ModelFileError(
            f"model file {path} is inconsistent with its weights: its config "
            f"(members={max(members, 1)}, num_blocks={config.model.num_blocks[:8]}, "
            f"{len(net['cardinalities'])} embedded columns) needs at least {per_member} "
            f"tensors, the weights hold {n_tensors}; re-run fit"
        )
    # An in-network ensemble stacks its members' heads: some tensor has k rows.
    k_net = config.model.ensemble_size
    if k_net > 1 and k_net > max((shape[0] for _, shape in header.values() if shape), default=0):
        raise ModelFileError(
            f"model file {path} is inconsistent with its weights: ensemble_size={k_net} but "
            "no tensor holds that many members; re-run fit"
        )
    if members:
        found = sorted({int(k.split(".")[1]) for k in header
                        if k.startswith("members.") and k.split(".")[1].isdigit()})
        if found != list(range(members)):
            raise ModelFileError(
                f"model file {path} is inconsistent with its weights: network.members="
                f"{members}, the weights hold "
                f"{len(found)} member(s); re-run fit"
            )


def _check_shapes(network: torch.nn.Module, header: dict, path: Path) -> None:
    """The (meta-device) network's state-dict keys, shapes and dtypes equal the header's."""
    expected = {
        k: (_ST_DTYPES.get(v.dtype, str(v.dtype)), tuple(v.shape))
        for k, v in network.state_dict().items()
    }
    missing = [k for k in expected if k not in header]
    extra = [k for k in header if k not in expected]
    if missing or extra:
        what = (f"lacks tensor {missing[0]!r}" if missing else f"has unexpected tensor {extra[0]!r}")
        raise ModelFileError(
            f"model file {path} is inconsistent with its weights: the weights file {what} "
            f"({len(missing)} missing, {len(extra)} unexpected); re-run fit"
        )
    for key, (dtype, shape) in expected.items():
        if header[key] != (dtype, shape):
            got_dtype, got_shape = header[key]
            raise ModelFileError(
                f"model file {path} is inconsistent with its weights: {key!r} is "
                f"{list(got_shape)} {got_dtype} in the weights, the config builds "
                f"{list(shape)} {dtype}; re-run fit"
            )


def _build(config: RunConfig, widths: tuple, members: int, net: dict | None = None
           ) -> torch.nn.Module:
    net = net or {}
    if members:
        models = net.get("member_models")
        if models is not None:
            nets = [ModelConfig.from_dict(m).build_tabular(*widths) for m in models]
        else:
            nets = [config.model.build_tabular(*widths) for _ in range(members)]
        return MeanEnsemble(nets, weights=net.get("member_weights"), configs=models)
    return config.model.build_tabular(*widths)


def load(path: str | Path) -> TabularModel:
    """Load a model saved by ``fit``, ``tune`` or ``TabularModel.save``.

    Never unpickles: the JSON is parsed with :mod:`json` and the weights with
    safetensors, and the weights' SHA-256 is checked against the JSON. Every
    field is type-checked, the weights must sit in the model's directory, and
    the network is first built on PyTorch's meta device (no memory) and its
    tensors' shapes compared with the safetensors header, so a damaged or
    hostile model file is refused before anything is allocated.

    Parameters
    ----------
    path : path
        A run directory or its ``model.json``.

    Raises
    ------
    ModelFileError
        Missing, unreadable, corrupted, truncated, inconsistent or foreign
        files; the message is one line.
    """
    path = resolve_model_path(path)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        if path.name == MODEL_JSON:
            raise ModelFileError(
                f"model file {path} is corrupted or truncated (not valid JSON); re-run fit"
            ) from None
        what = ("the weights; pass the directory that holds them, or its model.json"
                if path.name == WEIGHTS else
                "another kind of file; pass a run directory or its model.json")
        raise ModelFileError(f"{path} is not a tabresnet model file but {what}") from None
    except OSError as exc:
        raise ModelFileError(f"cannot read model file {path}: {exc.strerror or exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not a tabresnet model file")
    _check_fields(meta, path)
    weights = _weights_path(meta, path)
    if not weights.is_file():
        raise ModelFileError(f"weights file missing: {weights}; copy it beside {path.name}")
    try:
        raw = weights.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"cannot read weights file {weights}: {exc.strerror or exc}") from None
    if hashlib.sha256(raw).hexdigest() != meta["weights_sha256"]:
        raise ModelFileError(
            f"weights file {weights} is corrupted or truncated (checksum mismatch); re-run fit"
        )
    header = _safetensors_header(raw, weights)
    net_meta = meta["network"]
    members = int(net_meta.get("members", 0))
    try:
        if int(meta["format_version"]) < 3 and isinstance(meta["config"].get("model"), dict):
            for name, value in _OPTIONS_BEFORE_V3.items():
                meta["config"]["model"].setdefault(name, value)
        config = RunConfig.from_dict(meta["config"])
        schema = Schema.from_dict(meta["schema"])
        pre = Preprocessor.from_dict(meta["preprocessor"])
        if schema != pre.schema:  # two copies of one decision: a hand edit changed one
            raise ValueError(
                "the schema and the preprocessing disagree on the columns "
                f"({schema.feature_columns[:8]} vs {pre.schema.feature_columns[:8]})"
            )
        widths = (
            net_meta["n_num"],
            list(net_meta["cardinalities"]),
            net_meta["output_dim"],
            net_meta.get("n_cont", 0),
        )
        n_out = len(schema.targets) * max(1, len(output_quantiles(config.train)))
        if (widths[0], widths[1], widths[2]) != (pre.n_num, list(pre.cardinalities), n_out):
            raise ValueError(
                f"network widths (n_num={widths[0]}, cardinalities={widths[1][:8]}, "
                f"output_dim={widths[2]}) differ from the preprocessing's "
                f"({pre.n_num}, {list(pre.cardinalities)[:8]}, {n_out})"
            )
        calibration = None
        if meta.get("calibration") is not None:
            calibration = Calibration.from_dict(meta["calibration"], where=f"model file {path}")
            if calibration.targets != list(schema.targets):
                raise ValueError(f"the calibration's targets {calibration.targets[:4]} differ "
                                 f"from the schema's {list(schema.targets)[:4]}")
            # A CV+ bag holds one network per fold, or (tune --pack --cv) as many
            # per fold as it chose trials: member j left fold j % folds out.
            if calibration.kind == "cv+" and max(members, 1) % len(calibration.fold_sizes):
                raise ValueError(f"the calibration has {len(calibration.fold_sizes)} folds, "
                                 f"the model {max(members, 1)} member(s)")
        _check_counts(config, net_meta, members, header, path)
        with torch.device("meta"):
            _check_shapes(_build(config, widths, members, net_meta), header, path)
        network = _build(config, widths, members, net_meta)
        state = load_safetensors(raw)  # the bytes already checked: one read
        network.load_state_dict(state, strict=True)
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError, SafetensorError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelFileError(f"model file {path} is inconsistent: {first}; re-run fit") from None
    return TabularModel(network, config, schema, pre, meta.get("metrics") or {}, calibration)
