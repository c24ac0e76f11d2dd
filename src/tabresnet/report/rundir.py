"""Read a run directory for the report, tolerating missing and partial files.

Every reader returns ``None`` for an absent file and raises for a corrupt one;
:class:`Unavailable` carries a one-line reason that the report prints in
place of a section it cannot draw.

>>> run = RunDir(".")
>>> run.json("no-such-file.json") is None
True
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["NetworkInfo", "RunDir", "Unavailable", "load_network"]

# The files of a run directory (docs/architecture.md, "Run directory").
RUN_FILES = (
    "config.yaml",
    "model.json",
    "model.safetensors",
    "metrics.json",
    "history.csv",
    "data_summary.json",
    "predictions_test.csv",
    "tuning",
)


class Unavailable(Exception):
    """A section cannot be drawn; the message says why, in one line."""


class RunDir:
    """Cached access to the files of one run directory.

    Parameters
    ----------
    path : str or Path
        The run directory (or its ``model.json``).
    """

    def __init__(self, path: str | Path):
        path = Path(path)
        if path.is_file() and path.name == "model.json":
            path = path.parent
        self.path = path
        self._cache: dict[str, Any] = {}

    def file(self, name: str) -> Path | None:
        p = self.path / name
        return p if p.exists() else None

    def has_any(self) -> bool:
        """Whether any of the documented run files is present."""
        return any((self.path / name).exists() for name in RUN_FILES)

    def _cached(self, key: str, read: Any) -> Any:
        if key not in self._cache:
            self._cache[key] = read()
        return self._cache[key]

    def text(self, name: str) -> str | None:
        p = self.file(name)
        return None if p is None else self._cached("t:" + name, lambda: p.read_text("utf-8"))

    def json(self, name: str) -> Any:
        text = self.text(name)
        if text is None:
            return None

        def read() -> Any:
            try:
                return json.loads(text)
            except json.JSONDecodeError as exc:
                raise Unavailable(
                    f"{name} is not valid JSON ({exc.msg}, line {exc.lineno})"
                ) from None

        return self._cached("j:" + name, read)

    def csv(self, name: str) -> pd.DataFrame | None:
        p = self.file(name)
        if p is None:
            return None

        def read() -> pd.DataFrame:
            try:
                return pd.read_csv(p)
            except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
                raise Unavailable(
                    f"{name} cannot be read as CSV ({exc})".splitlines()[0]
                ) from None

        return self._cached("c:" + name, read)

    # -- what the sections need --------------------------------------------------
    def config(self) -> dict[str, Any] | None:
        """The resolved run config as a nested dict (``config.yaml``, else ``model.json``)."""
        import yaml

        text = self.text("config.yaml")
        if text is not None:
            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError:
                data = None
            if isinstance(data, dict):
                return data
        model = self._model_json()
        cfg = model.get("config") if isinstance(model, dict) else None
        return cfg if isinstance(cfg, dict) else None

    def _model_json(self) -> dict[str, Any] | None:
        try:
            data = self.json("model.json")
        except Unavailable:
            return None
        return data if isinstance(data, dict) else None

    def targets(self) -> list[str]:
        """Target column names: from ``model.json``'s schema, else the config, else the files."""
        model = self._model_json() or {}
        schema = model.get("schema")
        if isinstance(schema, dict) and schema.get("targets"):
            return [str(t) for t in schema["targets"]]
        cfg = self.config() or {}
        data_cfg = cfg.get("data") if isinstance(cfg.get("data"), dict) else {}
        for where in (data_cfg, cfg):
            value = where.get("targets", where.get("target"))
            if isinstance(value, str):
                return [value]
            if isinstance(value, list) and value:
                return [str(t) for t in value]
        try:
            summary = self.json("data_summary.json")
        except Unavailable:
            summary = None
        found = [c["name"] for c in summary_columns(summary) if c["role"] == "target"]
        if found:
            return found
        return [name for name, _, _ in self.prediction_pairs()] or ["target"]

    def prediction_pairs(self) -> list[tuple[str, str, str]]:
        """``(target, true_column, pred_column)`` for each target in ``predictions_test.csv``."""
        try:
            df = self.csv("predictions_test.csv")
        except Unavailable:
            return []
        if df is None:
            return []
        pairs = []
        for col in df.columns:
            m = re.fullmatch(r"y_true(?:_(.+))?", str(col))
            if m and f"y_pred{str(col)[6:]}" in df.columns:
                pairs.append((m.group(1) or "", str(col), f"y_pred{str(col)[6:]}"))
        return pairs


