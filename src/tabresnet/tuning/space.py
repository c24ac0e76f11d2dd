"""The search space: YAML entries read into Optuna distributions, checked against the run config.

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
import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
)

from ..defaults import RunConfig, choices, flat_fields, load_yaml
from ..errors import ConfigError
from ..models.config import as_number

__all__ = ["DERIVED", "Entry", "SearchSpace", "default_space_text"]

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
    "num_nodes": "it is a hardware setting",
    "num_threads": "it is a hardware setting (tune sets it from --jobs)",
    "logger": "it is a logging setting",
    "progress": "it is a display setting",
    "deterministic": "it is a reproducibility setting",
    "max_epochs": "it is the training budget (pruning shortens bad trials)",
}
_TYPES = ("categorical", "float", "int", "pow2", "fixed")


def default_space_text() -> str:
    """The YAML text of the shipped default space."""
    return resources.files("tabresnet.tuning").joinpath("default_space.yaml").read_text("utf-8")


@dataclass(frozen=True)
class Entry:
    """One entry of a space: an Optuna distribution (``None``: the fixed ``value``).

    ``pow2`` entries search the exponent (an :class:`~optuna.distributions.IntDistribution`
    named ``log2_<name>``); ``per_group`` ones get one parameter per group
    (``<name>_1``, ...); ``when`` maps option names to the values that switch
    the entry on.
    """

    name: str
    dist: BaseDistribution | None
    value: Any = None
    pow2: bool = False
    per_group: bool = False
    when: dict = field(default_factory=dict)

    def param_name(self, group: int | None = None) -> str:
        name = self.name if group is None else f"{self.name}_{group}"
        return f"log2_{name}" if self.pow2 else name

    def suggest(self, trial: Any, group: int | None = None) -> Any:
        d, name = self.dist, self.param_name(group)
        if d is None:
            return self.value
        if isinstance(d, CategoricalDistribution):
            return trial.suggest_categorical(name, list(d.choices))
        if isinstance(d, IntDistribution):
            value = int(trial.suggest_int(name, d.low, d.high, step=d.step, log=d.log))
            return 2**value if self.pow2 else value
        return float(trial.suggest_float(name, d.low, d.high, step=d.step, log=d.log))

    def encode(self, value: Any) -> Any:
        """``value`` as the study stores it, or ``_OUTSIDE`` where the distribution lacks it."""
        d = self.dist
        if isinstance(d, CategoricalDistribution):
            return value if value in d.choices else _OUTSIDE
        if d is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            return _OUTSIDE
        if self.pow2:
            if value <= 0 or value != 2 ** round(math.log2(value)):
                return _OUTSIDE
            value = round(math.log2(value))
        steps = (value - d.low) / d.step if d.step else 0.0
        if not d.low <= value <= d.high or not math.isclose(steps, round(steps)):
            return _OUTSIDE
        if isinstance(d, IntDistribution):
            return int(value) if value == int(value) else _OUTSIDE
        return float(value)

    def bounds(self) -> list[Any]:
        """Values worth validating: the choices, the fixed value or the range ends."""
        d = self.dist
        if d is None:
            return [self.value]
        if isinstance(d, CategoricalDistribution):
            return list(d.choices)
        ends = [d.low, d.high]
        return [2**e for e in ends] if self.pow2 else ends


_OUTSIDE = object()


class SearchSpace:
    """An ordered list of :class:`Entry`; build one with :meth:`load` or :meth:`from_yaml`.

    Parameters
    ----------
    entries : list of Entry
    text : str
        The YAML source (printed by ``tabresnet tune --show-space``).
    source : str
        Where it came from, for messages.
    """

    def __init__(self, entries: list[Entry], text: str = "", source: str = "<space>"):
        self.entries = list(entries)
        self.text = text
        self.source = source

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
            data = load_yaml(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark else ""
            what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError(f"search space {source} is not valid YAML{where}: {what}") from None
        if not isinstance(data, dict) or not data:
            raise ConfigError(
                f"search space {source} must be a non-empty YAML mapping of option: range"
            )
        fields = flat_fields()
        entries: dict[str, Entry] = {}
        for raw_name, spec in data.items():
            name = str(raw_name)
            _check_name(name, fields, source)
            entry = _parse_entry(name, spec, f"search space {source}, entry {name}")
            for key in entry.when:
                if key not in fields and key not in DERIVED:
                    raise ConfigError(
                        f"search space {source}: {name} has a condition on unknown option {key!r}"
                    )
                if key in data and key not in entries:
                    raise ConfigError(f"search space {source}: {name} depends on {key}, "
                                      f"so list {key} before {name}")
                if key in entries and entries[key].per_group:
                    raise ConfigError(
                        f"search space {source}: {name} cannot depend on the per-group {key}"
                    )
                never = [v for v in entry.when[key] if not _can_take(key, v, entries, fields)]
                if never:  # a typo would switch the entry off for good, silently
                    raise ConfigError(
                        f"search space {source}: {name} is searched when {key} is "
                        f"{', '.join(map(repr, never))}, which {key} never is here"
                    )
            _check_values(entry, f"search space {source}, entry {name}")
            entries[name] = entry
        for derived, flat in _LIST_OF.items():
            if derived in entries and flat in entries:
                raise ConfigError(f"search space {source} lists both {derived} and {flat}; keep one")
        if "n_groups" in entries and entries.keys() & {"num_blocks", "c_hidden"}:
            raise ConfigError(
                f"search space {source} lists n_groups with a fixed num_blocks or c_hidden; "
                "use blocks and width instead"
            )
        return cls(list(entries.values()), text=text, source=source)

    @property
    def names(self) -> list[str]:
        """The entry names, in sampling order."""
        return [e.name for e in self.entries]

    def __repr__(self) -> str:
        return f"SearchSpace({self.source}: {', '.join(self.names)})"

    def fingerprint(self) -> str:
        """A short hash of the entries (stored in the study to notice a changed space)."""
        text = json.dumps([
            [e.name, distribution_to_json(e.dist) if e.dist else repr(e.value), e.pow2,
             e.per_group, sorted((k, list(v)) for k, v in e.when.items())]
            for e in self.entries
        ])
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def _active(self, config: RunConfig, values: dict[str, Any]):
        """Yield the entries whose ``when`` holds, with a reader of current values."""
        flat = config.to_flat()

        def current(name: str) -> Any:
            if name in values:
                return values[name]
            return len(flat["num_blocks"]) if name == "n_groups" else flat.get(name)

        for e in self.entries:
            if all(current(k) in allowed for k, allowed in e.when.items()):
                yield e, current

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
        values: dict[str, Any] = {}
        single_width = base.model.arch != "resnet"  # the chapter's networks have one group
        current = None
        for e, current in self._active(base, values):
            if e.name == "n_groups" and single_width:
                values["n_groups"] = 1
            elif e.per_group:
                values[e.name] = [e.suggest(trial, g + 1) for g in range(int(current("n_groups")))]
            else:
                values[e.name] = e.suggest(trial)
        overrides = {k: v for k, v in values.items() if k not in DERIVED}
        if current is not None and values.keys() & set(DERIVED):
            n = int(current("n_groups"))
            flat = base.to_flat()
            for derived, name in _LIST_OF.items():
                overrides[name] = _resize(values.get(derived, flat[name]), n)
        return base.replace(**overrides), overrides

    def params_for(self, config: RunConfig) -> dict[str, Any]:
        """The study parameters that make :meth:`sample` give back ``config``.

        ``tune`` enqueues them as the first trial of a new study, so that the
        search starts from the defaults of ``fit`` and cannot end worse than
        them on its own score. A value outside the space (a width that is not
        a power of two, a choice the space does not offer) is left out and
        that parameter is sampled as usual.

        Examples
        --------
        >>> space = SearchSpace.from_yaml('''
        ... n_groups: {type: int, low: 1, high: 3}
        ... width: {type: pow2, low: 16, high: 256, per_group: true}
        ... lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
        ... batch_size: [32, 64]
        ... ''')
        >>> cfg = RunConfig().replace(num_blocks=[2, 2], c_hidden=[64, 128], lr=0.01, batch_size=256)
        >>> space.params_for(cfg)
        {'n_groups': 2, 'log2_width_1': 6, 'log2_width_2': 7, 'lr': 0.01}
        """
        flat = config.to_flat()
        values = {d: flat[name] for d, name in _LIST_OF.items()}
        params: dict[str, Any] = {}
        for e, current in self._active(config, values):
            if e.name == "n_groups" and config.model.arch != "resnet":
                continue
            value = current(e.name)
            if e.name == "norm" and value is None:
                value = _natural_norm(config.model.block)
            if e.per_group:
                if len(value) != int(current("n_groups")):
                    continue
                pairs = [(e.param_name(g + 1), v) for g, v in enumerate(value)]
            else:
                pairs = [(e.param_name(), value)]
            for name, v in pairs:
                coded = e.encode(v)
                if coded is not _OUTSIDE:
                    params[name] = coded
        return params

    def check(self, base: RunConfig, samples: int = 32, seed: int = 0) -> None:
        """Sample ``samples`` random configs; a :class:`ConfigError` if one is invalid.

        Catches a space that does not fit the run config (say, a categorical
        choice the config rejects) before any trial is spent on it.
        """
        import optuna

        from . import quiet_optuna

        with quiet_optuna():
            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
        for _ in range(samples):
            trial = study.ask()
            try:
                self.sample(trial, base)
            except (ValueError, TypeError) as exc:
                raise ConfigError(
                    f"search space {self.source} gives an invalid run config: "
                    f"{str(exc).splitlines()[0]}; change the space or the fixed options"
                ) from None
            study.tell(trial, 0.0)


def _natural_norm(block: str) -> Any:
    """The norm a block uses when the config leaves ``norm`` unset."""
    import inspect

    from ..models import get_block

    default = inspect.signature(get_block(block)).parameters.get("norm")
    return None if default is None else default.default


def _resize(value: Any, n: int) -> list[int]:
    """A per-group list of length ``n``: a scalar repeated, a list cut or padded with its last."""
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    return [int(v) for v in items[:n] + [items[-1]] * max(0, n - len(items))]


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
    reason = _NOT_SEARCHABLE.get(name)
    if reason is None and fields[name][0] == "data":
        reason = "the data are prepared once per worker, not per trial"
    if reason:
        raise ConfigError(f"search space {source} cannot search {name}: {reason}; set it as a flag")


def _parse_entry(name: str, spec: Any, where: str) -> Entry:
    """One YAML entry as an :class:`Entry`; Optuna's distributions check the ranges."""
    if isinstance(spec, list):
        spec = {"type": "categorical", "choices": spec}
    elif not isinstance(spec, dict):
        return Entry(name, None, value=spec)
    spec = dict(spec)
    kind = str(spec.pop("type", "categorical" if "choices" in spec else "")).lower()
    if kind not in _TYPES:
        raise ConfigError(f"{where}: type must be one of {', '.join(_TYPES)}, however: {kind!r}")
    per_group = bool(spec.pop("per_group", False))
    if per_group and name not in _LIST_OF:
        raise ConfigError(f"{where}: per_group is only for blocks and width")
    when = spec.pop("when", None) or {}
    if not isinstance(when, dict):
        raise ConfigError(f"{where}: when must be a mapping of option: value(s)")
    when = {str(k): tuple(v) if isinstance(v, list) else (v,) for k, v in when.items()}
    common = {"per_group": per_group, "when": when}
    try:
        if kind == "fixed":
            entry = Entry(name, None, value=spec.pop("value", None), when=when)
        elif kind == "categorical":
            choices = spec.pop("choices", None)
            if not isinstance(choices, list) or not choices:
                raise ConfigError(f"{where}: choices must be a non-empty list")
            if any(isinstance(c, (list, dict)) for c in choices):
                raise ConfigError(f"{where}: choices must be single values; search list "
                                  "options with n_groups, blocks and width")
            kind_of = getattr(flat_fields().get(name, ("", None))[1], "type", None)
            if kind_of in ("float", "int") and all(_is_finite_number(c) for c in choices):
                # PyYAML reads 1e-3 as text: the study would store (and report) strings.
                choices = [float(c) if kind_of == "float" else int(float(c)) for c in choices]
            entry = Entry(name, CategoricalDistribution(choices), **common)
        else:
            low, high = spec.pop("low"), spec.pop("high")
            log, step = bool(spec.pop("log", False)), spec.pop("step", None)
            ends = [low, high] + ([step] if step is not None else [])
            if not all(_is_finite_number(v) for v in ends):
                raise ConfigError(f"{where}: low, high and step must be finite numbers, however: "
                                  f"{', '.join(map(repr, ends))}")
            if step is not None and float(step) <= 0:
                raise ConfigError(f"{where}: step must be positive, however: {step!r}")
            if kind == "float":
                dist = FloatDistribution(float(low), float(high), log=log, step=step)
            elif kind == "int":
                dist = IntDistribution(_whole(low), _whole(high), log=log, step=int(step or 1))
            else:
                if any(v <= 0 or v != 2 ** round(math.log2(v)) for v in (low, high)):
                    raise ConfigError(f"{where}: pow2 ends must be powers of two, "
                                      f"however: {low}, {high}")
                dist = IntDistribution(round(math.log2(low)), round(math.log2(high)))
            entry = Entry(name, dist, pow2=kind == "pow2", **common)
    except KeyError as exc:
        raise ConfigError(f"{where}: missing {exc.args[0]}") from None
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:  # Optuna's own range checks among them
        raise ConfigError(f"{where}: {str(exc).splitlines()[0]}") from None
    if spec:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(str, spec))}")
    return entry


