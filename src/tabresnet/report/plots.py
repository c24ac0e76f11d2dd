"""The report's pictures, each returned as PNG bytes.

Our own figures are ``matplotlib.figure.Figure`` objects drawn without pyplot,
so making a report never touches the caller's pyplot state (a notebook's
inline backend, open windows). Optuna's plots come from
:func:`tabresnet.tuning.results.plot_png`, the same that ``tune`` saves.

Run it by hand::

    >>> import pandas as pd
    >>> history = pd.DataFrame({"epoch": [0, 1, 2], "train_loss": [1.0, 0.5, 0.4],
    ...                         "val_loss": [1.1, 0.7, 0.6], "val_rmse": [2.0, 1.5, 1.4]})
    >>> png = learning_curves(history, target="price")
    >>> png[:8] == PNG_SIGNATURE
    True
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..metrics import regression_metrics

__all__ = [
    "PNG_SIGNATURE",
    "autograd_graph",
    "feature_importance",
    "figure_png",
    "intervals",
    "learning_curves",
    "member_groups",
    "png_size",
    "predictions",
]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# 110 dpi at 11 in wide: about 1200 px, shown at the page's ~1000 px width, so
# 10 pt text lands near 13 px on screen -- the size of the page's own text.
DPI = 110
_RC = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.labelsize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.fontsize": 9,
    "legend.framealpha": 0.85,
}
_LOSS_NAMES = {"mse": "MSE", "mae": "MAE", "huber": "Huber"}


def figure_png(fig: Any, dpi: int = DPI) -> bytes:
    """Render a matplotlib figure to PNG bytes (with the Agg renderer).

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> fig = Figure(figsize=(2, 1))
    >>> png_size(figure_png(fig, dpi=50))
    (100, 50)
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    return buf.getvalue()


def png_size(png: bytes) -> tuple[int, int]:
    """``(width, height)`` from a PNG's header; ``ValueError`` if it is not a PNG."""
    if len(png) < 24 or png[:8] != PNG_SIGNATURE or png[12:16] != b"IHDR":
        raise ValueError("not a PNG image")
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _loss_label(loss: str | None, standardised: bool) -> str:
    name = _LOSS_NAMES.get(str(loss).lower(), "training") if loss else "training"
    if standardised:
        return f"{name} loss (standardised target)"
    return f"{name} loss (target units" + ("²)" if name == "MSE" else ")")


