"""A declarative search space, read from YAML and checked against the run config.

    tabresnet tune --show-space                     # print the default space
    tabresnet tune DATA --target y --space my.yaml  # tune over your own

The default space ships as ``tabresnet/tuning/default_space.yaml``; its header
documents the format. Every name in a space is a flat option name of
:mod:`tabresnet.defaults` (``lr``, ``dropout``, ``batch_size``) or one of the
derived names ``n_groups``, ``blocks`` and ``width``, which become
``num_blocks`` and ``c_hidden``. Options a space does not list keep the run
config's value, so ``tune`` and ``fit`` share one set of defaults.

Examples
--------
>>> import optuna
>>> from tabresnet.defaults import RunConfig
>>> space = SearchSpace.from_yaml('''
... n_groups: {type: int, low: 1, high: 3}
... width: {type: pow2, low: 16, high: 256, per_group: true}
... optimizer: [adamw, sgd]
... gradient_clip: {type: float, low: 0.5, high: 5.0, when: {optimizer: sgd}}
... ''')
>>> trial = optuna.trial.FixedTrial(
...     {"n_groups": 2, "log2_width_1": 5, "log2_width_2": 7, "optimizer": "adamw"})
>>> cfg, flat = space.sample(trial, RunConfig())
>>> flat
{'optimizer': 'adamw', 'num_blocks': [2, 2], 'c_hidden': [32, 128]}
>>> cfg.model.c_hidden, cfg.train.gradient_clip
([32, 128], 0.0)
>>> SearchSpace.from_yaml("learning_rate: [0.1, 0.01]")
Traceback (most recent call last):
...
tabresnet.errors.ConfigError: unknown option 'learning_rate' in search space <text>; ...
"""

from __future__ import annotations

import difflib
import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..defaults import RunConfig, flat_fields
from ..errors import ConfigError

__all__ = ["DERIVED", "Param", "SearchSpace", "default_space_text"]

# Derived names: the architecture's shape, mapped to num_blocks and c_hidden.
DERIVED = ("n_groups", "blocks", "width")
_LIST_OF = {"blocks": "num_blocks", "width": "c_hidden"}
# Options a space may not search: the data are split and preprocessed once per
# worker (not per trial), and the rest are not hyperparameters.
_NOT_SEARCHABLE = {
    "seed": "it changes the data split",
    "accelerator": "it is a hardware setting",
    "devices": "it is a hardware setting",
    "strategy": "it is a hardware setting",
    "num_threads": "it is a hardware setting (tune sets it from --jobs)",
    "logger": "it is a logging setting",
    "progress": "it is a display setting",
    "deterministic": "it is a reproducibility setting",
    "max_epochs": "it is the training budget (pruning shortens bad trials)",
}
_KINDS = ("categorical", "float", "int", "pow2", "fixed")


def default_space_text() -> str:
    """The YAML text of the shipped default space."""
    return resources.files("tabresnet.tuning").joinpath("default_space.yaml").read_text("utf-8")


@dataclass(frozen=True)
class Param:
    """One entry of a search space.

    Attributes
    ----------
    name : str
        Flat option name or derived name (``n_groups``, ``blocks``, ``width``).
    kind : {"categorical", "float", "int", "pow2", "fixed"}
    choices : tuple
        Categorical choices.
    low, high : float
        Range ends (for ``pow2``: the powers of two themselves).
    log : bool
    step : float or None
    value : Any
        The value of a ``fixed`` entry.
    per_group : bool
        One value per group (``blocks`` and ``width`` only).
    when : dict
        Option name -> allowed values; the entry is sampled only when all match.
    """

    name: str
    kind: str
    choices: tuple = ()
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: float | None = None
    value: Any = None
    per_group: bool = False
    when: dict = field(default_factory=dict)

    def optuna_name(self, group: int | None = None) -> str:
        """The parameter's name in the study (``log2_`` for powers of two, ``_<g>`` per group)."""
        name = self.name if group is None else f"{self.name}_{group}"
        return f"log2_{name}" if self.kind == "pow2" else name

    def suggest(self, trial: Any, group: int | None = None) -> Any:
        name = self.optuna_name(group)
        if self.kind == "fixed":
            return self.value
        if self.kind == "categorical":
            return trial.suggest_categorical(name, list(self.choices))
        if self.kind == "float":
            return float(
                trial.suggest_float(name, self.low, self.high, log=self.log, step=self.step)
            )
        if self.kind == "int":
            step = int(self.step or 1)
            return int(trial.suggest_int(name, int(self.low), int(self.high), step=step,
                                         log=self.log))
        exponent = trial.suggest_int(name, int(math.log2(self.low)), int(math.log2(self.high)))
        return 2 ** int(exponent)

    def bounds(self) -> list[Any]:
        """Values worth validating: the choices, the fixed value or the range ends."""
        if self.kind == "categorical":
            return list(self.choices)
        if self.kind == "fixed":
            return [self.value]
        if self.kind in ("int", "pow2"):
            return [int(self.low), int(self.high)]
        return [float(self.low), float(self.high)]


