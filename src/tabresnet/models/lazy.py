"""Package attributes imported on first use (PEP 562), for the packages of tabresnet.

``tabresnet``, ``tabresnet.models`` and ``tabresnet.tuning`` name their public
objects up front but import the modules that hold them only when one is used,
so that ``import tabresnet`` and ``tabresnet --help`` load neither torch nor
Lightning nor Optuna. Standard library only.

>>> import types
>>> mod = types.ModuleType("demo")
>>> mod.__getattr__, mod.__dir__ = lazy_attributes(vars(mod), {"dumps": "json"})
>>> mod.dumps([1])
'[1]'
>>> "dumps" in vars(mod), "dumps" in dir(mod)
(True, True)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["lazy_attributes"]


def lazy_attributes(
    namespace: dict[str, Any], table: dict[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A module's ``__getattr__`` and ``__dir__`` that import ``table``'s names on first use.

    Parameters
    ----------
    namespace : dict
        The module's ``globals()``; a name, once imported, is kept there.
    table : dict
        Public name -> the absolute name of the module that defines it.

    Returns
    -------
    (__getattr__, __dir__)
        To assign at the module's top level.
    """

    def __getattr__(name: str) -> Any:
        if name in table:
            value = getattr(importlib.import_module(table[name]), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(table))

    return __getattr__, __dir__
