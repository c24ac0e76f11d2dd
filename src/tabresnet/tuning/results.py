"""What a tuning run leaves in ``RUN/tuning/``: the trials table, the best parameters, plots.

    RUN/tuning/study.db                   the Optuna study (SQLite; unless --storage)
    RUN/tuning/trials.csv                 one row per trial: state, value, params, fail_reason
    RUN/tuning/best_params.json           study_name, value, params (flat options), ...
    RUN/tuning/optimization_history.png   \\
    RUN/tuning/param_importances.png       > Optuna's matplotlib plots, when there are
    RUN/tuning/parallel_coordinate.png    /  enough finished trials to draw them
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import TrialState

from ..artifact import atomic_write_bytes, atomic_write_text, dumps
from .objective import FAIL_REASON, WORKER

__all__ = ["PLOTS", "fail_reason", "trials_frame", "write_plots", "write_trials"]

METRIC = "validation RMSE"
# File name -> (Optuna plot function name, fewest complete trials it needs).
PLOTS = {
    "optimization_history.png": ("plot_optimization_history", 1),
    "param_importances.png": ("plot_param_importances", 2),
    "parallel_coordinate.png": ("plot_parallel_coordinate", 2),
}


def fail_reason(trial: optuna.trial.FrozenTrial, study_attrs: dict[str, Any]) -> str:
    """Why ``trial`` failed: its ``fail_reason``, or the one recorded on the study."""
    if trial.state != TrialState.FAIL:
        return ""
    reason = trial.user_attrs.get(FAIL_REASON) or study_attrs.get(f"{FAIL_REASON}:{trial.number}")
    return str(reason or "failed (no reason recorded)")


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: ``number, state, value, duration, params_*, epochs, fail_reason, worker``."""
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
        row["fail_reason"] = fail_reason(t, attrs)
        row["worker"] = t.user_attrs.get(WORKER, "")
        rows.append(row)
    frame = pd.DataFrame(rows)
    if len(frame):
        params = sorted(c for c in frame.columns if c.startswith("params_"))
        first = ["number", "state", "value", "duration"]
        last = ["epochs", "fail_reason", "worker"]
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


def write_plots(study: optuna.Study, directory: Path) -> dict[str, str]:
    """Write Optuna's plots as PNG; returns ``{file: reason}`` for those skipped.

    A plot skipped now removes its file from an earlier run, so the folder
    never shows a stale figure.
    """
    import io

    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as ovm

    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    skipped: dict[str, str] = {}
    for filename, (name, needed) in PLOTS.items():
        path = Path(directory) / filename
        if len(complete) < needed:
            skipped[filename] = f"needs {needed} complete trial(s), the study has {len(complete)}"
            path.unlink(missing_ok=True)
            continue
        # Optuna's plots switch pyplot to the ggplot style for good: keep it local.
        with matplotlib.rc_context(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ax = getattr(ovm, name)(study, target_name=METRIC)
                ax0 = ax.flat[0] if hasattr(ax, "flat") else ax
                fig = ax0.figure
                try:
                    fig.set_size_inches(10, 5.5 if name != "plot_parallel_coordinate" else 6)
                    fig.tight_layout()
                    buf = io.BytesIO()
                    fig.savefig(buf, format="png", dpi=110)
                finally:
                    plt.close(fig)
            except Exception as exc:  # too few distinct values, one parameter, ...
                skipped[filename] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                path.unlink(missing_ok=True)
                continue
        atomic_write_bytes(path, buf.getvalue())
    return skipped


def write_best(path: Path, info: dict[str, Any]) -> None:
    atomic_write_text(path, dumps(info))
