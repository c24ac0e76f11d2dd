"""Errors a user can fix. Each message is one line: the problem and the way out.

The ``tabresnet`` command prints ``error: <message>`` for these and exits with
status 2, without a traceback.

>>> raise DataError("target column 'price' not found; columns are: a, b")
Traceback (most recent call last):
...
tabresnet.errors.DataError: target column 'price' not found; columns are: a, b
"""

from __future__ import annotations

__all__ = ["ConfigError", "DataError", "ModelFileError", "TabResNetError"]


class TabResNetError(Exception):
    """Base class of every error caused by input the user can change."""


class DataError(TabResNetError, ValueError):
    """The data, or the columns asked of it, cannot be used."""


class ConfigError(TabResNetError, ValueError):
    """A configuration value is invalid."""


class ModelFileError(TabResNetError):
    """A model file is missing, corrupted, truncated or of an unknown format."""