def member_groups(history: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """``history.csv`` split by bag member: ``[("member 0", rows), ...]``.

    A single network's history (no ``member`` column, or one member) is
    ``[("", history)]``.

    >>> h = pd.DataFrame({"epoch": [0, 1, 0], "member": [0, 0, 1]})
    >>> [(name, len(rows)) for name, rows in member_groups(h)]
    [('member 0', 2), ('member 1', 1)]
    >>> [name for name, _ in member_groups(h.drop(columns="member"))]
    ['']
    """
    if "member" in history and history["member"].nunique() > 1:
        return [(f"member {m}", g) for m, g in history.groupby("member", sort=True)]
    return [("", history)]


def learning_curves(
    history: pd.DataFrame,
    target: str = "target",
    loss: str | None = None,
    standardised: bool = True,
) -> bytes:
    """Training and validation loss per epoch, and the validation RMSE.

    Parameters
    ----------
    history : DataFrame
        ``history.csv``: ``epoch``, ``train_loss``, ``val_loss`` and ``val_rmse``
        (any of the last three may be missing).
    target : str
        Target name, for the RMSE axis label.
    loss : str, optional
        The training loss (``"mse"``, ``"mae"``, ``"huber"``), for the label.
    standardised : bool
        Whether the loss was computed on the standardised target.

    Returns
    -------
    bytes
        A PNG: one panel for the losses, one for the RMSE when present.
    """
    import matplotlib

    losses = [c for c in ("train_loss", "val_loss") if c in history]
    has_rmse = "val_rmse" in history and history["val_rmse"].notna().any()
    if not losses and not has_rmse:
        raise ValueError("history.csv has none of train_loss, val_loss, val_rmse")
    # A bag's history has a ``member`` column: one curve per member.
    groups = member_groups(history)
    bag = len(groups) > 1
    marker = "o" if max(len(g) for _, g in groups) <= 30 else None
    colours = matplotlib.colormaps["tab10"].colors

    def epochs_of(frame: pd.DataFrame) -> np.ndarray:
        if "epoch" in frame:
            return pd.to_numeric(frame["epoch"], errors="coerce").to_numpy()
        return np.arange(len(frame), dtype=float)

    with matplotlib.rc_context(_RC):
        fig = _figure(11, 4.2)
        axes = fig.subplots(1, 2 if (losses and has_rmse) else 1, squeeze=False)[0]
        if losses:
            ax = axes[0]
            labels = {"train_loss": "training", "val_loss": "validation"}
            values = []
            for j, (name, frame) in enumerate(groups):
                epochs = epochs_of(frame)
                for k, col in enumerate(losses):
                    y = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float)
                    ok = np.isfinite(y)
                    style = {"color": colours[j % len(colours)], "ls": "-" if k == 0 else "--",
                             "lw": 1.2} if bag else {}
                    label = f"{name} {labels[col]}".strip()
                    ax.plot(epochs[ok], y[ok], marker=marker, ms=3, label=label, **style)
                    values.append(y[ok])
            allv = np.concatenate(values) if values else np.array([])
            # Losses fall by orders of magnitude early on; a log axis keeps the
            # later epochs, where the curves are compared, readable.
            if allv.size and allv.min() > 0 and allv.max() / allv.min() > 30:
                ax.set_yscale("log")
            ax.set_title("Loss per epoch")
            ax.set_xlabel("epoch")
            ax.set_ylabel(_loss_label(loss, standardised))
            ax.legend(loc="best", fontsize="small" if bag else None)
        if has_rmse:
            ax = axes[-1]
            for j, (name, frame) in enumerate(groups):
                epochs = epochs_of(frame)
                y = pd.to_numeric(frame["val_rmse"], errors="coerce").to_numpy(dtype=float)
                ok = np.isfinite(y)
                if not ok.any():
                    continue
                colour = colours[j % len(colours)] if bag else "tab:green"
                best = int(np.nanargmin(np.where(ok, y, np.nan)))
                ax.plot(epochs[ok], y[ok], marker=marker, ms=3, color=colour,
                        label=f"{name}: best {y[best]:.4g} at epoch {epochs[best]:g}" if bag
                        else "validation RMSE")
                if bag:
                    ax.plot([epochs[best]], [y[best]], marker="*", ms=10, color=colour)
                else:
                    ax.axvline(epochs[best], color="grey", ls="--", lw=1,
                               label=f"best: epoch {epochs[best]:g}, RMSE {y[best]:.4g}")
            ax.set_title("Validation RMSE per epoch" + (" (each member on its fold)" if bag else ""))
            ax.set_xlabel("epoch")
            ax.set_ylabel(f"RMSE ({target} units)")
            ax.legend(loc="best", fontsize="small" if bag else None)
        for ax in axes:
            ax.xaxis.get_major_locator().set_params(integer=True)
        return figure_png(fig)


