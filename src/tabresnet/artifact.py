"""The model file: JSON for everything but the weights, safetensors for the weights.

A saved model is two files in one directory::

    model.json          format, versions, run config, column schema,
                        preprocessing state, metrics, the weights' SHA-256
    model.safetensors   the network's tensors

A bag of networks (``tune`` with cross-validation saves one network per fold,
averaged; :class:`tabresnet.models.MeanEnsemble`) shares the schema and the
preprocessing; ``model.json`` then says ``"members": k`` under ``network`` and
has format version 2, which tabresnet 0.1 without bags refuses cleanly.

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
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save_file

from . import __version__
from .data import Preprocessor, Schema, check_columns, read_table
from .defaults import RunConfig
from .errors import DataError, ModelFileError
from .metrics import regression_metrics
from .models import MeanEnsemble

__all__ = ["FORMAT", "FORMAT_VERSION", "TabularModel", "load"]

FORMAT = "tabresnet-model"
# The newest format this version reads and the one it writes. Version 1 held a
# single network, 2 added bags; 3 adds the model options of numeric embeddings
# and in-network ensembles (and ``network.n_cont``), which releases before it
# would reject as unknown options: they say "upgrade tabresnet" instead.
FORMAT_VERSION = 3
# Model options that files of versions 1 and 2 do not name, with the values
# those files were trained with (the defaults have changed since).
_OPTIONS_BEFORE_V3 = {"num_embedding": "none", "ensemble_size": 1}
MODEL_JSON = "model.json"
WEIGHTS = "model.safetensors"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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


class TabularModel:
    """A trained network with the schema and preprocessing that feed it.

    Use :func:`tabresnet.load` to read one from disk, or ``fit(...).model``.

    Parameters
    ----------
    network : nn.Module
        ``forward(x_num, x_cat) -> (N, n_targets)`` in transformed target units.
    config : RunConfig
    schema : Schema
    preprocessor : Preprocessor
        Fitted.
    metrics : dict, optional
    """

    def __init__(
        self,
        network: torch.nn.Module,
        config: RunConfig,
        schema: Schema,
        preprocessor: Preprocessor,
        metrics: dict | None = None,
    ):
        self.network = network.eval()
        self.config = config
        self.schema = schema
        self.preprocessor = preprocessor
        self.metrics = metrics or {}

    @property
    def targets(self) -> list[str]:
        return list(self.schema.targets)

    # -- prediction ---------------------------------------------------------------
    def predict_tensors(
        self, x_num: torch.Tensor, x_cat: torch.Tensor, batch: int = 8192
    ) -> np.ndarray:
        """Predictions in target units, shape ``(N, n_targets)``, from preprocessed tensors."""
        self.network.eval()
        outs = []
        with torch.inference_mode():
            for i in range(0, max(int(x_num.shape[0]), 1), batch):
                outs.append(self.network(x_num[i : i + batch], x_cat[i : i + batch]))
        z = torch.cat(outs).double().numpy() if outs else np.zeros((0, len(self.targets)))
        return self.preprocessor.inverse_target(z)

    def predict(self, data: Any) -> np.ndarray:
        """Predict from raw columns.

        Parameters
        ----------
        data : DataFrame, path or ndarray
            Needs every feature column the model was trained on, in any order;
            extra columns (the target included) are ignored.

        Returns
        -------
        ndarray of shape (n,) for one target, (n, n_targets) for several.
        """
        frame = read_table(data)
        check_columns(frame, self.schema)
        x_num, x_cat = self.preprocessor.transform(frame)
        pred = self.predict_tensors(torch.as_tensor(x_num), torch.as_tensor(x_cat))
        return pred[:, 0] if pred.shape[1] == 1 else pred

    def predict_frame(self, data: Any) -> pd.DataFrame:
        """Predictions as a DataFrame with one ``<target>_pred`` column per target."""
        pred = self.predict(data)
        pred = pred[:, None] if pred.ndim == 1 else pred
        return pd.DataFrame({f"{t}_pred": pred[:, j] for j, t in enumerate(self.targets)})

    def evaluate(self, data: Any) -> dict:
        """RMSE, MAE, R² (and MAPE where defined) on a table that has the target(s)."""
        from .data import clean_target

        frame = read_table(data)
        missing = [t for t in self.targets if t not in frame.columns]
        if missing:
            raise DataError(
                f"target column(s) {', '.join(missing)} not in the data; evaluate needs them"
            )
        frame = clean_target(frame, self.targets)
        pred = self.predict(frame)
        return regression_metrics(
            frame[self.targets].to_numpy(dtype=np.float64), pred, self.targets
        )

    # -- persistence ----------------------------------------------------------------
    @property
    def n_members(self) -> int:
        """Networks averaged: 1, or k for a bag (:class:`~tabresnet.models.MeanEnsemble`)."""
        return len(self.network.members) if isinstance(self.network, MeanEnsemble) else 1

    def to_json_dict(self, weights_sha256: str) -> dict:
        network = {
            "n_num": int(self.preprocessor.n_num),
            "cardinalities": [int(c) for c in self.preprocessor.cardinalities],
            "output_dim": len(self.targets),
            "n_cont": int(self.preprocessor.n_cont),
        }
        if isinstance(self.network, MeanEnsemble):
            network["members"] = self.n_members
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "tabresnet_version": __version__,
            "torch_version": torch.__version__.split("+")[0],
            "config": self.config.to_dict(),
            "schema": self.schema.to_dict(),
            "preprocessor": self.preprocessor.to_dict(),
            "network": network,
            "metrics": self.metrics,
            "weights": WEIGHTS,
            "weights_sha256": weights_sha256,
        }

    def save(self, directory: str | Path) -> Path:
        """Write ``model.json`` and ``model.safetensors`` into ``directory``; returns the JSON path."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.network.state_dict().items()}
        fd, tmp = tempfile.mkstemp(prefix=".model.", suffix=".safetensors.tmp", dir=directory)
        os.close(fd)
        try:
            save_file(tensors, tmp, metadata={"format": FORMAT})
            digest = hashlib.sha256(Path(tmp).read_bytes()).hexdigest()
            text = dumps(self.to_json_dict(digest))
            os.replace(tmp, directory / WEIGHTS)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
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


