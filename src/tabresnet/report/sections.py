"""The report's sections, one function each, from a :class:`~.rundir.RunDir` to HTML.

A function raises :class:`~.rundir.Unavailable` (or anything else) when it
cannot draw its section; :func:`~.html.section` turns that into a note.
"""

from __future__ import annotations

import math
import shlex
from typing import Any

import numpy as np
import pandas as pd

from ..metrics import SCORE_ROWS
from ..tuning.results import METRIC, PLOTS, plot_png, plotted_params
from . import plots
from .html import esc, fmt, image, not_available, table
from .rundir import RunDir, Unavailable, load_network

# (anchor, title) in page order; tuning only for tuning runs.
SECTIONS = [
    ("data", "Data"),
    ("model", "Model"),
    ("training", "Training"),
    ("predictions", "Held-out predictions"),
    ("intervals", "Prediction intervals"),
    ("metrics", "Metrics"),
    ("importance", "Feature importance"),
    ("tuning", "Hyperparameter tuning"),
    ("config", "Configuration"),
]
_SPLIT_ORDER = {"train": 0, "val": 1, "validation": 1, "oof": 1, "test": 2, "total": 9}
# Column headers of the metrics table where the key is terse.
_SPLIT_NAMES = {"oof": "out-of-fold"}


def _need(value: Any, name: str) -> Any:
    if value is None:
        raise Unavailable(f"{name} is missing from the run directory")
    return value


# -- header ------------------------------------------------------------------------
def key_numbers(run: RunDir) -> str:
    """Cards at the top of the page: test RMSE and R², rows, parameters, epochs."""
    cards: list[tuple[str, str]] = []
    metrics = run.quiet_json("metrics.json") or {}
    # The most honest score the run has: test rows, else out-of-fold, else validation.
    split, rows = next(((s, w) for s, w in (("test", "test"), ("oof", "out-of-fold"),
                                             ("val", "validation (optimistic)"))
                        if isinstance(metrics, dict) and isinstance(metrics.get(s), dict)),
                       (None, ""))
    test = metrics.get(split) if split else None
    if isinstance(test, dict):
        several = len(test.get("per_target") or {})
        mean = f" (mean over {several} targets)" if several else ""
        for key, label in (("rmse", "RMSE"), ("mae", "MAE"), ("r2", "R²")):
            if isinstance(test.get(key), (int, float)):
                cards.append((fmt(float(test[key])), f"{rows} {label}{mean}"))
    iv = metrics.get("intervals") if isinstance(metrics, dict) else None
    if isinstance(iv, dict) and isinstance(iv.get(f"test_{iv.get('mode')}"), dict):
        coverage = iv[f"test_{iv['mode']}"].get("coverage")
        if iv[f"test_{iv['mode']}"].get("finite") is False:  # coverage 100 % by infinity
            cards.append(("infinite", f"{float(iv.get('level', 0.9)):.0%} intervals (too few "
                          "calibration rows)"))
        elif isinstance(coverage, (int, float)):
            cards.append((f"{100 * coverage:.1f} %",
                          f"test coverage of {float(iv.get('level', 0.9)):.0%} intervals"))
    try:
        net = load_network(run).network
        cards.append((fmt(sum(p.numel() for p in net.parameters())), "parameters"))
    except Unavailable:
        pass
    rows = _rows(run.quiet_json("data_summary.json"))
    if "total" in rows:
        cards.append((fmt(rows["total"]), "rows"))
    try:
        history = run.csv("history.csv")
    except Unavailable:
        history = None
    if history is not None and len(history):
        label = "epochs trained"
        members = len(plots.member_groups(history))
        if members > 1:
            label += f" ({members} members)"
        cards.append((fmt(len(history)), label))
    if not cards:
        return ""
    inner = "".join(
        f'<div class="card"><div class="v">{esc(v)}</div><div class="k">{esc(k)}</div></div>'
        for v, k in cards
    )
    return f'<div class="cards">{inner}</div>'


# -- data --------------------------------------------------------------------------
def _rows(summary: Any) -> dict[str, int]:
    """Rows per split of ``data_summary.json``, plus ``total`` (all rows the counts cover)."""
    if not isinstance(summary, dict) or not isinstance(summary.get("rows"), dict):
        return {}
    rows = {str(k): int(v) for k, v in summary["rows"].items()}
    return {**rows, "total": int(summary.get("n_rows", sum(rows.values())))}