def predictions(y_true: Sequence[float], y_pred: Sequence[float], target: str = "target",
                rows: str = "test rows", weighted: bool = False) -> bytes:
    """Predicted against actual, residuals against predicted, and the residual histogram.

    Parameters
    ----------
    y_true, y_pred : array-like
        Held-out values in target units (test rows, or a bag's out-of-fold rows).
    rows : str
        What the rows are, for the legend and the axis (``"out-of-fold rows"``).
    weighted : bool
        The run weighs its rows: the legend's scores, computed without the
        weights, say so (the run's own metrics are weighted).
    target : str
        Target name, for the axis labels.

    Returns
    -------
    bytes
        A PNG of three panels.

    Examples
    --------
    >>> png = predictions([1.0, 2.0, 3.0], [1.1, 1.9, 3.3], target="price")
    >>> png_size(png)[0] > png_size(png)[1]
    True
    """
    import matplotlib

    t = np.asarray(y_true, dtype=float)
    p = np.asarray(y_pred, dtype=float)
    ok = np.isfinite(t) & np.isfinite(p)
    t, p = t[ok], p[ok]
    if t.size == 0:
        raise ValueError(f"no finite predictions for {target!r}")
    r = t - p
    scores = regression_metrics(t, p)
    rmse, r2 = scores["rmse"], scores["r2"]
    # Many points overlap; make each fainter as their number grows.
    alpha = float(np.clip(30 / np.sqrt(t.size), 0.15, 0.8))
    with matplotlib.rc_context(_RC):
        fig = _figure(13, 4.2)
        ax1, ax2, ax3 = fig.subplots(1, 3)
        lo, hi = float(min(t.min(), p.min())), float(max(t.max(), p.max()))
        pad = 0.03 * (hi - lo or 1.0)
        ax1.scatter(t, p, s=12, alpha=alpha, edgecolors="none", rasterized=True,
                    label=f"{rows}: RMSE {rmse:.4g}, R² {r2:.3f}"
                          + (" (rows unweighted)" if weighted else ""))
        ax1.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="black", lw=1, ls="--",
                 label="perfect prediction")
        ax1.set_xlim(lo - pad, hi + pad)
        ax1.set_ylim(lo - pad, hi + pad)
        ax1.set_aspect("equal", adjustable="box")
        ax1.set_title("Predicted vs actual")
        ax1.set_xlabel(f"actual {target} ({target} units)")
        ax1.set_ylabel(f"predicted {target} ({target} units)")
        ax1.legend(loc="upper left")

        ax2.scatter(p, r, s=12, alpha=alpha, edgecolors="none", color="tab:orange",
                    rasterized=True)
        ax2.axhline(0.0, color="black", lw=1, ls="--")
        ax2.set_title("Residuals vs predicted")
        ax2.set_xlabel(f"predicted {target} ({target} units)")
        ax2.set_ylabel(f"actual − predicted ({target} units)")

        ax3.hist(r, bins=int(np.clip(np.sqrt(r.size), 5, 50)), color="tab:orange",
                 edgecolor="white")
        ax3.axvline(0.0, color="black", lw=1, ls="--")
        ax3.set_title("Residual distribution")
        ax3.set_xlabel(f"actual − predicted ({target} units)")
        ax3.set_ylabel(f"{rows} (of {r.size})")
        ax3.yaxis.get_major_locator().set_params(integer=True)
        return figure_png(fig)