def summary_columns(summary: Any) -> list[dict[str, Any]]:
    """Normalise ``data_summary.json``'s columns to dicts with name, role, dtype, missing.

    Accepts a list of records or a mapping of name to record; the missing count
    may be called ``missing``, ``n_missing`` or ``missing_count``.

    >>> summary_columns({"columns": {"a": {"role": "numeric", "dtype": "float64", "missing": 2}}})
    [{'name': 'a', 'role': 'numeric', 'dtype': 'float64', 'missing': 2, 'distinct': None}]
    """
    if not isinstance(summary, dict):
        return []
    cols = summary.get("columns")
    if isinstance(cols, dict):
        records = [{"name": k, **(v if isinstance(v, dict) else {"role": v})} for k, v in cols.items()]
    elif isinstance(cols, list):
        records = [c if isinstance(c, dict) else {"name": c} for c in cols]
    else:
        return []
    out = []
    for rec in records:
        missing = next(
            (rec[k] for k in ("missing", "n_missing", "missing_count", "na") if k in rec), None
        )
        out.append(
            {
                "name": str(rec.get("name", rec.get("column", "?"))),
                "role": str(rec.get("role", "")),
                "dtype": str(rec.get("dtype", "")),
                "missing": missing,
                "distinct": rec.get("distinct", rec.get("n_unique")),
            }
        )
    return out


def summary_rows(summary: Any) -> dict[str, int]:
    """Rows per split from ``data_summary.json`` (``rows`` or ``splits``), plus ``total``.

    ``total`` is ``n_rows`` where given (the rows the missing counts are taken
    over), else the sum of the splits.

    >>> summary_rows({"rows": {"train": 6, "val": 2, "test": 2}})
    {'train': 6, 'val': 2, 'test': 2, 'total': 10}
    """
    if not isinstance(summary, dict):
        return {}
    rows = summary.get("rows", summary.get("splits"))
    out: dict[str, int] = {}
    if isinstance(rows, dict):
        for k, v in rows.items():
            if isinstance(v, dict):  # {"train": {"rows": 6}}
                v = v.get("rows", v.get("n_rows"))
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[str(k)] = int(v)
    elif isinstance(rows, (int, float)) and not isinstance(rows, bool):
        out["total"] = int(rows)
    n_rows = summary.get("n_rows")
    if isinstance(n_rows, int) and not isinstance(n_rows, bool):
        out["total"] = n_rows
    if "total" not in out and out:
        out["total"] = sum(out.values())
    return out


@dataclass
class NetworkInfo:
    """The rebuilt network and the widths of its two inputs."""

    network: Any
    n_num: int
    n_cat: int
    source: str
    members: int = 1

    @property
    def single(self) -> Any:
        """One network: the first member of a bag, else the network itself."""
        return self.network.members[0] if self.members > 1 else self.network


def _input_widths(network: Any) -> tuple[int, int]:
    """``(n_num, n_cat)`` of a :class:`~tabresnet.models.TabularNetwork`-like module.

    The first ``nn.Linear`` of the backbone is its input layer in every network
    of :mod:`tabresnet.models`; the embeddings take the rest of its width.
    """
    from torch import nn

    cards = list(getattr(network, "cardinalities", []) or [])
    emb = getattr(getattr(network, "embeddings", None), "out_features", 0) if cards else 0
    backbone = getattr(network, "backbone", network)
    first = next((m for m in backbone.modules() if isinstance(m, nn.Linear)), None)
    if first is None:
        raise Unavailable("cannot tell the network's input width (no Linear layer)")
    return int(first.in_features) - int(emb), len(cards)


