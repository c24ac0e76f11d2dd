"""Errors a user can fix. Each message is one line: the problem and the way out.

The ``tabresnet`` command prints ``error: <message>`` for these and exits with
status 2, without a traceback.

>>> raise DataError("target column 'price' not found; columns are: a, b")
Traceback (most recent call last):
...
tabresnet.errors.DataError: target column 'price' not found; columns are: a, b
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path

__all__ = [
    "ConfigError",
    "DataError",
    "ExportError",
    "ModelFileError",
    "TabResNetError",
    "TabResNetWarning",
    "TrainingError",
    "user_stacklevel",
]


class TabResNetError(Exception):
    """Base class of every error caused by input the user can change."""


class DataError(TabResNetError, ValueError):
    """The data, or the columns asked of it, cannot be used."""


class ConfigError(TabResNetError, ValueError):
    """A configuration value is invalid."""


class ModelFileError(TabResNetError):
    """A model file is missing, corrupted, truncated or of an unknown format."""


class ExportError(TabResNetError):
    """A model cannot be written in the asked format (ONNX, TorchScript)."""


class TrainingError(TabResNetError, RuntimeError):
    """Training gave no usable network (its loss became NaN or infinite at once)."""


class TabResNetWarning(UserWarning):
    """Something the user should know about their data or run; one line.

    tabresnet's own warnings use this class so that a front end (the
    ``tabresnet`` command) can print them as one clean ``warning:`` line
    instead of Python's ``file:line: UserWarning: ...`` format, and a user
    can filter them as a group::

        warnings.filterwarnings("ignore", category=TabResNetWarning)
    """


_PACKAGE = str(Path(__file__).resolve().parent) + os.sep


def user_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning point at the first caller outside tabresnet.

    A warning about the user's data (an unseen category at ``predict``) then
    names the line of the user's code that asked, however deep in tabresnet
    it was raised, and Python's once-per-line filter counts it there.

    >>> user_stacklevel() >= 1
    True
    """
    frame = inspect.currentframe()
    frame = frame.f_back if frame is not None else None  # the function that warns
    level = 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame = frame.f_back
        level += 1
    return level
