"""Conformal prediction intervals from conformity scores stored in the model file.

A model calibrated here answers ``predict(df, interval=0.9)`` with bounds that
hold 90% of new rows' true values on average over the calibration draw, as long
as the new rows and the calibration rows are exchangeable (drawn alike), whatever
the network: the guarantee comes from ranks, not from the model being right.

Three pieces of the conformal literature:

- **Split conformal** (Vovk, Gammerman & Shafer 2005; Lei, G'Sell, Rinaldo,
  Tibshirani & Wasserman, "Distribution-free predictive inference for
  regression", JASA 2018): the scores of ``n`` held-out rows; the bound at level
  ``1 - alpha`` is the ``ceil((n + 1)(1 - alpha))``-th smallest score (the
  finite-sample correction), infinite when that exceeds ``n``.
- **CV+** (Barber, Candès, Ramdas & Tibshirani, "Predictive inference with the
  jackknife+", Annals of Statistics 2021): for a K-fold bag, each training row's
  out-of-fold residual is paired with the member that did not see it; the bounds
  are order statistics of ``mu_k(i)(x) -/+ R_i`` over all rows ``i``. Coverage is
  at least ``1 - 2 alpha`` in theory and close to ``1 - alpha`` in practice.
- **Normalised scores** (Papadopoulos, Vovk & Gammerman 2008; Lei et al. 2018,
  section 5.2, "locally weighted"): ``|y - mu(x)| / (sigma(x) + beta)``, with
  ``sigma`` a difficulty estimate -- here the spread (standard deviation) of an
  ensemble's members -- so that rows the members agree on get narrow intervals
  and rows they disagree on wide ones, at the same guaranteed coverage.

The modes are ``"constant"`` (plain absolute residuals: one width for every row)
and ``"adaptive"`` (normalised). The scores are kept sorted, as plain numbers,
so any level can be asked at prediction time from one fit.

The default mode: ``adaptive`` where an ensemble's spread is there and it
helps, else ``constant``. "Helps" is decided on the calibration rows
themselves, by two-fold cross-fitting (the 90% quantile from one half, the
mean width on the other, and back): adaptive must come out at least 5%
narrower (:data:`ADAPTIVE_MARGIN`). The floor ``beta`` is chosen the same way
among :data:`BETA_FRACTIONS` of the median spread. Both choices look at the
calibration rows, a mild selection that the finite-sample guarantee does not
strictly cover; ``bench/intervals.py`` measures the coverage on test rows.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> y = rng.normal(size=(999, 1))
>>> cal = Calibration.fit_split(y, np.zeros_like(y), None, targets=["y"])
>>> lower, upper = cal.interval(np.zeros((3, 1)), None, level=0.9)
>>> float(upper[0, 0]) == float(np.sort(np.abs(y[:, 0]))[899])   # the 900th of 999
True
>>> cal2 = Calibration.from_dict(cal.to_dict())
>>> bool(np.array_equal(cal2.interval(np.zeros((3, 1)), None, 0.8)[1],
...                     cal.interval(np.zeros((3, 1)), None, 0.8)[1]))
True
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import ConfigError, ModelFileError, TabResNetWarning, user_stacklevel

__all__ = ["KINDS", "MODES", "REPORT_LEVEL", "Calibration", "check_level", "interval_scores"]

MODES = ("adaptive", "constant")
KINDS = ("split", "cv+")
# The level the run's metrics, predictions_test.csv and the report show.
REPORT_LEVEL = 0.9
# beta, the floor added to the spread, as fractions of the calibration rows'
# median spread: the one of these (or the constant mode) that gives the
# narrowest intervals on held-out halves of the calibration rows is kept (see
# Calibration.choose). A small beta trusts the spread fully; a large one
# blends towards a constant width.
BETA_FRACTIONS = (0.01, 0.03, 0.1, 0.3, 1.0)
# The adaptive mode becomes the default only when its cross-fitted intervals are
# at least 5% narrower than constant ones: on small calibration sets the two
# measured widths are noisy, and a spread that does not track the errors
# should not win by chance.
ADAPTIVE_MARGIN = 0.95
# Rows per block when CV+ builds its (rows x calibration rows) matrix.
_CHUNK_CELLS = 4_000_000


def check_level(level: Any) -> float:
    """``level`` as a float in (0, 1), or a one-line :class:`ConfigError`.

    >>> check_level(0.9)
    0.9
    >>> check_level(90)
    Traceback (most recent call last):
    ...
    tabresnet.errors.ConfigError: interval level must be a number between 0 and 1 (e.g. 0.9 for 90%), however: 90
    """
    try:
        value = float(level)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(level, bool) or not 0.0 < value < 1.0:
        raise ConfigError(
            "interval level must be a number between 0 and 1 (e.g. 0.9 for 90%), "
            f"however: {level!r}"
        )
    return value


def interval_scores(
    y: np.ndarray, lower: np.ndarray, upper: np.ndarray
) -> dict[str, Any]:
    """Empirical coverage and mean width of intervals against true values.

    Parameters
    ----------
    y, lower, upper : ndarray of shape (n, n_targets)

    Returns
    -------
    dict
        ``coverage`` (share of cells inside their bounds, both ends included),
        ``mean_width`` (a number for one target, a list of one per target for
        several), ``n`` (rows) and ``finite`` (False when some bound is
        infinite: too few calibration rows, and a coverage of 1 that says
        nothing); with several targets also ``coverage_per_target`` (one
        target's under-coverage would hide in the pooled share).

    >>> interval_scores(np.array([[1.0], [5.0]]), np.zeros((2, 1)), np.full((2, 1), 2.0))
    {'coverage': 0.5, 'mean_width': 2.0, 'n': 2, 'finite': True}
    """
    y, lower, upper = (np.asarray(a, dtype=np.float64).reshape(len(y), -1)
                       for a in (y, lower, upper))
    inside = (y >= lower) & (y <= upper)
    widths = (upper - lower).mean(axis=0)
    out: dict[str, Any] = {
        "coverage": float(inside.mean()) if inside.size else math.nan,
        "mean_width": float(widths[0]) if widths.size == 1 else [float(w) for w in widths],
        "n": int(len(y)),
        "finite": bool(np.isfinite(lower).all() and np.isfinite(upper).all()),
    }
    if y.shape[1] > 1:
        out["coverage_per_target"] = [float(c) for c in inside.mean(axis=0)]
    return out


# Rounding slack of the ranks: keeps 0.9 * 10 = 9.000000000000002 from rounding up.
_SLACK = 1e-9


def _rank(n: int, level: float) -> int:
    """The 1-based rank of the split-conformal quantile: ``ceil((n + 1) level)``."""
    return int(math.ceil((n + 1) * level - _SLACK))


@dataclass
class Calibration:
    """The conformity scores of a model's calibration rows.

    Parameters
    ----------
    kind : {"split", "cv+"}
        Held-out rows scored by the model itself, or a bag's out-of-fold rows
        each scored by the member that did not train on it.
    targets : list of str
    constant : ndarray of shape (n, n_targets)
        ``|y - mu|`` per row, sorted within each fold.
    adaptive : ndarray of shape (n, n_targets) or None
        ``|y - mu| / (sigma + beta)``, sorted within each fold; ``None`` where
        the model has no spread (a single network).
    beta : ndarray of shape (n_targets,) or None
        The floor added to the spread, in target units.
    fold_sizes : list of int
        Rows per fold (one entry for split conformal); the scores are stored
        fold after fold.
    default : {"adaptive", "constant"}
        The mode used when none is asked.
    """

    kind: str
    targets: list[str]
    constant: np.ndarray
    adaptive: np.ndarray | None
    beta: np.ndarray | None
    fold_sizes: list[int]
    default: str

    @property
    def n(self) -> int:
        """Calibration rows."""
        return int(self.constant.shape[0])

    @property
    def modes(self) -> list[str]:
        """The modes this calibration can give."""
        return ["adaptive", "constant"] if self.adaptive is not None else ["constant"]

    # -- fitting ------------------------------------------------------------------------
    @classmethod
    def fit_split(
        cls,
        y: np.ndarray,
        mu: np.ndarray,
        sigma: np.ndarray | None,
        targets: Sequence[str],
        mode: str | None = None,
    ) -> Calibration:
        """Split conformal from held-out rows (Lei et al. 2018).

        Parameters
        ----------
        y, mu : ndarray of shape (n, n_targets)
            True values and the model's predictions of the calibration rows,
            which the model must not have trained on.
        sigma : ndarray of shape (n, n_targets) or None
            The members' spread on those rows (an ensemble), or None.
        targets : list of str
        mode : {"adaptive", "constant"} or None
            The default mode; None chooses it (:meth:`choose`).
        """
        return cls.fit_folds([y], [mu], None if sigma is None else [sigma], targets,
                             kind="split", mode=mode)

    @classmethod
    def fit_folds(
        cls,
        ys: Sequence[np.ndarray],
        mus: Sequence[np.ndarray],
        sigmas: Sequence[np.ndarray] | None,
        targets: Sequence[str],
        kind: str = "cv+",
        mode: str | None = None,
    ) -> Calibration:
        """CV+ from a bag's folds (Barber et al. 2021), or split conformal from one fold.

        ``ys[k]``, ``mus[k]`` (and ``sigmas[k]``) are fold ``k``'s held-out rows,
        predicted by the member that did not train on them.
        """
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, however: {kind!r}")
        ys = [np.asarray(a, dtype=np.float64).reshape(len(a), -1) for a in ys]
        mus = [np.asarray(a, dtype=np.float64).reshape(len(a), -1) for a in mus]
        if not ys or sum(len(a) for a in ys) == 0:
            raise ConfigError("intervals need at least one calibration row")
        resid = [np.abs(y - m) for y, m in zip(ys, mus)]
        adaptive = beta = None
        if sigmas is not None:
            sig = [np.asarray(a, dtype=np.float64).reshape(len(a), -1) for a in sigmas]
            med = np.median(np.concatenate(sig), axis=0)
            if np.all(med > 0) and np.all(np.isfinite(med)):
                adaptive, beta = cls._best_beta(resid, sig, med, kind)
        cal = cls(
            kind=kind,
            targets=[str(t) for t in targets],
            constant=np.concatenate([np.sort(r, axis=0) for r in resid]),
            adaptive=adaptive,
            beta=beta,
            fold_sizes=[int(len(r)) for r in resid],
            default="constant",
        )
        if mode is not None:
            cal.default = cal.check_mode(mode)
        elif adaptive is not None:
            cal.default = cls._choose(resid, sig, beta)
        return cal

    @staticmethod
    def _half_widths(
        resid: list[np.ndarray], sig: list[np.ndarray], beta: np.ndarray | None
    ) -> float:
        """Mean 90% width on each half of the rows with the quantile from the other half.

        Two-fold cross-fitting on the calibration rows (every other row of
        each fold), so that a mode is chosen on widths it did not fit.
        """
        r = np.concatenate(resid)
        s = np.concatenate(sig)
        w = np.ones_like(r) if beta is None else s + beta
        score = r / w
        halves = (np.arange(len(r)) % 2 == 0, np.arange(len(r)) % 2 == 1)
        total = 0.0
        for fit_rows, use_rows in (halves, halves[::-1]):
            n = int(fit_rows.sum())
            k = _rank(n, REPORT_LEVEL)
            if k > n or not use_rows.any():
                return math.inf
            q = np.sort(score[fit_rows], axis=0)[k - 1]
            total += float((2 * q * w[use_rows]).mean())
        return total / 2

    @classmethod
    def _best_beta(
        cls, resid: list[np.ndarray], sig: list[np.ndarray], median: np.ndarray, kind: str
    ) -> tuple[np.ndarray, np.ndarray]:
        """The adaptive scores with the beta of :data:`BETA_FRACTIONS` that is narrowest."""
        best = min(BETA_FRACTIONS, key=lambda f: cls._half_widths(resid, sig, f * median))
        beta = best * median
        scores = [np.sort(r / (s + beta), axis=0) for r, s in zip(resid, sig)]
        return np.concatenate(scores), beta

    @classmethod
    def _choose(cls, resid: list[np.ndarray], sig: list[np.ndarray], beta: np.ndarray) -> str:
        """``"adaptive"`` if its cross-fitted 90% intervals are narrower on average (by
        :data:`ADAPTIVE_MARGIN`), else ``"constant"``."""
        adaptive = cls._half_widths(resid, sig, beta)
        constant = cls._half_widths(resid, sig, None)
        return "adaptive" if adaptive < ADAPTIVE_MARGIN * constant else "constant"

    def check_mode(self, mode: str | None) -> str:
        """``mode`` (None: the default) if this calibration has it; ConfigError otherwise."""
        if mode is None or mode == "auto":
            return self.default
        if mode not in MODES:
            raise ConfigError(
                f"interval mode must be one of auto, {', '.join(MODES)}, however: {mode!r}"
            )
        if mode not in self.modes:
            raise ConfigError(
                "adaptive intervals need an ensemble's spread and this model has a single "
                "network; ask for mode 'constant' or train with ensemble_size > 1"
            )
        return mode

    # -- prediction -----------------------------------------------------------------------
    def interval(
        self,
        mu: np.ndarray,
        sigma: np.ndarray | None,
        level: float,
        mode: str | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds around split-conformal predictions.

        Parameters
        ----------
        mu : ndarray of shape (N, n_targets)
            The model's predictions.
        sigma : ndarray of shape (N, n_targets) or None
            The members' spread (needed by the adaptive mode).
        level : float
            In (0, 1), e.g. 0.9.
        mode : {"adaptive", "constant"} or None

        Returns
        -------
        (lower, upper), each of shape (N, n_targets)
        """
        if self.kind != "split":
            raise ValueError("a CV+ calibration needs each member's predictions: use interval_cv")
        level = check_level(level)
        mode = self.check_mode(mode)
        scores, width = self._scores_and_width(mode, sigma, mu.shape)
        k = _rank(self.n, level)
        if k > self.n:
            self._warn_infinite(level)
            q = np.full(scores.shape[1], np.inf)
        else:
            q = scores[k - 1]  # stored sorted: the k-th smallest
        half = q * width
        return mu - half, mu + half

    def interval_cv(
        self,
        mus: np.ndarray,
        sigmas: np.ndarray | None,
        level: float,
        mode: str | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """CV+ bounds from each fold member's predictions (Barber et al. 2021).

        Parameters
        ----------
        mus : ndarray of shape (N, K, n_targets)
            Member ``k``'s predictions (the member that left fold ``k`` out).
        sigmas : ndarray of shape (N, K, n_targets) or None
            Each member's own spread (its in-network ensemble), for the
            adaptive mode.
        level : float
        mode : {"adaptive", "constant"} or None

        Returns
        -------
        (lower, upper), each of shape (N, n_targets)
        """
        if self.kind != "cv+":
            raise ValueError("a split calibration takes the model's prediction: use interval")
        level = check_level(level)
        mode = self.check_mode(mode)
        if mus.shape[1] != len(self.fold_sizes):
            raise ModelFileError(
                f"the calibration has {len(self.fold_sizes)} folds, the model "
                f"{mus.shape[1]} members; re-run fit"
            )
        n, alpha = self.n, 1.0 - level
        k_hi = _rank(n, level)  # ceil((1 - alpha)(n + 1))
        k_lo = int(math.floor(alpha * (n + 1) + _SLACK))
        if k_hi > n or k_lo < 1:
            self._warn_infinite(level)
        fold = np.repeat(np.arange(len(self.fold_sizes)), self.fold_sizes)
        scores = self.adaptive if mode == "adaptive" else self.constant
        n_rows, n_t = mus.shape[0], mus.shape[2]
        lower = np.empty((n_rows, n_t))
        upper = np.empty((n_rows, n_t))
        step = max(1, _CHUNK_CELLS // max(n, 1))
        for t in range(n_t):
            for a in range(0, n_rows, step):
                mu = mus[a : a + step, fold, t]  # (rows, n): the member of each score's fold
                w = 1.0
                if mode == "adaptive":
                    w = sigmas[a : a + step, fold, t] + self.beta[t]
                spread = scores[None, :, t] * w
                lo, hi = mu - spread, mu + spread
                lower[a : a + step, t] = (
                    np.partition(lo, k_lo - 1, axis=1)[:, k_lo - 1] if k_lo >= 1 else -np.inf
                )
                upper[a : a + step, t] = (
                    np.partition(hi, k_hi - 1, axis=1)[:, k_hi - 1] if k_hi <= n else np.inf
                )
        return lower, upper

    def _scores_and_width(
        self, mode: str, sigma: np.ndarray | None, shape: tuple[int, ...]
    ) -> tuple[np.ndarray, np.ndarray]:
        if mode == "adaptive":
            if sigma is None:
                raise ConfigError(
                    "adaptive intervals need the ensemble's spread; ask for mode 'constant'"
                )
            return self.adaptive, sigma + self.beta
        return self.constant, np.ones(shape)

    def _warn_infinite(self, level: float) -> None:
        # The fewest rows n with _rank(n, level) <= n (0.9 / 0.1 is 9.000000000000002
        # in floating point, and 9 rows do suffice).
        need = math.ceil(level / (1 - level) - _SLACK)
        warnings.warn(
            f"a {level:g} interval needs at least {need} calibration rows, the model has "
            f"{self.n}: its bounds are infinite; ask for a lower level or calibrate on more rows",
            TabResNetWarning,
            stacklevel=user_stacklevel(),
        )

    # -- the model file -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain numbers for ``model.json``: the sorted scores per target, fold after fold."""
        out: dict[str, Any] = {
            "method": "conformal",
            "kind": self.kind,
            "targets": list(self.targets),
            "default": self.default,
            "fold_sizes": list(self.fold_sizes),
            "scores": {"constant": self.constant.T.tolist()},
        }
        if self.adaptive is not None and self.beta is not None:
            out["scores"]["adaptive"] = self.adaptive.T.tolist()
            out["beta"] = self.beta.tolist()
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str = "model.json") -> Calibration:
        """Read :meth:`to_dict`'s output back; one-line :class:`ModelFileError` if malformed."""

        def bad(what: str) -> ModelFileError:
            return ModelFileError(
                f"{where} has a corrupted interval calibration ({what}); re-run fit"
            )

        if not isinstance(data, dict):
            raise bad("not an object")
        kind, default = data.get("kind"), data.get("default")
        targets, sizes = data.get("targets"), data.get("fold_sizes")
        scores = data.get("scores")
        if kind not in KINDS:
            raise bad(f"kind {str(kind)[:20]!r}")
        if default not in MODES:
            raise bad(f"default mode {str(default)[:20]!r}")
        if not isinstance(targets, list) or not targets or not all(
            isinstance(t, str) for t in targets
        ):
            raise bad("targets")
        if not isinstance(sizes, list) or not sizes or not all(
            isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes
        ):
            raise bad("fold_sizes")
        if not isinstance(scores, dict) or "constant" not in scores:
            raise bad("scores")

        def matrix(value: Any, name: str) -> np.ndarray:
            try:
                arr = np.asarray(value, dtype=np.float64)
            except (TypeError, ValueError):
                raise bad(f"{name} scores are not numbers") from None
            if arr.shape != (len(targets), sum(sizes)) or np.isnan(arr).any() or (arr < 0).any():
                raise bad(f"{name} scores: shape {arr.shape}, expected "
                          f"({len(targets)}, {sum(sizes)}) non-negative numbers")
            return arr.T.copy()

        constant = matrix(scores["constant"], "constant")
        adaptive = beta = None
        if "adaptive" in scores:
            adaptive = matrix(scores["adaptive"], "adaptive")
            try:
                beta = np.asarray(data.get("beta"), dtype=np.float64).reshape(-1)
            except (TypeError, ValueError):
                raise bad("beta") from None
            if beta.shape != (len(targets),) or not np.all(beta > 0):
                raise bad("beta")
        elif default == "adaptive":
            raise bad("default mode adaptive without adaptive scores")
        return cls(kind, list(targets), constant, adaptive, beta, list(sizes), default)