def load_network(run: RunDir) -> NetworkInfo:
    """Rebuild the trained network of a run directory.

    Built once per :class:`RunDir`. Uses ``tabresnet.artifact.load`` where it exists; otherwise builds the
    network from the config's ``model`` section, reading the input and output
    widths off the saved weights, and loads ``model.safetensors`` into it.

    Raises
    ------
    Unavailable
        With the reason, when neither way works.
    """
    cached = run._cache.get("network")
    if isinstance(cached, Unavailable):
        raise cached
    if cached is None:
        try:
            cached = _load_network(run)
        except Unavailable as exc:
            run._cache["network"] = exc
            raise
        run._cache["network"] = cached
    return cached


def _load_network(run: RunDir) -> NetworkInfo:
    reasons = []
    try:
        from tabresnet.artifact import load  # type: ignore[import-not-found]
    except ImportError:
        load = None
    if load is not None and run.file("model.json") is not None:
        try:
            obj = load(run.path)
            net = obj.network
            members = len(net.members) if hasattr(net, "members") else 1
            n_num, n_cat = _input_widths(net.members[0] if members > 1 else net)
            return NetworkInfo(net, n_num, n_cat, "tabresnet.artifact.load", members)
        except Exception as exc:  # fall back to building it here
            reasons.append(f"tabresnet.artifact.load failed: {exc}".splitlines()[0])
    try:
        return _build_from_files(run)
    except Unavailable as exc:
        reasons.append(str(exc))
    raise Unavailable("; ".join(reasons))


def _build_from_files(run: RunDir) -> NetworkInfo:
    weights = run.file("model.safetensors")
    if weights is None:
        raise Unavailable("model.safetensors is missing")
    cfg = run.config()
    if cfg is None or not isinstance(cfg.get("model", {}), dict):
        raise Unavailable("no model configuration (config.yaml / model.json)")
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    from torch import nn

    from tabresnet.models import ModelConfig

    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise Unavailable(f"model.safetensors cannot be read ({exc})".splitlines()[0]) from None
    try:
        mcfg = ModelConfig.from_dict(cfg.get("model") or {})
    except (ValueError, TypeError) as exc:
        raise Unavailable(f"the model configuration is invalid ({exc})".splitlines()[0]) from None
    cards = []
    for key in sorted(state, key=lambda k: [int(t) if t.isdigit() else t for t in k.split(".")]):
        if re.fullmatch(r"embeddings\.embeddings\.\d+\.weight", key):
            cards.append(int(state[key].shape[0]))
    emb = len(cards) * int(mcfg.embedding_dim)
    # A probe with one numeric input and one output names the input and output
    # layers; their saved shapes give the real widths.
    probe = mcfg.build_tabular(1, cards, 1)
    linears = [name for name, m in probe.named_modules() if isinstance(m, nn.Linear)]
    try:
        in_dim = int(state[f"{linears[0]}.weight"].shape[1])
        out_dim = int(state[f"{linears[-1]}.weight"].shape[0])
    except (KeyError, IndexError):
        raise Unavailable("the saved weights do not match the configured architecture") from None
    if in_dim - emb <= 0 and not cards:
        raise Unavailable("the saved weights have no input features")
    net = mcfg.build_tabular(in_dim - emb, cards, out_dim)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1:2] or [str(exc)]
        raise Unavailable(
            f"the saved weights do not match the configured architecture ({first[0].strip()})"
        ) from None
    net.eval()
    return NetworkInfo(net, in_dim - emb, len(cards), "config + model.safetensors")