def intervals(
    y_true: Sequence[float],
    y_pred: Sequence[float],
    lower: Sequence[float],
    upper: Sequence[float],
    target: str = "target",
    level: float = 0.9,
    max_rows: int = 150,
) -> bytes:
    """Prediction intervals against actual values, and interval width against the error.

    Left: up to ``max_rows`` test rows (evenly spaced in prediction order),
    each row's interval as a bar and its actual value as a dot, green inside
    and red outside. Right: every row's interval width against its absolute
    error; rows above the dashed line (error = half the width) fall outside.

    Examples
    --------
    >>> png = intervals([1.0, 2.0, 3.0], [1.1, 1.9, 3.3], [0.5, 1.5, 3.1], [1.7, 2.3, 3.5])
    >>> png_size(png)[0] > png_size(png)[1]
    True
    """
    import matplotlib

    t, p, lo, hi = (np.asarray(a, dtype=float) for a in (y_true, y_pred, lower, upper))
    ok = np.isfinite(t) & np.isfinite(p) & np.isfinite(lo) & np.isfinite(hi)
    t, p, lo, hi = t[ok], p[ok], lo[ok], hi[ok]
    if t.size == 0:
        raise ValueError(f"no finite intervals for {target!r}")
    inside = (t >= lo) & (t <= hi)
    order = np.argsort(p, kind="stable")
    shown = order[np.unique(np.linspace(0, t.size - 1, min(max_rows, t.size)).round().astype(int))]
    x = np.arange(shown.size)
    with matplotlib.rc_context(_RC):
        fig = _figure(13, 4.4)
        ax1, ax2 = fig.subplots(1, 2, width_ratios=[1.6, 1])
        ax1.vlines(x, lo[shown], hi[shown], color="tab:blue", alpha=0.45, lw=2.2,
                   label=f"{level:.0%} interval")
        ax1.plot(x, p[shown], "_", color="tab:blue", ms=6, label="prediction")
        for mask, color, name in ((inside[shown], "tab:green", "actual, inside"),
                                  (~inside[shown], "tab:red", "actual, outside")):
            if mask.any():
                ax1.scatter(x[mask], t[shown][mask], s=12, color=color, zorder=3, label=name)
        ax1.set_title(f"Intervals and actual values ({shown.size} of {t.size} test rows, "
                      f"{inside.mean():.1%} of all inside)")
        ax1.set_xlabel("test rows, by predicted value")
        ax1.set_ylabel(f"{target} ({target} units)")
        ax1.legend(loc="upper left")
        width, err = hi - lo, np.abs(t - p)
        alpha = float(np.clip(30 / np.sqrt(t.size), 0.15, 0.8))
        ax2.scatter(width, err, s=12, alpha=alpha, edgecolors="none",
                    c=np.where(inside, "tab:green", "tab:red"), rasterized=True)
        top = float(max(width.max(), 1e-12))
        ax2.plot([0, top], [0, top / 2], color="black", lw=1, ls="--",
                 label="error = half the width")
        ax2.set_title("Width against error")
        ax2.set_xlabel(f"interval width ({target} units)")
        ax2.set_ylabel(f"|actual − predicted| ({target} units)")
        ax2.legend(loc="upper left")
        return figure_png(fig)


def autograd_graph(network: Any, n_num: int, n_cat: int) -> bytes:
    """The autograd graph of one forward pass on a 2-row sample (:func:`tabresnet.show.render_graph`).

    Parameters
    ----------
    network : nn.Module
        Takes ``forward(x_num, x_cat)``.
    n_num, n_cat : int
        Widths of the float and the integer-code inputs.
    """
    import torch

    from ..show import render_graph

    x_num = torch.randn(2, n_num, generator=torch.Generator().manual_seed(0))
    x_cat = torch.zeros(2, n_cat, dtype=torch.long)  # code 0 exists in every column
    return render_graph(network, [x_num, x_cat])


def feature_importance(
    features: Sequence[str],
    importance: Sequence[float],
    std: Sequence[float],
    xlabel: str = "score drop when the column is shuffled",
) -> bytes:
    """Horizontal bars of permutation importance, most important on top, ±1 std as error bars.

    >>> png = feature_importance(["a", "b"], [0.8, 0.01], [0.05, 0.02])
    >>> png[:8] == PNG_SIGNATURE
    True
    """
    import matplotlib

    names = [str(f) for f in features][::-1]  # barh draws bottom-up
    values = np.asarray(importance, dtype=float)[::-1]
    errors = np.nan_to_num(np.asarray(std, dtype=float)[::-1])
    with matplotlib.rc_context(_RC):
        fig = _figure(8.0, 1.2 + 0.28 * max(len(names), 1))
        ax = fig.add_subplot()
        colors = ["#4c72b0" if v > 0 else "#b0b0b0" for v in values]
        ax.barh(np.arange(len(names)), values, xerr=errors, color=colors, capsize=3,
                error_kw={"elinewidth": 1, "ecolor": "#333333"})
        ax.set_yticks(np.arange(len(names)), names)
        ax.axvline(0.0, color="#333333", linewidth=0.8)
        ax.set_xlabel(xlabel)
        ax.grid(axis="y", visible=False)
        return figure_png(fig)
