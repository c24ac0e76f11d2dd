"""What a tuning run leaves in ``RUN/tuning/``: the trials table, the best parameters, plots.

    RUN/tuning/study.db                   the Optuna study (SQLite; unless --storage)
    RUN/tuning/trials.csv                 one row per trial: state, value, params, fail_reason
    RUN/tuning/best_params.json           study_name, value, params (flat options), ...
    RUN/tuning/optimization_history.png   \\
    RUN/tuning/param_importances.png       > Optuna's matplotlib plots, when there are
    RUN/tuning/parallel_coordinate.png    /  enough finished trials to draw them
"""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import TrialState

from ..artifact import atomic_write_bytes, atomic_write_text, dumps

__all__ = ["PLOTS", "fail_reason", "plot_png", "trials_frame", "write_plots", "write_trials"]

# Trial user attributes the trial table reads. Defined here, not with the objective,
# so that the report reads a study without importing the training stack (Lightning).
FAIL_REASON = "fail_reason"
WORKER = "worker"  # "host:pid" of the process running the trial

METRIC = "validation RMSE"
# File name -> (title, Optuna plot function name, fewest complete trials it needs).
PLOTS = {
    "optimization_history.png": ("Optimisation history", "plot_optimization_history", 1),
    "param_importances.png": ("Parameter importances", "plot_param_importances", 3),
    "parallel_coordinate.png": ("Parallel coordinates", "plot_parallel_coordinate", 2),
}
# More axes than this make a parallel-coordinate plot a tangle of overlapping labels.
PARALLEL_MAX_PARAMS = 6
# The report's figure style (10 pt text at 110 dpi), which Optuna's ggplot style overrides.
_RC = {"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 9}


def fail_reason(trial: optuna.trial.FrozenTrial, study_attrs: dict[str, Any]) -> str:
    """Why ``trial`` failed: its ``fail_reason``, or the one recorded on the study."""
    if trial.state != TrialState.FAIL:
        return ""
    reason = trial.user_attrs.get(FAIL_REASON) or study_attrs.get(f"{FAIL_REASON}:{trial.number}")
    return str(reason or "failed (no reason recorded)")


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: ``number, state, value, duration, params_*, epochs, stopped,
    fail_reason, worker``.

    ``stopped`` says why a PRUNED trial ended: ``"time limit"`` (the study's
    ``--timeout``, not the pruner), else empty.
    """
    trials = study.get_trials(deepcopy=False)
    attrs = study.user_attrs
    rows = []
    for t in trials:
        duration = (
            t.datetime_complete - t.datetime_start
            if t.datetime_complete is not None and t.datetime_start is not None
            else None
        )
        row: dict[str, Any] = {
            "number": t.number,
            "state": t.state.name,
            "value": t.value if t.value is not None else math.nan,
            "duration": duration,
        }
        for name, value in t.params.items():
            row[f"params_{name}"] = value
        row["epochs"] = t.user_attrs.get("epochs")
        row["stopped"] = t.user_attrs.get("stopped", "")
        row["fail_reason"] = fail_reason(t, attrs)
        row["worker"] = t.user_attrs.get(WORKER, "")
        rows.append(row)
    frame = pd.DataFrame(rows)
    if len(frame):
        params = sorted(c for c in frame.columns if c.startswith("params_"))
        first = ["number", "state", "value", "duration"]
        last = ["epochs", "stopped", "fail_reason", "worker"]
        frame = frame[first + params + last]
        for col in [*params, "epochs"]:
            values = frame[col].dropna()
            if len(values) and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
                frame[col] = frame[col].astype("Int64")  # no 2.0 where a trial lacks the param
    return frame


def write_trials(study: optuna.Study, path: Path) -> pd.DataFrame:
    frame = trials_frame(study)
    atomic_write_text(path, frame.to_csv(index=False))
    return frame


def plotted_params(study: optuna.Study) -> tuple[list[str], int]:
    """The parameters a parallel-coordinate plot shows (the most important first) and their total."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    names = sorted({p for t in complete for p in t.params})
    if len(names) > PARALLEL_MAX_PARAMS and len(complete) >= 3:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                names = list(optuna.importance.get_param_importances(study))
        except Exception:  # keep the names in order
            pass
    return names[:PARALLEL_MAX_PARAMS], len({p for t in complete for p in t.params})


def plot_png(study: optuna.Study, filename: str, target_name: str = METRIC) -> bytes:
    """One of :data:`PLOTS`, drawn by ``optuna.visualization.matplotlib``, as PNG bytes.

    Optuna's plots switch pyplot to the ggplot style globally and leave their
    figure open; here the style change is undone, the fonts match the
    report's, and the figure is closed. Their own failures (too few trials,
    one parameter) propagate.
    """
    # No matplotlib.use(): it would switch the caller's pyplot (a notebook's inline
    # backend) to ours; without a display matplotlib falls back to Agg by itself.
    import matplotlib
    import matplotlib.pyplot as plt
    import numpy as np
    import optuna.visualization.matplotlib as ovm
    from matplotlib.ticker import MaxNLocator

    name = PLOTS[filename][1]
    n_params = len({p for t in study.get_trials(deepcopy=False) for p in t.params})
    options: dict[str, Any] = {
        "plot_optimization_history": {},
        "plot_param_importances": {},
        "plot_parallel_coordinate": {"params": plotted_params(study)[0]},
    }[name]
    size = {"plot_optimization_history": (10, 4.2),
            "plot_param_importances": (10, 1.4 + 0.35 * max(3, n_params)),
            "plot_parallel_coordinate": (12, 5)}[name]
    with matplotlib.rc_context(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ExperimentalWarning on every call
        ax = getattr(ovm, name)(study, target_name=target_name, **options)
        plt.rcParams.update(_RC)
        fig = np.ravel(ax)[0].figure if isinstance(ax, np.ndarray) else ax.figure
        try:
            fig.set_size_inches(*size)
            xlabel = {"plot_optimization_history": "trial number",
                      "plot_param_importances": "importance (share of the objective's variance)",
                      }.get(name)
            if xlabel:
                fig.axes[0].set_xlabel(xlabel)
            for a in fig.axes:
                for loc in ("left", "center", "right"):
                    if a.get_title(loc):
                        # Padded: the parallel-coordinate plot puts category names at the top.
                        a.set_title(a.get_title(loc), loc=loc, fontsize=11, fontweight="bold",
                                    y=1.0, pad=14)
                a.xaxis.label.set_fontsize(10)
                a.yaxis.label.set_fontsize(10)
                a.tick_params(labelsize=9)
                if a.get_xlabel() == "trial number":  # trials are whole numbers
                    a.xaxis.set_major_locator(MaxNLocator(integer=True))
            fig.tight_layout()
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=110, facecolor="white")
            return buf.getvalue()
        finally:
            plt.close(fig)


def write_plots(study: optuna.Study, directory: Path) -> dict[str, str]:
    """Write :data:`PLOTS` as PNG; returns ``{file: reason}`` for those skipped.

    A plot skipped now removes its file from an earlier run, so the folder
    never shows a stale figure.
    """
    n_done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    skipped: dict[str, str] = {}
    for filename, (_, _, needed) in PLOTS.items():
        path = Path(directory) / filename
        try:
            if n_done < needed:
                raise ValueError(f"needs {needed} complete trial(s), the study has {n_done}")
            atomic_write_bytes(path, plot_png(study, filename))
        except Exception as exc:  # too few trials or distinct values, one parameter, ...
            skipped[filename] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            path.unlink(missing_ok=True)
    return skipped


def write_best(path: Path, info: dict[str, Any]) -> None:
    atomic_write_text(path, dumps(info))