class SearchSpace:
    """An ordered list of :class:`Param` entries; build one with :meth:`load` or :meth:`from_yaml`.

    Parameters
    ----------
    params : list of Param
    text : str
        The YAML source (printed by ``tabresnet tune --show-space``).
    source : str
        Where it came from, for messages.
    """

    def __init__(self, params: list[Param], text: str = "", source: str = "<space>"):
        self.params = list(params)
        self.text = text
        self.source = source
        self._by_name = {p.name: p for p in self.params}

    # -- reading -----------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path | None = None) -> SearchSpace:
        """Read a space from a YAML file, or the default space when ``path`` is ``None``."""
        if path is None:
            return cls.from_yaml(default_space_text(), source="default_space.yaml")
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"search space file not found: {path}; pass a YAML file to --space")
        return cls.from_yaml(path.read_text(encoding="utf-8"), source=str(path))

    @classmethod
    def from_yaml(cls, text: str, source: str = "<text>") -> SearchSpace:
        """Parse and check a space; every problem raises a one-line :class:`ConfigError`."""
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            first = str(exc).splitlines()[0]
            raise ConfigError(f"search space {source} is not valid YAML: {first}") from None
        if not isinstance(data, dict) or not data:
            raise ConfigError(
                f"search space {source} must be a non-empty YAML mapping of option: range"
            )
        fields = flat_fields()
        params: list[Param] = []
        for raw_name, spec in data.items():
            name = str(raw_name)
            _check_name(name, fields, source)
            param = _parse_entry(name, spec, source)
            seen = {p.name for p in params}
            for key in param.when:
                if key not in fields and key not in DERIVED:
                    raise ConfigError(
                        f"search space {source}: {name} has a condition on unknown option {key!r}"
                    )
                if key in data and key not in seen:
                    raise ConfigError(
                        f"search space {source}: {name} depends on {key}, "
                        f"so list {key} before {name}"
                    )
                if key in data and _by(params, key).per_group:
                    raise ConfigError(
                        f"search space {source}: {name} cannot depend on the per-group {key}"
                    )
            _check_values(param, source)
            params.append(param)
        names = {p.name for p in params}
        for derived, flat in _LIST_OF.items():
            if derived in names and flat in names:
                raise ConfigError(
                    f"search space {source} lists both {derived} and {flat}; keep one"
                )
        if "n_groups" in names and names & {"num_blocks", "c_hidden"}:
            raise ConfigError(
                f"search space {source} lists n_groups with a fixed num_blocks or c_hidden; "
                "use blocks and width instead"
            )
        return cls(params, text=text, source=source)

    # -- properties -----------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """The entry names, in sampling order."""
        return [p.name for p in self.params]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __repr__(self) -> str:
        return f"SearchSpace({self.source}: {', '.join(self.names)})"

    def fingerprint(self) -> str:
        """A short hash of the entries (stored in the study to notice a changed space)."""
        text = repr([(p.name, p.kind, p.choices, p.low, p.high, p.log, p.step, p.value,
                      p.per_group, sorted(p.when.items())) for p in self.params])
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    # -- sampling -------------------------------------------------------------------
    def sample(self, trial: Any, base: RunConfig) -> tuple[RunConfig, dict[str, Any]]:
        """Suggest every entry through ``trial`` and apply them to ``base``.

        Parameters
        ----------
        trial : optuna.Trial or optuna.trial.FixedTrial
        base : RunConfig
            Values of the options the space does not set.

        Returns
        -------
        config : RunConfig
        overrides : dict
            The flat options the space set (``num_blocks``/``c_hidden`` for the
            derived names), JSON-safe: ``base.replace(**overrides) == config``.

        Raises
        ------
        ValueError
            The sampled values make an invalid run config.
        """
        flat = base.to_flat()
        values: dict[str, Any] = {}

        def current(name: str) -> Any:
            if name in values:
                return values[name]
            if name == "n_groups":
                return len(flat["num_blocks"])
            return flat.get(name)

        single_width = base.model.arch != "resnet"  # the chapter's networks have one group
        for p in self.params:
            if not all(current(k) in allowed for k, allowed in p.when.items()):
                continue
            if p.name == "n_groups" and single_width:
                values["n_groups"] = 1
            elif p.per_group:
                n = int(current("n_groups"))
                values[p.name] = [p.suggest(trial, g + 1) for g in range(n)]
            else:
                values[p.name] = p.suggest(trial, None)

        overrides = {k: v for k, v in values.items() if k not in DERIVED}
        if any(k in values for k in DERIVED):
            n = int(current("n_groups"))
            for derived, name in _LIST_OF.items():
                given = values.get(derived, flat[name])
                overrides[name] = _resize(given, n)
        return base.replace(**overrides), overrides

    def params_for(self, config: RunConfig) -> dict[str, Any]:
        """The study parameters that make :meth:`sample` give back ``config``.

        ``tune`` enqueues them as the first trial of a new study, so that the
        search starts from the defaults of ``fit`` and cannot end worse than
        them on its own score. A value outside the space (a width that is not
        a power of two, a choice the space does not offer) is left out and
        that parameter is sampled as usual.

        Parameters
        ----------
        config : RunConfig

        Returns
        -------
        dict
            Optuna parameter name -> value (``log2_width_1`` -> 7, ...).

        Examples
        --------
        >>> space = SearchSpace.from_yaml('''
        ... n_groups: {type: int, low: 1, high: 3}
        ... width: {type: pow2, low: 16, high: 256, per_group: true}
        ... lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
        ... batch_size: [32, 64]
        ... ''')
        >>> space.params_for(RunConfig().replace(c_hidden=[64, 128], lr=0.01, batch_size=256))
        {'n_groups': 2, 'log2_width_1': 6, 'log2_width_2': 7, 'lr': 0.01}
        """
        flat = config.to_flat()
        values: dict[str, Any] = {"n_groups": len(flat["num_blocks"])}
        values.update({d: flat[name] for d, name in _LIST_OF.items()})
        params: dict[str, Any] = {}

        def current(name: str) -> Any:
            return values[name] if name in values else flat.get(name)

        single_width = config.model.arch != "resnet"
        for p in self.params:
            if not all(current(k) in allowed for k, allowed in p.when.items()):
                continue
            if p.name == "n_groups" and single_width:
                continue
            value = current(p.name)
            if p.name == "norm" and value is None:
                value = _natural_norm(config.model.block)
            if p.per_group:
                items = list(value)
                if len(items) != int(current("n_groups")):
                    continue
                pairs = [(p.optuna_name(g + 1), v) for g, v in enumerate(items)]
            else:
                pairs = [(p.optuna_name(None), value)]
            for name, v in pairs:
                coded = _encode(p, v)
                if coded is not _OUTSIDE:
                    params[name] = coded
        return params

    def check(self, base: RunConfig, samples: int = 32, seed: int = 0) -> None:
        """Sample ``samples`` random configs; a :class:`ConfigError` if one is invalid.

        Catches a space that does not fit the run config (say, a categorical
        choice the config rejects) before any trial is spent on it.
        """
        import optuna

        from .objective import quiet_optuna

        with quiet_optuna():
            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
        for _ in range(samples):
            trial = study.ask()
            try:
                self.sample(trial, base)
            except (ValueError, TypeError) as exc:
                first = str(exc).splitlines()[0]
                raise ConfigError(
                    f"search space {self.source} gives an invalid run config: {first}; "
                    "change the space or the fixed options"
                ) from None
            study.tell(trial, 0.0)