def data_section(run: RunDir) -> str:
    summary = _need(run.json("data_summary.json"), "data_summary.json")
    rows = _rows(summary)
    cols = [c for c in summary.get("columns") or [] if isinstance(c, dict)]
    if not rows and not cols:
        raise Unavailable("data_summary.json has neither rows per split nor columns")
    parts = []
    if rows:
        order = sorted(rows, key=lambda k: (_SPLIT_ORDER.get(k, 5), k))
        split_sum = sum(v for k, v in rows.items() if k != "total")
        body = [
            [k, rows[k], f"{100 * rows[k] / split_sum:.0f} %" if split_sum and k != "total" else ""]
            for k in order
        ]
        parts.append("<div><h3>Rows per split</h3>" + table(["split", "rows", "share"], body)
                     + "</div>")
    if cols:
        total = rows.get("total")
        body = []
        for c in cols:
            miss = c.get("missing")
            share = (
                f"{100 * miss / total:.1f} %"
                if isinstance(miss, (int, float)) and total
                else ""
            )
            body.append([c.get("name"), c.get("role"), c.get("dtype"), miss, share,
                         c.get("distinct")])
        roles: dict[str, int] = {}
        for c in cols:
            roles[c.get("role") or "?"] = roles.get(c.get("role") or "?", 0) + 1
        note = ", ".join(f"{n} {r}" for r, n in roles.items())
        parts.append(
            f"<div><h3>Columns ({len(cols)}: {esc(note)})</h3>"
            + table(["column", "role", "dtype", "missing", "missing share", "distinct values"],
                    body)
            + "</div>"
        )
    return '<div class="cols">' + "".join(parts) + "</div>"


# -- model -------------------------------------------------------------------------
def _param_rows(network: Any) -> list[list[Any]]:
    rows = []
    for name, child in network.named_children():
        subs = list(child.named_children()) if name == "backbone" else []
        for sub, mod in subs or [("", child)]:
            n = sum(p.numel() for p in mod.parameters())
            rows.append([f"{name}.{sub}" if sub else name, type(mod).__name__, n])
    return rows


def model_section(run: RunDir) -> str:
    cfg = run.config() or {}
    parts = []
    mcfg = cfg.get("model")
    if isinstance(mcfg, dict) and mcfg:
        parts.append(
            "<h3>Architecture</h3>"
            + table(["option", "value"], [[k, _show(v)] for k, v in mcfg.items()])
        )
    try:
        info = load_network(run)
    except Unavailable as exc:
        parts.append("<h3>Module tree</h3>" + not_available(f"the network: {exc}"))
        parts.append("<h3>Autograd graph</h3>" + not_available(f"the network: {exc}"))
        return "\n".join(parts)
    total = sum(p.numel() for p in info.network.parameters())
    net = info.single
    trainable = sum(p.numel() for p in info.network.parameters() if p.requires_grad)
    bag = ""
    metrics = run.quiet_json("metrics.json")
    tuning = metrics.get("tuning") if isinstance(metrics, dict) else None
    folds = tuning.get("cv_folds") if isinstance(tuning, dict) else None
    if info.members > 1 and getattr(info.network, "configs", None) is not None:
        how = (f"tune --pack --cv {folds}: each chosen trial's {folds} networks, one trained "
               "on each cross-validation fold" if isinstance(folds, int) and folds >= 2
               else "tune --pack")
        bag = (
            f" The model is a weighted ensemble of {info.members} networks chosen from a "
            f"packed tuning study ({how}), each with its own configuration; the table, "
            "tree and graph below show the first of them."
        )
    elif info.members > 1:
        bag = (
            f" The model averages {info.members} networks of the same shape, one trained on "
            "each cross-validation fold (a bag); the table, tree and graph below show the "
            "first of them."
        )
    parts.append(
        f"<h3>Parameters: {esc(fmt(total))}</h3>"
        f'<p class="sub">{esc(fmt(trainable))} trainable; inputs: {info.n_num} numeric '
        f"feature(s) after preprocessing, {info.n_cat} embedded categorical column(s)."
        f"{esc(bag)}</p>"
        + table(["module", "type", "parameters"], _param_rows(net))
    )
    parts.append(
        "<details open><summary>Module tree (print(network))</summary>"
        f"<pre>{esc(net)}</pre></details>"
    )
    try:
        png = plots.autograd_graph(net, info.n_num, info.n_cat)
        graph = (
            '<div class="scroll">'
            + image(png, "autograd graph of one forward pass",
                    cls="graph")
            + "</div>"
            + '<p class="sub">One forward pass on a 2-row sample, drawn by torchviz and '
            "Graphviz: blue boxes are parameters (with their shapes), grey boxes the "
            "backward operations, green the output. Scroll to see all of it.</p>"
        )
    except Exception as exc:
        graph = not_available(f"{type(exc).__name__}: {exc}".splitlines()[0])
    parts.append("<h3>Autograd graph</h3>" + graph)
    return "\n".join(parts)