def _is_finite_number(value: Any) -> bool:
    """A finite number, or text that reads as one (PyYAML reads ``1e-4`` as text)."""
    number = as_number(value)
    return number is not None and math.isfinite(number)


def _can_take(key: str, value: Any, entries: dict[str, Entry], fields: dict) -> bool:
    """Whether option ``key`` can hold ``value`` in this space (its entry, or its choices)."""
    if key in entries:
        entry = entries[key]
        if entry.dist is None:
            return value == entry.value
        return entry.encode(value) is not _OUTSIDE
    section = fields[key][0] if key in fields else ""
    allowed = choices(section, key) if section else None
    return allowed is None or value in allowed


def _whole(value: Any) -> int:
    if float(value) != int(float(value)):
        raise ValueError(f"int ranges need whole numbers, however: {value}")
    return int(float(value))


def _check_values(entry: Entry, where: str) -> None:
    """Each choice, fixed value and range end must be a valid value of its option."""
    for value in entry.bounds():
        if entry.name in DERIVED:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{where}: values must be whole numbers >= 1, however: {value!r}")
            continue
        errors = []
        # A second try on one small group: arch choices other than "resnet"
        # reject the default two groups, not the value itself.
        for extra in ({}, {"num_blocks": [1], "c_hidden": [8]}):
            try:
                RunConfig().replace(**{**extra, entry.name: value})
                break
            except (ValueError, TypeError) as exc:
                errors.append(str(exc).splitlines()[0])
        else:
            raise ConfigError(f"{where}: {errors[0]}")