def resolve_model_path(path: str | Path) -> Path:
    """``RUN_DIR`` or ``RUN_DIR/model.json`` -> the ``model.json`` path."""
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_JSON
    if not path.is_file():
        raise ModelFileError(
            f"model file not found: {path}; pass a run directory or its model.json"
        )
    return path


def load(path: str | Path) -> TabularModel:
    """Load a model saved by ``fit``, ``tune`` or ``TabularModel.save``.

    Never unpickles: the JSON is parsed with :mod:`json` and the weights with
    safetensors, and the weights' SHA-256 is checked against the JSON.

    Parameters
    ----------
    path : path
        A run directory or its ``model.json``.

    Raises
    ------
    ModelFileError
        Missing, corrupted, truncated or foreign files.
    """
    path = resolve_model_path(path)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelFileError(
            f"model file {path} is corrupted or truncated (not valid JSON); re-run fit"
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not a tabresnet model file")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise ModelFileError(
            f"{path} has format version {meta.get('format_version')}, newer than this "
            f"tabresnet reads ({FORMAT_VERSION}); upgrade tabresnet"
        )
    weights = path.parent / meta.get("weights", WEIGHTS)
    if not weights.is_file():
        raise ModelFileError(f"weights file missing: {weights}; copy it beside {path.name}")
    raw = weights.read_bytes()
    if hashlib.sha256(raw).hexdigest() != meta.get("weights_sha256"):
        raise ModelFileError(
            f"weights file {weights} is corrupted or truncated (checksum mismatch); re-run fit"
        )
    try:
        if int(meta["format_version"]) < 3 and isinstance(meta["config"].get("model"), dict):
            for name, value in _OPTIONS_BEFORE_V3.items():
                meta["config"]["model"].setdefault(name, value)
        config = RunConfig.from_dict(meta["config"])
        schema = Schema.from_dict(meta["schema"])
        pre = Preprocessor.from_dict(meta["preprocessor"])
        net_meta = meta["network"]
        widths = (
            int(net_meta["n_num"]),
            [int(c) for c in net_meta["cardinalities"]],
            int(net_meta["output_dim"]),
            int(net_meta.get("n_cont", 0)),
        )
        members = int(net_meta.get("members", 0))
        if members:
            network = MeanEnsemble([config.model.build_tabular(*widths) for _ in range(members)])
        else:
            network = config.model.build_tabular(*widths)
        state = load_safetensors(raw)  # the bytes already checked: one read
        network.load_state_dict(state, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError, SafetensorError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelFileError(f"model file {path} is inconsistent: {first}; re-run fit") from None
    return TabularModel(network, config, schema, pre, meta.get("metrics") or {})