def _show(value: Any) -> str:
    if value is None:
        return "default"
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return fmt(value) if not isinstance(value, str) else value


# -- training ----------------------------------------------------------------------
def training_section(run: RunDir) -> str:
    history = _need(run.csv("history.csv"), "history.csv")
    if not len(history):
        raise Unavailable("history.csv has no epochs")
    cfg = run.config() or {}
    train = cfg.get("train") if isinstance(cfg.get("train"), dict) else {}
    data = cfg.get("data") if isinstance(cfg.get("data"), dict) else {}
    targets = run.targets()
    target = targets[0] if len(targets) == 1 else "target"
    standardised = data.get("target_transform", "standard") != "none"
    png = plots.learning_curves(history, target=target, loss=train.get("loss"),
                                standardised=standardised)
    text = f"{len(history)} epoch(s)"
    groups = plots.member_groups(history)
    if len(groups) > 1:
        text = f"{len(history)} epoch(s) over {len(groups)} bag members (one per fold)"
        if "val_rmse" in history and history["val_rmse"].notna().any():
            bests = ", ".join(fmt(float(g["val_rmse"].min())) for _, g in groups)
            text += f"; best validation RMSE of each member on its own fold: {bests}"
    elif "val_rmse" in history and history["val_rmse"].notna().any():
        best = history["val_rmse"].idxmin()
        epoch = history["epoch"][best] if "epoch" in history else best
        text += f"; best validation RMSE {fmt(float(history['val_rmse'][best]))} at epoch {epoch}"
    refit = _refit_entry(run)
    if refit is not None:
        text += (f". The saved model is a refit: the same network trained again from scratch "
                 f"on all {refit.get('rows')} training and validation rows for "
                 f"{refit.get('epochs')} epochs, with no validation (the curves are the "
                 f"early-stopped run's)")
    return image(png, "learning curves: loss and validation RMSE per epoch", caption=text + ".")


def _refit_entry(run: RunDir) -> dict | None:
    """The ``training.refit`` entry of the run's metrics, if the model was refit."""
    metrics = run.quiet_json("metrics.json")
    training = metrics.get("training") if isinstance(metrics, dict) else None
    refit = training.get("refit") if isinstance(training, dict) else None
    return refit if isinstance(refit, dict) else None


# -- predictions -------------------------------------------------------------------
def _kept_no_test_rows(run: RunDir) -> bool:
    """The run's metrics are readable and have no test split."""
    metrics = run.quiet_json("metrics.json")
    return isinstance(metrics, dict) and "test" not in metrics



def predictions_section(run: RunDir) -> str:
    name, rows, short = "predictions_test.csv", "test rows", "test rows"
    df = run.csv(name)
    if df is None and _kept_no_test_rows(run):
        oof = run.csv("predictions_oof.csv")
        if oof is not None:  # a bag without test rows: its honest predictions
            name, rows, df = "predictions_oof.csv", "out-of-fold rows (each by the member " \
                "that did not train on it)", oof
            short = "out-of-fold rows"
        else:  # fit keeps no test rows unless asked: say so, not "missing".
            raise Unavailable("this run kept no test rows (fit --test-size 0.2 or --test-data "
                              "FILE holds some out, and their predictions are drawn here)")
    df = _need(df, name)
    pairs = run.prediction_pairs(name)
    if not pairs:
        raise Unavailable(
            f"{name} has no y_true/y_pred (or y_true_<target>/y_pred_<target>) "
            f"columns; it has: {', '.join(map(str, df.columns))}"
        )
    targets = run.targets()
    metrics = run.quiet_json("metrics.json")
    weighted = isinstance(metrics, dict) and any(
        isinstance(m, dict) and "weighted_by" in m for m in metrics.values())
    parts = []
    for name, true_col, pred_col in pairs:
        target = name or (targets[0] if len(targets) == 1 else "target")
        png = plots.predictions(df[true_col], df[pred_col], target=target, rows=short,
                                weighted=weighted)
        head = f"<h3>{esc(target)}</h3>" if len(pairs) > 1 else ""
        parts.append(
            head
            + image(
                png,
                f"predicted vs actual and residuals for {target}",
                caption=f"{len(df)} {rows}; residual = actual − predicted. "
                "Points on the dashed line are predicted exactly.",
            )
        )
    return "\n".join(parts)