_OUTSIDE = object()


def _encode(p: Param, value: Any) -> Any:
    """``value`` as the study stores it for ``p``, or ``_OUTSIDE`` if the space lacks it."""
    if p.kind == "fixed":
        return _OUTSIDE
    if p.kind == "categorical":
        return value if value in p.choices else _OUTSIDE
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return _OUTSIDE
    if p.kind == "pow2":
        if value <= 0 or value != 2 ** round(math.log2(value)):
            return _OUTSIDE
        value, low, high = round(math.log2(value)), math.log2(p.low), math.log2(p.high)
    else:
        low, high = p.low, p.high
    if not low <= value <= high:
        return _OUTSIDE
    if p.step is not None and not math.isclose(
        (value - low) / p.step, round((value - low) / p.step)
    ):
        return _OUTSIDE
    if p.kind in ("int", "pow2"):
        return int(value) if value == int(value) else _OUTSIDE
    return float(value)


def _natural_norm(block: str) -> Any:
    """The norm a block uses when the config leaves ``norm`` unset."""
    import inspect

    from ..models import get_block

    default = inspect.signature(get_block(block)).parameters.get("norm")
    return None if default is None else default.default


def _by(params: Iterable[Param], name: str) -> Param:
    return next(p for p in params if p.name == name)


