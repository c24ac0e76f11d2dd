"""Read a run directory (docs/architecture.md, "Run directory") for the report.

Every reader returns ``None`` for an absent file and raises :class:`Unavailable`
for one it cannot read; the report prints the one-line reason in place of the
section it cannot draw. The network comes from :func:`tabresnet.artifact.load`,
the one model loader.

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

from ..artifact import load
from ..errors import TabResNetError

__all__ = ["NetworkInfo", "RUN_FILES", "RunDir", "Unavailable", "load_network"]

# The files of a run directory (docs/architecture.md, "Run directory").
RUN_FILES = (
    "config.yaml",
    "model.json",
    "model.safetensors",
    "metrics.json",
    "history.csv",
    "data_summary.json",
    "predictions_test.csv",
    "predictions_oof.csv",
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
        self.path = path.parent if path.is_file() and path.name == "model.json" else path
        self._cache: dict[str, Any] = {}

    def file(self, name: str) -> Path | None:
        p = self.path / name
        return p if p.exists() else None

    def has_any(self) -> bool:
        """Whether any of the documented run files is present."""
        return any((self.path / name).exists() for name in RUN_FILES)

    def _cached(self, key: str, read: Any) -> Any:
        if key not in self._cache:
            try:
                self._cache[key] = read()
            except Unavailable as exc:
                self._cache[key] = exc
        if isinstance(self._cache[key], Unavailable):
            raise self._cache[key]
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
                raise Unavailable(f"{name} is not valid JSON ({exc.msg}, line {exc.lineno})") from None

        return self._cached("j:" + name, read)

    def csv(self, name: str) -> pd.DataFrame | None:
        p = self.file(name)
        if p is None:
            return None

        def read() -> pd.DataFrame:
            try:
                return pd.read_csv(p)
            except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
                raise Unavailable(f"{name} cannot be read as CSV ({exc})".splitlines()[0]) from None

        return self._cached("c:" + name, read)

    def quiet_json(self, name: str) -> Any:
        """:meth:`json`, with ``None`` for an unreadable file as well as for a missing one."""
        try:
            return self.json(name)
        except Unavailable:
            return None

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
        cfg = (self.quiet_json("model.json") or {}).get("config")
        return cfg if isinstance(cfg, dict) else None

    def targets(self) -> list[str]:
        """Target column names (``model.json``'s schema, else ``data_summary.json``)."""
        schema = (self.quiet_json("model.json") or {}).get("schema") or {}
        summary = self.quiet_json("data_summary.json") or {}
        return [str(t) for t in schema.get("targets") or summary.get("targets") or ["target"]]

    def prediction_pairs(self, name: str = "predictions_test.csv") -> list[tuple[str, str, str]]:
        """``(target, true_column, pred_column)`` for each target in the predictions file ``name``."""
        try:
            df = self.csv(name)
        except Unavailable:
            return []
        pairs = []
        for col in [] if df is None else map(str, df.columns):
            m = re.fullmatch(r"y_true(_.+)?", col)
            if m and f"y_pred{m.group(1) or ''}" in df.columns:
                pairs.append(((m.group(1) or "_")[1:], col, f"y_pred{m.group(1) or ''}"))
        return pairs


@dataclass
class NetworkInfo:
    """The trained network and the widths of its two inputs."""

    network: Any
    n_num: int
    n_cat: int
    members: int = 1

    @property
    def single(self) -> Any:
        """One network: the first member of a bag, else the network itself."""
        return self.network.members[0] if self.members > 1 else self.network


def load_network(run: RunDir) -> NetworkInfo:
    """The run's network through :func:`tabresnet.artifact.load`, once per :class:`RunDir`.

    Raises
    ------
    Unavailable
        With the model file's error.
    """

    def read() -> NetworkInfo:
        try:
            model = load(run.path)
        except TabResNetError as exc:
            raise Unavailable(str(exc)) from None
        pre = model.preprocessor
        return NetworkInfo(model.network, pre.n_num, len(pre.cardinalities), model.n_members)

    return run._cached("network", read)