# -- intervals ---------------------------------------------------------------------
def intervals_section(run: RunDir) -> str:
    """Conformal intervals: how they were calibrated, coverage and width on test rows, a picture.

    Reads the ``intervals`` entry of ``metrics.json`` and the bounds in
    ``predictions_test.csv``; either one is enough, so a missing file leaves
    its own section marked, not this one.
    """
    metrics = run.quiet_json("metrics.json") or {}
    iv = metrics.get("intervals") if isinstance(metrics, dict) else None
    iv = iv if isinstance(iv, dict) else {}
    try:
        df = run.csv("predictions_test.csv")
    except Unavailable:
        df = None
    targets = run.targets()
    bounds = []  # (target, true, pred, lower, upper) columns
    for name, true_col, pred_col in run.prediction_pairs() if df is not None else []:
        suffix = pred_col[len("y_pred"):]
        lo, hi = f"y_lower{suffix}", f"y_upper{suffix}"
        if lo in df and hi in df:
            target = name or (targets[0] if len(targets) == 1 else "target")
            bounds.append((target, true_col, pred_col, lo, hi))
    if not iv and not bounds:
        if not isinstance(run.quiet_json("metrics.json"), dict):
            raise Unavailable("metrics.json is missing or unreadable, and predictions_test.csv "
                              "holds no interval bounds")
        raise Unavailable("this run has no interval calibration (a model of a "
                          "tabresnet before intervals; model.calibrate(rows) adds one)")
    level = float(iv.get("level", 0.9))
    how = (f"calibrated by {esc(iv.get('calibration', '?'))} "
           f"({esc(fmt(iv.get('calibration_rows', '?')))} rows); default mode "
           f"<b>{esc(iv.get('mode', '?'))}</b>. " if iv else "")
    parts = [
        f'<p class="sub">Conformal intervals: {how}At level {level:g}, at least {level:.0%} '
        "of new rows drawn like the calibration rows should fall inside, on average. "
        "<i>constant</i>: one width for every row; <i>adaptive</i>: width proportional to the "
        "spread of the ensemble's members (plus a floor), narrower where they agree. "
        "<code>tabresnet predict MODEL DATA --interval 0.9</code> adds the bounds.</p>"
    ]
    rows = []
    for mode in ("adaptive", "constant"):
        t = iv.get(f"test_{mode}")
        if isinstance(t, dict):
            width = t.get("mean_width")
            width = ", ".join(fmt(w) for w in width) if isinstance(width, list) else fmt(width)
            coverage = f"{100 * float(t['coverage']):.1f} %"
            if t.get("finite") is False:
                coverage += " (infinite bounds: too few calibration rows)"
            elif t.get("coverage_per_target"):
                coverage += " (" + ", ".join(f"{100 * c:.1f} %"
                                             for c in t["coverage_per_target"]) + " per target)"
            rows.append([mode + (" (default)" if mode == iv.get("mode") else ""),
                         coverage, width, t.get("n", "")])
    if not rows and bounds:  # metrics.json without the entry: count from the CSV
        for target, true_col, _, lo, hi in bounds:
            inside = ((df[true_col] >= df[lo]) & (df[true_col] <= df[hi])).mean()
            rows.append([f"default ({target})", f"{100 * float(inside):.1f} %",
                         fmt(float((df[hi] - df[lo]).mean())), len(df)])
    if not rows:
        return parts[0] + not_available(
            "no test rows to measure coverage on (fit --test-size 0.2 or --test-data FILE)")
    parts.append(table(["mode", f"test coverage (nominal {level:.0%})", "mean width",
                        "test rows"], rows))
    for target, true_col, pred_col, lo, hi in bounds:
        if not np.isfinite(df[[lo, hi]].to_numpy(dtype=float)).any():
            parts.append(not_available(f"{target}: every bound is infinite (too few calibration "
                                       "rows for this level), so there is nothing to draw"))
            continue
        png = plots.intervals(df[true_col], df[pred_col], df[lo], df[hi], target=target,
                              level=level)
        parts.append(image(png, f"{level:.0%} prediction intervals against actual {target}",
                           caption=f"{target}: the default mode's {level:.0%} intervals on the "
                           "test rows (predictions_test.csv)."))
    if not bounds:
        parts.append('<p class="sub">No picture: predictions_test.csv holds no interval '
                     "bounds.</p>")
    return "\n".join(parts)