def _resize(value: Any, n: int) -> list[int]:
    """A per-group list of length ``n``: a scalar repeated, a list cut or padded with its last."""
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    items = items[:n] + [items[-1]] * max(0, n - len(items))
    return [int(v) for v in items]


def _check_name(name: str, fields: dict, source: str) -> None:
    if name in DERIVED:
        return
    if name not in fields:
        close = difflib.get_close_matches(name, [*fields, *DERIVED], n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(
            f"unknown option {name!r} in search space {source}; {hint}"
            "`tabresnet config` lists the options (plus n_groups, blocks, width)"
        )
    section = fields[name][0]
    reason = _NOT_SEARCHABLE.get(name)
    if reason is None and section == "data":
        reason = "the data are prepared once per worker, not per trial"
    if reason:
        raise ConfigError(f"search space {source} cannot search {name}: {reason}; set it as a flag")


def _parse_entry(name: str, spec: Any, source: str) -> Param:
    where = f"search space {source}, entry {name}"
    if isinstance(spec, list):
        spec = {"type": "categorical", "choices": spec}
    elif not isinstance(spec, dict):
        return Param(name, "fixed", value=spec)
    spec = dict(spec)
    if "choices" in spec:
        spec.setdefault("type", "categorical")
    kind = str(spec.pop("type", "")).lower()
    if kind not in _KINDS:
        raise ConfigError(
            f"{where}: type must be one of categorical, float, int, pow2, however: {kind!r}"
        )
    per_group = bool(spec.pop("per_group", False))
    if per_group and name not in _LIST_OF:
        raise ConfigError(f"{where}: per_group is only for blocks and width")
    when_raw = spec.pop("when", None) or {}
    if not isinstance(when_raw, dict):
        raise ConfigError(f"{where}: when must be a mapping of option: value(s)")
    when = {str(k): tuple(v) if isinstance(v, list) else (v,) for k, v in when_raw.items()}
    try:
        if kind == "categorical":
            choices = spec.pop("choices", None)
            if not isinstance(choices, list) or not choices:
                raise ConfigError(f"{where}: choices must be a non-empty list")
            if any(isinstance(c, (list, dict)) for c in choices):
                raise ConfigError(
                    f"{where}: choices must be single values; search list options "
                    "with n_groups, blocks and width"
                )
            param = Param(name, kind, choices=tuple(choices), per_group=per_group, when=when)
        elif kind == "fixed":
            param = Param(name, kind, value=spec.pop("value", None), when=when)
        else:
            low, high = float(spec.pop("low")), float(spec.pop("high"))
            log = bool(spec.pop("log", False))
            step = spec.pop("step", None)
            step = float(step) if step is not None else None
            if not low <= high:
                raise ConfigError(f"{where}: low must not exceed high, however: {low} > {high}")
            if (log or kind == "pow2") and low <= 0:
                raise ConfigError(f"{where}: a log or pow2 range needs low > 0, however: {low}")
            if kind == "pow2":
                for v in (low, high):
                    if v != 2 ** round(math.log2(v)):
                        raise ConfigError(f"{where}: pow2 ends must be powers of two, however: {v}")
            if kind in ("int", "pow2") and (low != int(low) or high != int(high)):
                raise ConfigError(f"{where}: int ranges need whole numbers, however: {low}, {high}")
            param = Param(name, kind, low=low, high=high, log=log, step=step,
                          per_group=per_group, when=when)
    except KeyError as exc:
        raise ConfigError(f"{where}: missing {exc.args[0]}") from None
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{where}: {str(exc).splitlines()[0]}") from None
    if spec:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(str, spec))}")
    return param


def _check_values(param: Param, source: str) -> None:
    """Each choice, fixed value and range end must be a valid value of its option."""
    where = f"search space {source}, entry {param.name}"
    for value in param.bounds():
        if param.name in DERIVED:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{where}: values must be whole numbers >= 1, however: {value!r}")
            continue
        errors = []
        # A second try on one small group: arch choices other than "resnet"
        # reject the default two groups, not the value itself.
        for extra in ({}, {"num_blocks": [1], "c_hidden": [8]}):
            try:
                RunConfig().replace(**{**extra, param.name: value})
                break
            except (ValueError, TypeError) as exc:
                errors.append(str(exc).splitlines()[0])
        else:
            raise ConfigError(f"{where}: {errors[0]}")