# -- metrics -----------------------------------------------------------------------
_METRIC_NAMES = {"rmse": "RMSE", "mae": "MAE", "r2": "R²", "mape": "MAPE", "n": "rows",
                 "weighted_by": "weighted by"}


def _metric_meaning(key: str, target: str) -> str:
    return {
        "rmse": f"{target} units; lower is better",
        "mae": f"{target} units; lower is better",
        "r2": "1 is perfect, 0 predicts the mean",
        "mape": "fraction of |actual| (0.1 = 10 %)",
        "n": "rows scored",
        "weighted_by": "the column of row weights (the metrics above are weighted means)",
        "below": "share of actual values below this quantile level (ideally the level)",
        "pinball": "pinball loss of this quantile level; lower is better",
    }.get(key, "")


def _flatten(d: Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    out: dict[tuple[str, ...], Any] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(_flatten(v, (*prefix, str(k))))
    else:
        out[prefix] = d
    return out


def metrics_section(run: RunDir) -> str:
    metrics = _need(run.json("metrics.json"), "metrics.json")
    if not isinstance(metrics, dict) or not metrics:
        raise Unavailable("metrics.json is empty")
    targets = run.targets()
    # Splits hold the regression metrics; other mappings (training, cv) get a table each.
    splits = [s for s, v in metrics.items() if isinstance(v, dict) and "rmse" in v]
    splits.sort(key=lambda s: (_SPLIT_ORDER.get(s, 5), s))
    parts = []
    if splits:
        flat = {s: _flatten(metrics[s]) for s in splits}
        keys: list[tuple[str, ...]] = []
        for s in splits:
            keys += [k for k in flat[s] if k not in keys]
        rows = []
        for key in keys:
            name = _METRIC_NAMES.get(key[-1], key[-1])
            target = targets[0] if len(targets) == 1 else "target"
            if len(key) >= 3 and key[0] == "per_target":
                name, target = f"{key[1]}: {name}", key[1]
            elif len(key) > 1:
                name = " / ".join((*key[:-1], name))
            rows.append([name, *(flat[s].get(key, "") for s in splits),
                         _metric_meaning(key[-1], target)])
        parts.append(table(["metric", *(_SPLIT_NAMES.get(s, s) for s in splits), "meaning"], rows))
        where = [f"<b>{esc(_SPLIT_NAMES.get(s, s))}</b>: {esc(SCORE_ROWS[s])}"
                 for s in splits if s in SCORE_ROWS]
        if where:
            parts.append(f"<p class='caption'>{'; '.join(where)}.</p>")
    others = [s for s in metrics if s not in splits]
    for name in others:
        value = metrics[name]
        if isinstance(value, dict):
            rows = [[" / ".join(k), _show(v)] for k, v in _flatten(value).items()]
        else:
            rows = [[name, _show(value)]]
        parts.append(f"<h3>{esc(name.capitalize())}</h3>" + table(["", "value"], rows))
    return "\n".join(parts)


# -- feature importance ------------------------------------------------------------
# At most this many columns in the chart; the table lists every one.
_IMPORTANCE_BARS = 30
_SCORED_ON = {"test": "test rows", "val": "validation rows (they chose the epoch)",
              "oof": "out-of-fold rows (each bag member on the fold it did not train on)"}


def importance_section(run: RunDir) -> str:
    """Permutation importance from ``importance.json`` (written by fit): a bar chart and a table."""
    record = run.json("importance.json")
    if record is None:
        raise Unavailable(
            "importance.json is missing (a refit model without test rows has none: each of "
            "its rows trained it); tabresnet importance RUN DATA computes it on any rows"
        )
    feats = [f for f in record.get("features") or [] if isinstance(f, dict)]
    if not feats:
        raise Unavailable("importance.json lists no features")
    scoring = str(record.get("scoring", "rmse"))
    targets = run.targets() or ["target"]
    units = (f"{targets[0]} units" if len(targets) == 1 else
             f"mean over {len(targets)} targets, each in its own units")
    drop = {"rmse": f"RMSE increase ({units})", "mae": f"MAE increase ({units})",
            "r2": "R² decrease"}.get(scoring, f"{scoring} drop")
    shown = feats[:_IMPORTANCE_BARS]
    png = plots.feature_importance(
        [f.get("feature") for f in shown],
        [f.get("importance") if f.get("importance") is not None else math.nan for f in shown],
        [f.get("std") if f.get("std") is not None else 0.0 for f in shown],
        xlabel=f"{drop} when the column is shuffled",
    )
    rows_text = _SCORED_ON.get(str(record.get("scored_on")), str(record.get("scored_on")))
    caption = (
        f"Permutation importance (Breiman 2001; Fisher et al. 2019) on {record.get('n')} "
        f"{rows_text}, {record.get('repeats')} shuffles per column; bars are the mean "
        f"{drop}, whiskers ±1 standard deviation over the shuffles. Baseline {scoring}: "
        f"{fmt(record.get('baseline'))}. A one-hot or embedded column counts as its source "
        "column; correlated columns share their importance."
    )
    if len(feats) > len(shown):
        caption += f" The {len(shown)} most important of {len(feats)} columns are drawn."
    body = [[f.get("feature"), f.get("role"), f.get("importance"), f.get("std")] for f in feats]
    return (
        image(png, "permutation feature importance", caption=caption)
        + "<details><summary>every column</summary>"
        + table(["column", "role", f"importance ({drop})", "std"], body)
        + "</details>"
    )


# -- tuning ------------------------------------------------------------------------
def is_tuning_run(run: RunDir) -> bool:
    return run.file("tuning") is not None


def _best_params(run: RunDir) -> dict[str, Any]:
    best = run.json("tuning/best_params.json")
    return best if isinstance(best, dict) else {}


def _load_study(run: RunDir) -> Any:
    """The study in ``tuning/study.db``: the one ``best_params.json`` names, or its only one."""
    db = run.file("tuning/study.db")
    if db is None:
        raise Unavailable("tuning/study.db is missing")
    import warnings

    import optuna

    from ..tuning import quiet_optuna

    storage = f"sqlite:///{db.resolve()}"
    name = (run.quiet_json("tuning/best_params.json") or {}).get("study_name")
    try:
        with quiet_optuna(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if not name:
                names = optuna.study.get_all_study_names(storage)
                if len(names) != 1:
                    raise Unavailable(f"tuning/study.db holds {len(names)} studies and "
                                      "tuning/best_params.json names none (study_name)")
                name = names[0]
            return optuna.load_study(study_name=str(name), storage=storage)
    except Unavailable:
        raise
    except Exception as exc:
        reason = f"cannot load study {name!r} from tuning/study.db ({exc})".splitlines()[0]
        raise Unavailable(reason) from None


def tuning_section(run: RunDir) -> str:
    parts = []
    try:
        best = _best_params(run)
    except Unavailable as exc:
        best = {}
        parts.append(not_available(str(exc)))
    objective = str(best.get("metric") or METRIC)
    targets = run.targets()
    unit = f" ({targets[0]} units)" if len(targets) == 1 and "rmse" in objective.lower() else ""
    params = best.get("params") if isinstance(best.get("params"), dict) else {}
    skip = {"params", "value", "optuna_params", "plots_skipped"}
    about = {k: v for k, v in best.items() if k not in skip}
    if params:
        head = "Best configuration"
        if isinstance(best.get("value"), (int, float)):
            head += f": {objective} {fmt(best['value'])}{unit}"
        parts.append(f"<h3>{esc(head)}</h3>"
                     + table(["parameter", "value"], [[k, _show(v)] for k, v in params.items()]))
        if about:
            parts.append(table(["about the study", ""], [[k, _show(v)] for k, v in about.items()]))
    elif not parts:
        parts.append("<h3>Best configuration</h3>"
                     + not_available("tuning/best_params.json is missing"))
    try:
        study = _load_study(run)
    except Unavailable as exc:
        study = None
        parts.append(_saved_plots(run, str(exc)))
    if study is not None:
        parts.append(_optuna_plots(study, objective + unit))
    parts.append(_best_trials(run, objective, study))
    return "\n".join(parts)


def _optuna_plots(study: Any, target_name: str) -> str:
    n_done = len([t for t in study.trials if t.state.name == "COMPLETE"])
    parts = [
        f'<p class="sub">Study {esc(study.study_name)}: {len(study.trials)} trial(s), '
        f"{n_done} complete, direction {esc(study.direction.name.lower())}.</p>"
    ]
    shown, n_params = plotted_params(study)
    for filename, (title, _, needs) in PLOTS.items():
        if filename == "parallel_coordinate.png" and len(shown) < n_params:
            title += f" (the {len(shown)} most important of {n_params} parameters)"
        head = f"<h3>{esc(title)}</h3>"
        if n_done < needs:
            reason = f"needs at least {needs} complete trials; the study has {n_done}"
            parts.append(head + not_available(reason))
            continue
        try:
            parts.append(head + image(plot_png(study, filename, target_name), title))
        except Exception as exc:
            parts.append(head + not_available(f"{type(exc).__name__}: {exc}".splitlines()[0]))
    return "\n".join(parts)


def _saved_plots(run: RunDir, why: str) -> str:
    """The PNGs that ``tune`` saved beside the study, for when the study cannot be opened."""
    parts = [f"<h3>Optimisation plots</h3>{not_available(why)}"]
    for filename, (title, _, _) in PLOTS.items():
        path = run.file(f"tuning/{filename}")
        png = path.read_bytes() if path is not None else b""
        if png[:8] != plots.PNG_SIGNATURE:
            continue
        parts.append(f"<h3>{esc(title)}</h3>"
                     + image(png, title, caption=f"tuning/{filename}, as saved by tune."))
    if len(parts) > 1:
        parts[0] = (f'<p class="sub">The study itself cannot be opened ({esc(why)}); '
                    "these are the plots saved when tuning ended.</p>")
    return "\n".join(parts)


def _best_trials(run: RunDir, objective: str, study: Any) -> str:
    try:
        trials = run.csv("tuning/trials.csv")
    except Unavailable as exc:
        return "<h3>Best trials</h3>" + not_available(str(exc))
    if trials is None or not len(trials) or "value" not in trials:
        return ""
    df = trials
    if "state" in df:
        df = df[df["state"].astype(str).str.upper().str.contains("COMPLETE")]
    ascending = study is None or study.direction.name.lower() == "minimize"
    df = df.sort_values("value", ascending=ascending).head(10)
    keep = [c for c in df.columns if c in ("number", "value") or str(c).startswith("params_")]
    for extra in ("epochs", "duration"):
        if extra in df:
            keep.append(extra)
    if "duration" in df:
        seconds = pd.to_timedelta(df["duration"], errors="coerce").dt.total_seconds()
        df = df.assign(duration=seconds.round(2))
    names = {"number": "trial", "duration": "duration (s)", "value": objective}
    header = [names.get(c, str(c).removeprefix("params_")) for c in keep]
    rows = [[_cell(v) for v in r] for r in df[keep].itertuples(index=False)]
    return (
        f"<h3>Best trials ({len(df)} of {len(trials)})</h3>"
        + '<div class="wide">' + table(header, rows) + "</div>"
    )


def _cell(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return ""
    return value


# -- configuration -----------------------------------------------------------------
def config_section(run: RunDir) -> str:
    text = run.text("config.yaml")
    if text is None:
        cfg = _need(run.config(), "config.yaml")
        import yaml

        text = yaml.safe_dump(cfg, sort_keys=False)
    run_dir = shlex.quote(str(run.path))
    use = "\n".join([
        f"tabresnet predict {run_dir} new.csv -o predictions.csv --interval 0.9"
        "   # with conformal bounds",
        f"tabresnet importance {run_dir} holdout.csv          # permutation importance",
        f"tabresnet export {run_dir} --onnx model.onnx        # runs without Python",
    ])
    return (
        "<details><summary>config.yaml (the resolved run configuration)</summary>"
        f"<pre>{esc(text)}</pre></details>"
        "<h3>Using this model</h3>"
        f"<pre>{esc(use)}</pre>"
        '<p class="sub">From Python: <code>tabresnet.load(path).predict(frame, interval=0.9)'
        "</code>; <code>ResNetRegressor</code> in scikit-learn pipelines.</p>"
    )


BUILDERS = {
    "data": data_section,
    "model": model_section,
    "training": training_section,
    "predictions": predictions_section,
    "intervals": intervals_section,
    "metrics": metrics_section,
    "importance": importance_section,
    "tuning": tuning_section,
    "config": config_section,
}
