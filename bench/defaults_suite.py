"""The defaults benchmark of issue 11: the development suite x seeds x models, one command.

    python bench/defaults_suite.py                                  # everything (hours)
    python bench/defaults_suite.py --jobs 2                         # two fits at a time
    python bench/defaults_suite.py --datasets diabetes concrete --seeds 0 \\
        --models lgbm_es tabresnet_old --quick                      # smoke run, seconds
    python bench/defaults_suite.py --candidate wide='{"c_hidden": [256, 256]}'
    python bench/defaults_suite.py --from-json                      # tables from the file only

Every model is fitted on the same 64/16/20 train/validation/test rows of each
table of :data:`bench.suite.SUITE` for each seed (:func:`bench.datasets.split`),
one thread per fit; ``--jobs N`` runs N fits at a time in separate processes.
Each fit is appended to ``--out`` (JSON lines) as soon as it ends, and a rerun
skips every (dataset, seed, model) already there with a result, so an
interrupted run resumes; a failed fit is recorded with its one-line error (and
tried again on the next run) while the run goes on.

The models: the baselines of :mod:`bench.baselines` (``lgbm_es`` is the
yardstick: LightGBM at learning rate 0.05, up to 10,000 rounds, stopped after
100 without improvement on the validation rows), pytabkit's published
defaults (``realmlp_td``; ``tabm_d`` only when asked: minutes per fit) and the
tabresnet candidates of :data:`CANDIDATES`, each a dict of flat overrides for
``tabresnet.fit``. A candidate whose overrides hold ``bag`` (K-fold bagging)
makes its folds of the training rows and is scored on the validation rows it
never saw, like every other model, so that validation ranks all candidates on
the same rows.

The summary (also ``--from-json``, which fits nothing) writes
``<out>.md`` and, for a full run, the block between :data:`BEGIN` and
:data:`END` of ``docs/benchmarks.md`` and two plots in ``docs/img``: test RMSE
per dataset and model, its ratio to ``lgbm_es``, validation RMSE, seconds, the
seconds of each candidate relative to ``tabresnet_old``, and the protocol's
choice among the candidates, made on validation RMSE alone.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime as dt
import hashlib
import json
import math
import multiprocessing as mp
import os
import platform
import shlex
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench import baselines  # noqa: E402
from bench.baselines import Score, Settings, SplitData, Unavailable, rmse  # noqa: E402
from bench.datasets import split, subsample  # noqa: E402
from bench.suite import SUITE, load_table  # noqa: E402

RESULTS = ROOT / "bench" / "results"
DEFAULT_OUT = RESULTS / "defaults_suite.jsonl"
QUICK_OUT = RESULTS / "quick" / "defaults_suite.jsonl"
DOC = ROOT / "docs" / "benchmarks.md"
IMG = ROOT / "docs" / "img"
BEGIN, END = "<!-- defaults-suite:start -->", "<!-- defaults-suite:end -->"
YARDSTICK = "lgbm_es"
OLD = "tabresnet_old"
# Issue 11's time budget: a candidate's seconds per fit at most this many times
# tabresnet_old's, on every table, measured side by side.
BUDGET = 3.0

# -- the candidates ----------------------------------------------------------------------------
# Name -> flat overrides of tabresnet.fit. ``tabresnet_old`` writes out the
# defaults before issue 11 (src/tabresnet/defaults.py and models/config.py at
# commit 4a1a385), so it stays the same model when the package's defaults
# change; ``tabresnet_new`` is whatever the installed package's defaults are.
CANDIDATES: dict[str, dict[str, Any]] = {
    OLD: {
        # ModelConfig
        "arch": "resnet",
        "block": "PreActResNetBlock",
        "num_blocks": [2, 2],
        "c_hidden": [128, 128],
        "activation": "relu",
        "norm": None,
        "dropout": 0.1,
        "shortcut": "projection",
        "zero_init": False,
        "init": "zero_residual",
        "embedding_dim": 8,
        # Options added by issue 11, at their "off" values (what the old package did).
        "num_embedding": "none",
        "num_embedding_dim": 16,
        "n_bins": 48,
        "n_frequencies": 48,
        "frequency_scale": 0.1,
        "ensemble_size": 1,
        "ensemble": "batch",
        "ema_decay": 0.0,
        "refit": False,
        "bag": 0,
        # TrainConfig
        "max_epochs": 300,
        "batch_size": 256,
        "optimizer": "adamw",
        "lr": 1e-3,
        "weight_decay": 1e-4,
        "loss": "mse",
        "scheduler": "none",
        "gradient_clip": 0.0,
        "patience": 16,
        # DataConfig
        "numeric_transform": "quantile",
        "n_quantiles": 1000,
        "onehot_max_cardinality": 16,
        "target_transform": "standard",
    },
    "tabresnet_new": {},
}
# Options of the package at commit 4a1a385 that tabresnet_old leaves alone: column
# roles, split sizes (the harness gives the splits), the Trainer's plumbing and the
# options the harness sets itself. An option added since is not here: unless
# tabresnet_old spells out its old (off) value, its new default would leak into
# the "old" model; unpinned_old_options() names such options and the run warns.
# quantiles (issue 15), like huber_delta, is read only by its own loss; num_nodes
# (issue 12) is the Trainer's plumbing, as devices.
OLD_UNSET = frozenset({
    "categorical", "numeric", "ignore", "weight", "int_as_categorical", "val_size", "test_size",
    "cv_folds", "huber_delta", "quantiles", "accelerator", "devices", "strategy", "precision",
    "num_nodes", "num_threads", "logger", "progress", "deterministic", "seed",
})
# Set by the harness on every candidate, so not part of what defines one.
HARNESS_OPTIONS = frozenset({"seed", "num_threads", "progress", "logger"})
# Options added after records were written, at a default that trains exactly as
# before (issue 15: no row weights; issue 12: one machine). While a candidate
# inherits that value it is left out of the defaults' digest, so the older
# records stay the same experiment.
NEUTRAL_NEW_OPTIONS: dict[str, Any] = {"weight": None, "num_nodes": 1, "refit": False}


def package_defaults() -> dict[str, Any]:
    """The installed tabresnet's flat defaults (``{}`` if they cannot be read)."""
    try:
        from tabresnet.defaults import flat_defaults
    except ImportError:
        return {}
    return flat_defaults()


def unpinned_old_options(defaults: dict[str, Any] | None = None) -> list[str]:
    """Options of the installed package that ``tabresnet_old`` neither sets nor means to leave."""
    defaults = package_defaults() if defaults is None else defaults
    return sorted(set(defaults) - set(CANDIDATES[OLD]) - OLD_UNSET)


# -- the fits ------------------------------------------------------------------------------------
# The baselines' scorer: every model graded by the same rmse, timed the same way.
_score = baselines._score


def _pytabkit(cls_name: str):
    try:
        import pytabkit
    except ImportError as exc:
        raise Unavailable(f"pytabkit is not installed ({exc}); pip install pytabkit") from exc
    return getattr(pytabkit, cls_name)


def realmlp_td(data: SplitData, settings: Settings) -> Score:
    """pytabkit's ``RealMLP_TD_Regressor`` with its published (tuned-default) settings.

    Raw frames in (its own preprocessing: robust scaling and smooth clipping,
    one-hot or embeddings for categoricals, PBLD numeric embeddings); the
    validation rows are its ``X_val`` (it keeps the weights of the best
    validation epoch). ``--quick``: 4 epochs instead of 256.
    """
    cls = _pytabkit("RealMLP_TD_Regressor")
    start = time.perf_counter()
    model = cls(device="cpu", random_state=data.seed, n_threads=settings.threads,
                verbosity=0, **({"n_epochs": 4} if settings.quick else {}))
    model.fit(data.X_train, data.y_train, X_val=data.X_val, y_val=data.y_val)
    return _score(data, model.predict(data.X_val), model.predict(data.X_test), start)


def tabm_d(data: SplitData, settings: Settings) -> Score:
    """pytabkit's ``TabM_D_Regressor``: TabM's published default (k=32, width 512, batch 256).

    In pytabkit 1.8.0 its defaults use no numeric embeddings (``num_emb_type``
    ``"none"``).

    Validation rows as its ``X_val`` (early stopping). Minutes per fit on one
    core, hence not in the default model list. ``--quick``: 2 epochs.
    """
    cls = _pytabkit("TabM_D_Regressor")
    start = time.perf_counter()
    model = cls(device="cpu", random_state=data.seed, n_threads=settings.threads,
                verbosity=0, **({"n_epochs": 2} if settings.quick else {}))
    model.fit(data.X_train, data.y_train, X_val=data.X_val, y_val=data.y_val)
    return _score(data, model.predict(data.X_val), model.predict(data.X_test), start)


# Name -> (function, what it is). Order = the tables' order.
BASELINES: dict[str, tuple[Callable[[SplitData, Settings], Score], str]] = {
    "lgbm_es": (baselines.lightgbm_early_stopping,
                "LightGBM, learning rate 0.05, up to 10,000 rounds, early stopping 100 on val"),
    "lgbm_refit": (baselines.lightgbm_refit,
                   "lgbm_es, then refit on train + val rows for its rounds x (train + val) / train"),
    "lgbm_default": (baselines.lightgbm_default, "LightGBM defaults (100 rounds at 0.1)"),
    "hgb": (baselines.hist_gradient_boosting, "scikit-learn HistGradientBoostingRegressor()"),
    "rtdl_resnet": (baselines.rtdl_resnet,
                    "rtdl ResNet (2 x 192, dropout 0.15, AdamW 1e-3), early stopping 16"),
    "realmlp_td": (realmlp_td, "pytabkit RealMLP_TD_Regressor() defaults"),
    "tabm_d": (tabm_d, "pytabkit TabM_D_Regressor() defaults (opt-in: minutes per fit)"),
}
OPT_IN = {"tabm_d"}


def _is_bag(overrides: dict) -> bool:
    bag = overrides.get("bag")
    if bag is None or bag is False:
        return False
    if isinstance(bag, str):
        return bag.strip().lower() == "auto" or (bag.isdigit() and int(bag) > 1)
    return int(bag) > 1


def _is_refit(overrides: dict) -> bool:
    return str(overrides.get("refit", False)).strip().lower() in ("true", "1", "yes")


def _predict(model, X: pd.DataFrame) -> np.ndarray:
    pred = model.predict(X)
    if isinstance(pred, pd.DataFrame):
        pred = pred.iloc[:, 0]
    return np.asarray(pred, dtype=float).reshape(len(X), -1)[:, 0]


def tabresnet_candidate(data: SplitData, settings: Settings, overrides: dict) -> Score:
    """``tabresnet.fit`` with ``overrides`` on this split; the harness scores its predictions.

    Without ``bag``: trained on the training rows, early stopping on the
    validation rows (``val_data``); validation RMSE from its predictions there.
    With ``bag`` (K > 1 or "auto", in the overrides or as the package's default):
    ``data`` is the training rows alone, each fold early-stopped on its own
    held-out part of them, and the validation rows are held out altogether: the
    validation RMSE is the bag's on them, the same rows every model is chosen
    on (its out-of-fold score, over other rows, is kept as ``val_rmse_reported``).
    This is the bag without the 16% of rows it would train on in a user's run.
    With ``refit`` (and no bag): for the test RMSE, ``data`` is the training and
    validation rows together, as a user's file would hold them, and ``fit``
    splits off its own early-stopping rows (``val_size``) before refitting on
    all of them; for the validation RMSE, a second fit of the same recipe on the
    training rows alone is scored on the validation rows it never saw. The
    seconds are the first fit's. The harness's own override ``"protocol":
    "user"`` runs any candidate this way (the defaults without the refit, say).
    Either way ``test_data`` is passed only so that the run reports it; the test
    RMSE is computed here from ``run.model.predict``.
    ``--quick`` caps ``max_epochs`` at 5 and ``patience`` at 3.
    """
    import tabresnet

    kwargs: dict[str, Any] = {"report": False, "progress": "none", "logger": "none",
                              "seed": data.seed}
    kwargs.update(overrides)
    if settings.quick:
        kwargs["max_epochs"], kwargs["patience"] = 5, 3
    kwargs["num_threads"] = settings.threads  # one thread per fit, whatever the candidate says
    # tabresnet_old spells out options added since at their "off" values; fit
    # refuses a changed option its run ignores, so the inactive ones stay out.
    from tabresnet.defaults import RunConfig, flat_fields, unused_options

    flat = {k: v for k, v in kwargs.items() if k in flat_fields()}
    for name in unused_options(RunConfig.from_flat(flat), flat):
        del kwargs[name]
    # A bag (or a refit) by the candidate's overrides or, where it sets none, the package's default.
    bag = _is_bag(overrides if "bag" in overrides else package_defaults())
    refit = not bag and _is_refit(overrides if "refit" in overrides else package_defaults())
    # "protocol": "user" (the harness's, not fit's): the refit's protocol without the refit,
    # to compare the two on the same footing. A bag keeps its own protocol.
    protocol = kwargs.pop("protocol", None)
    user = not bag and (refit or protocol == "user")
    start = time.perf_counter()
    train, val, test = data.frame("train"), data.frame("val"), data.frame("test")
    if bag:
        run = tabresnet.fit(train, target=data.target, test_data=test, **kwargs)
    elif user:  # the user's file: the training and validation rows, split by fit itself
        given = pd.concat([train, val], ignore_index=True)
        run = tabresnet.fit(given, target=data.target, test_data=test, **kwargs)
    else:
        run = tabresnet.fit(train, target=data.target, val_data=val, test_data=test, **kwargs)
    test_pred = _predict(run.model, data.X_test)
    seconds = time.perf_counter() - start
    scored = run
    if user:  # the same recipe given the training rows alone, for a validation score
        scored = tabresnet.fit(train, target=data.target, **kwargs)
    metrics = getattr(run, "metrics", {}) or {}
    info: dict[str, Any] = {}
    training = metrics.get("training") or {}
    for key in ("epochs", "best_epoch", "diverged", "refit"):
        if key in training:
            info[key] = training[key]
    val_rmse = rmse(data.y_val, _predict(scored.model, data.X_val))
    reported = "oof" if bag else "val"
    if reported in metrics:
        info["val_rmse_reported"] = float(metrics[reported]["rmse"])
    info["val_source"] = "val"
    config = getattr(run, "config", None)
    if hasattr(config, "to_flat"):
        info["config"] = {k: v for k, v in config.to_flat().items()
                          if k not in HARNESS_OPTIONS}
    return Score(test_rmse=rmse(data.y_test, test_pred), val_rmse=val_rmse,
                 seconds=seconds, info=info)


# -- one process per worker ----------------------------------------------------------------------
_ENV: dict[str, Any] = {}


def _thread_env(threads: int) -> None:
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)


def init_worker(threads: int, preload: tuple[str, ...]) -> None:
    """Pin every thread pool to ``threads`` and import the heavy libraries once (untimed)."""
    import importlib
    import warnings

    _thread_env(threads)  # read by OpenMP/BLAS libraries loaded from here on
    # pytabkit's non-writable-array note and Lightning's deprecation chatter, once per fit.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"pytabkit\.")
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    for mod in preload:
        try:
            importlib.import_module(mod)
        except ImportError:
            pass
    from threadpoolctl import threadpool_limits

    # After the imports (it limits the pools loaded so far, numpy's included);
    # kept for the life of the process.
    _ENV["limits"] = threadpool_limits(limits=threads)
    if "torch" in sys.modules:
        import torch

        torch.set_num_threads(threads)
    _ENV["versions"] = _versions()


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for dist in ("torch", "lightning", "numpy", "scikit-learn", "lightgbm",
                 "rtdl-revisiting-models", "pytabkit", "tabresnet"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "missing"
    return out


def run_task(task: dict) -> dict:
    """Fit one model on one split; returns its record (never raises for a failed fit)."""
    rec = {k: task[k] for k in ("dataset", "seed", "model", "kind", "spec")}
    settings = Settings(**task["settings"])
    try:
        X, y = load_table(task["dataset"])
        if task.get("max_rows"):
            X, y = subsample(X, y, task["max_rows"])
        data = SplitData.from_indices(X, y, task["dataset"], task["seed"],
                                      *split(len(X), task["seed"]))
        rec.update(rows=len(X), n_train=len(data.y_train), n_val=len(data.y_val),
                   n_test=len(data.y_test))
        if "torch" in sys.modules:
            import torch

            torch.set_num_threads(settings.threads)
        if task["kind"] == "candidate":
            score = tabresnet_candidate(data, settings, task["overrides"])
        else:
            score = BASELINES[task["model"]][0](data, settings)
    except Unavailable as exc:
        rec.update(status="unavailable", error=_one_line(exc))
    except Exception as exc:  # one broken fit must not end the run
        rec.update(status="error", error=_one_line(exc),
                   traceback=traceback.format_exc(limit=-4)[-2000:])
    else:
        info = dict(score.info)
        config = info.pop("config", None)
        rec.update(status="ok", test_rmse=float(score.test_rmse), val_rmse=float(score.val_rmse),
                   seconds=float(score.seconds), info=_plain(info))
        if config is not None:
            rec["config"] = config  # what the candidate really ran with
        if not (np.isfinite(rec["test_rmse"]) and np.isfinite(rec["val_rmse"])):
            # the means would skip a NaN silently; a diverged fit is a failure
            rec.update(status="error", error="non-finite RMSE: the predictions hold NaN or inf")
    rec.update(date=dt.datetime.now().astimezone().isoformat(timespec="seconds"),
               commit=task.get("commit", ""), command=task.get("command", ""),
               quick=bool(settings.quick), max_rows=task.get("max_rows"),
               load_1min=round(os.getloadavg()[0], 2), pid=os.getpid(),
               versions=_ENV.get("versions", {}))
    if task["kind"] == "candidate":
        rec["overrides"] = task["overrides"]
    return rec


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def _plain(info: dict) -> dict:
    """``info`` as JSON can hold it: numpy scalars as numbers, dicts kept, the rest as text.

    >>> _plain({"n": np.int64(3), "refit": {"epochs": np.int64(2)}, "pair": (1, 2)})
    {'n': 3, 'refit': {'epochs': 2}, 'pair': '(1, 2)'}
    """
    out = {}
    for k, v in info.items():
        if isinstance(v, (np.integer, np.floating, np.bool_)):
            v = v.item()
        if isinstance(v, dict):
            out[k] = _plain(v)
        else:
            out[k] = v if isinstance(v, (str, int, float, bool, type(None))) else str(v)
    return out


# -- the runner ------------------------------------------------------------------------------------
def _spec(kind: str, overrides: dict | None, quick: bool, max_rows: int | None,
          defaults: dict[str, Any] | None = None) -> str:
    """What makes two records of one (dataset, seed, model) the same experiment.

    For a candidate: its overrides and a digest of the package defaults it does
    not override, so that a change of the package's defaults (``tabresnet_new``
    is ``{}``) reruns it instead of reusing an older model's results.
    """
    spec: dict[str, Any] = {"overrides": None, "quick": quick, "max_rows": max_rows}
    if kind == "candidate" and _is_bag(overrides or {}):
        # Since 2026-12-02 a bag is fitted on the training rows and scored on the
        # validation rows; before, on both and out-of-fold: another experiment.
        spec["bag_rows"] = "train"
    if kind == "candidate" and _is_refit(overrides or {}):
        # A refit is given the training and validation rows (a user's file) for its
        # test score, and fitted again on the training rows for its validation score.
        spec["refit_rows"] = "train+val for test, train for val"
    if kind == "candidate":
        inherited = {k: v for k, v in (defaults or {}).items()
                     if k not in overrides and k not in HARNESS_OPTIONS
                     and not (k in NEUTRAL_NEW_OPTIONS and v == NEUTRAL_NEW_OPTIONS[k])}
        digest = hashlib.sha1(json.dumps(inherited, sort_keys=True, default=str).encode())
        spec.update(overrides=overrides, defaults=digest.hexdigest()[:12])
    return json.dumps(spec, sort_keys=True)


def read_records(path: Path) -> list[dict]:
    """Every complete JSON line of ``path`` (a line cut short by a kill is skipped)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            print(f"warning: skipping an unreadable line of {path}", file=sys.stderr)
    return out


def _append(path: Path, rec: dict) -> None:
    # A line cut short by a kill must not swallow the next record.
    torn = False
    if path.exists() and path.stat().st_size > 0:
        with path.open("rb") as fh:
            fh.seek(-1, os.SEEK_END)
            torn = fh.read(1) != b"\n"
    with path.open("a", encoding="utf-8") as fh:
        fh.write(("\n" if torn else "") + json.dumps(rec, default=float) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def git_commit() -> str:
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=7"],
                              cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except Exception:
        return ""


def make_tasks(args: argparse.Namespace, candidates: dict[str, dict]) -> list[dict]:
    settings = Settings(threads=args.threads, max_seconds=math.inf, quick=args.quick)
    if args.quick:
        settings.max_epochs, settings.patience = 5, 3
    commit, command = git_commit(), args.command
    defaults = package_defaults() if any(m in candidates for m in args.models) else {}
    tasks = []
    for name in args.datasets:
        for seed in args.seeds:
            for model in args.models:
                kind = "candidate" if model in candidates else "baseline"
                overrides = candidates.get(model)
                tasks.append({
                    "dataset": name, "seed": seed, "model": model, "kind": kind,
                    "overrides": overrides, "max_rows": args.max_rows,
                    "spec": _spec(kind, overrides, args.quick, args.max_rows, defaults),
                    "settings": dict(vars(settings)), "commit": commit, "command": command,
                })
    return tasks


def _log_line(rec: dict) -> str:
    head = f"{rec['dataset']:11s} seed {rec['seed']}  {rec['model']:22s}"
    if rec["status"] == "ok":
        return (f"{head} test RMSE {rec['test_rmse']:10.4f}  val {rec['val_rmse']:10.4f}"
                f"  {rec['seconds']:8.1f} s")
    return f"{head} {rec['status']}: {rec.get('error', '')}"


def run(args: argparse.Namespace, candidates: dict[str, dict], log=print) -> int:
    """Fit every task not yet in ``args.out``; returns the number of fits run."""
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = {(r["dataset"], r["seed"], r["model"], r.get("spec"))
            for r in read_records(args.out) if r.get("status") == "ok"}
    tasks = make_tasks(args, candidates)
    if OLD in args.models:
        loose = unpinned_old_options()
        if loose:
            log(f"warning: {OLD} does not set {', '.join(loose)} (added after its commit): "
                "the package's current defaults apply to it; add their old values to "
                f"CANDIDATES[{OLD!r}] in bench/defaults_suite.py")
    todo = [t for t in tasks
            if (t["dataset"], t["seed"], t["model"], t["spec"]) not in done]
    log(f"{len(tasks)} fits in this command, {len(tasks) - len(todo)} already in {args.out}, "
        f"{len(todo)} to run with {args.jobs} process(es)")
    if not todo:
        return 0
    # Imported once per process before any fit (so no fit's seconds pay for them),
    # only those this run's models need.
    needs = {"lgbm_es": ("lightgbm",), "lgbm_refit": ("lightgbm",), "lgbm_default": ("lightgbm",),
             "hgb": ("sklearn.ensemble",), "rtdl_resnet": ("torch", "rtdl_revisiting_models"),
             "realmlp_td": ("torch", "lightning", "pytabkit"),
             "tabm_d": ("torch", "lightning", "pytabkit")}
    preload = tuple(dict.fromkeys(
        mod for t in todo
        for mod in (("torch", "lightning", "tabresnet.training") if t["kind"] == "candidate"
                    else needs.get(t["model"], ()))))

    def finish(rec: dict) -> None:
        _append(args.out, rec)
        log(_log_line(rec))
        if rec.get("traceback") and args.verbose:
            log(rec["traceback"])

    if args.jobs <= 1:
        init_worker(args.threads, preload)
        for task in todo:
            finish(run_task(task))
        return len(todo)
    _thread_env(args.threads)  # inherited by the spawned workers before they import numpy
    _run_pool(todo, args, preload, finish, log)
    return len(todo)


def _run_pool(todo: list[dict], args, preload, finish, log) -> None:
    """Run ``todo`` in ``args.jobs`` spawned processes; a dead worker costs one retry per task.

    spawn, not fork: the parent may have imported OpenMP-using libraries, and a
    forked child of those can hang.
    """
    ctx = mp.get_context("spawn")
    attempts: dict[int, int] = {}
    pending = list(range(len(todo)))
    while pending:
        broken = []
        with cf.ProcessPoolExecutor(max_workers=args.jobs, mp_context=ctx,
                                    initializer=init_worker,
                                    initargs=(args.threads, preload)) as pool:
            futures = {pool.submit(run_task, todo[i]): i for i in pending}
            try:
                for fut in cf.as_completed(futures):
                    i = futures[fut]
                    try:
                        rec = fut.result()
                    except cf.process.BrokenProcessPool:
                        broken.append(i)
                        continue
                    finish(rec)
            except KeyboardInterrupt:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
        pending = []
        for i in broken:
            attempts[i] = attempts.get(i, 0) + 1
            if attempts[i] >= 2:  # died twice: record it and go on
                task = todo[i]
                rec = {k: task[k] for k in ("dataset", "seed", "model", "kind", "spec")}
                rec.update(status="error", error="the worker process died (out of memory?)",
                           date=dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                           commit=task["commit"], command=task["command"])
                finish(rec)
            else:
                pending.append(i)
        if pending:
            log(f"a worker process died; retrying {len(pending)} unfinished fit(s)")


# -- the summary -----------------------------------------------------------------------------------
def latest(records: list[dict], datasets=None, models=None, seeds=None,
           quick: bool | None = None, max_rows: int | None = None) -> pd.DataFrame:
    """One row per (dataset, seed, model): the last record whose spec is the model's last.

    A model whose overrides changed between runs keeps only the records of its
    latest definition, so no mean mixes two configurations. ``datasets``,
    ``models`` and ``seeds`` filter (the yardstick and ``tabresnet_old`` always
    stay: the ratios need them); ``quick`` and ``max_rows``, when given, keep
    only the records made with those settings, so a smoke run and a full run
    written to one file are never compared.
    """
    if not records:
        return pd.DataFrame()
    df = pd.DataFrame(records)
    if "spec" not in df:
        df["spec"] = ""
    df["spec"] = df["spec"].fillna("")
    if datasets:
        df = df[df.dataset.isin(datasets)]
    if models:
        df = df[df.model.isin([*models, YARDSTICK, OLD])]
    if seeds:
        df = df[df.seed.isin(seeds)]
    if quick is not None and "quick" in df:
        df = df[df["quick"].fillna(False).astype(bool) == bool(quick)]
    if quick is not None and "max_rows" in df:
        rows = df["max_rows"].fillna(0).astype(int)
        df = df[rows == int(max_rows or 0)]
    if df.empty:
        return df
    last_spec = df.groupby("model").spec.agg("last")
    df = df[df.spec == df.model.map(last_spec)]
    df = df.groupby(["dataset", "seed", "model"], sort=False).tail(1)
    for col in ("test_rmse", "val_rmse", "seconds"):
        if col not in df:
            df[col] = np.nan
    return df.reset_index(drop=True)


def _order(names, first) -> list[str]:
    names = list(dict.fromkeys(names))
    return [n for n in first if n in names] + [n for n in names if n not in first]


def summarise(df: pd.DataFrame) -> dict[str, Any]:
    """Tables (DataFrames, model x dataset) and the selection from the latest records."""
    if df.empty:
        return {"datasets": [], "models": [], "candidates": []}
    ok = df[df.status == "ok"]
    datasets = _order(df.dataset, list(SUITE))
    models = _order(df.model, [*BASELINES, *CANDIDATES])
    kinds = df.groupby("model").kind.agg("last")
    candidates = [m for m in models if kinds.get(m) == "candidate"]

    def pivot(col, fn):
        out = ok.pivot_table(index="model", columns="dataset", values=col, aggfunc=fn)
        return out.reindex(index=models, columns=datasets)

    s: dict[str, Any] = {"datasets": datasets, "models": models, "candidates": candidates}
    s["test"] = pivot("test_rmse", "mean")
    s["test_std"] = pivot("test_rmse", lambda v: float(np.std(v, ddof=0)))
    s["val"] = pivot("val_rmse", "mean")
    s["seconds"] = pivot("seconds", "mean")
    s["n_seeds"] = pivot("test_rmse", "count").fillna(0).astype(int)
    s["rows"] = df.dropna(subset=["rows"]).groupby("dataset").rows.first() if "rows" in df else {}
    s["seeds"] = sorted(int(x) for x in df.seed.unique())
    s["test_ratio"] = _paired_ratio(ok, "test_rmse", YARDSTICK, models, datasets)
    s["val_ratio"] = _paired_ratio(ok, "val_rmse", YARDSTICK, models, datasets)
    s["seconds_ratio"] = _paired_ratio(ok, "seconds", OLD, candidates, datasets)
    s["errors"] = _errors(df)
    s["selection"] = select(ok, s["val_ratio"], candidates, datasets, s["seconds_ratio"])
    return s


def _paired_ratio(ok: pd.DataFrame, col: str, ref: str, models, datasets) -> pd.DataFrame:
    """mean(model) / mean(ref) per dataset over the seeds both have; NaN without a pair."""
    wide = ok.pivot_table(index=["dataset", "seed"], columns="model", values=col, aggfunc="last")
    out = pd.DataFrame(np.nan, index=list(models), columns=list(datasets))
    if ref not in wide:
        return out
    for d in datasets:
        if d not in wide.index.get_level_values(0):
            continue
        sub = wide.loc[d]
        for m in models:
            if m not in sub:
                continue
            both = pd.DataFrame({"m": sub[m], "ref": sub[ref]}).dropna()
            if len(both) and both["ref"].mean() > 0:
                out.loc[m, d] = both["m"].mean() / both["ref"].mean()
    return out


def select(ok: pd.DataFrame, val_ratio: pd.DataFrame, candidates, datasets,
           seconds_ratio: pd.DataFrame | None = None) -> dict:
    """The protocol's choice: the candidate with the lowest mean validation ratio over the suite.

    Only candidates with a result for every (dataset, seed) the yardstick has
    are eligible, and, where ``tabresnet_old`` ran beside them
    (``seconds_ratio``), only those within :data:`BUDGET` times its seconds on
    every table; test RMSE plays no part.
    """
    ref = ok[ok.model == YARDSTICK][["dataset", "seed"]]
    need = set(map(tuple, ref.to_numpy().tolist()))
    rows = []
    for m in candidates:
        have = set(map(tuple, ok[ok.model == m][["dataset", "seed"]].to_numpy().tolist()))
        missing = len(need - have)
        r = val_ratio.loc[m, datasets] if m in val_ratio.index else pd.Series(dtype=float)
        sr = (seconds_ratio.loc[m, datasets] if seconds_ratio is not None
              and m in seconds_ratio.index else pd.Series(dtype=float))
        worst = float(sr.max()) if sr.notna().any() else np.nan
        rows.append({"model": m, "mean_val_ratio": float(r.mean()) if r.notna().any() else np.nan,
                     "complete": bool(need) and missing == 0, "missing": missing,
                     "seconds_ratio": worst, "within_budget": not worst > BUDGET})
    table = pd.DataFrame(rows)
    eligible = (table[table.complete & table.within_budget & table.mean_val_ratio.notna()]
                if len(table) else table)
    choice = None if eligible.empty else str(eligible.loc[eligible.mean_val_ratio.idxmin(), "model"])
    return {"table": table, "choice": choice}


def _errors(df: pd.DataFrame) -> pd.DataFrame:
    bad = df[df.status != "ok"]
    if bad.empty:
        return bad
    if "error" not in bad:
        bad = bad.assign(error="")
    return (bad.groupby(["model", "status", "error"], sort=False)
            .agg(fits=("seed", "size"), datasets=("dataset", lambda v: ", ".join(dict.fromkeys(v))))
            .reset_index())


def _f(x, digits: int = 3, like: float | None = None) -> str:
    """A number for the tables; ``like`` (e.g. the mean beside a std) picks the scale."""
    if x is None or not np.isfinite(x):
        return "-"
    scale = abs(x if like is None or not np.isfinite(like) else like)
    if scale >= 1000:
        return f"{x:,.0f}"
    if scale >= 10:
        return f"{x:.2f}"
    return f"{x:.{digits}f}" if scale >= 0.1 else f"{x:.4f}"


def _table(frame: pd.DataFrame, cell: Callable[[str, str], str], header: list[str],
           extra: dict[str, Callable[[str], str]] | None = None, bold: set | None = None) -> list[str]:
    extra = extra or {}
    cols = list(frame.columns)
    lines = ["| model | " + " | ".join([*header, *extra]) + " |",
             "|---|" + "---:|" * (len(cols) + len(extra))]
    for m in frame.index:
        name = f"**{m}**" if bold and m in bold else m
        cells = [cell(m, d) for d in cols] + [fn(m) for fn in extra.values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def markdown(s: dict, df: pd.DataFrame, machine: dict) -> str:
    if not s["datasets"]:
        return "No results yet."
    datasets, cands = s["datasets"], s["candidates"]
    rows = s["rows"]
    header = [f"{d} ({int(rows[d]):,})" if d in rows else d for d in datasets]
    commits = ", ".join(dict.fromkeys(c for c in df.get("commit", pd.Series()).dropna() if c))
    commands = list(dict.fromkeys(c for c in df.get("command", pd.Series()).dropna() if c))
    dates = sorted(d for d in df.get("date", pd.Series()).dropna())
    versions = next((v for v in reversed(df.get("versions", pd.Series()).dropna().tolist())
                     if isinstance(v, dict) and v), {})
    load = df.get("load_1min", pd.Series(dtype=float)).dropna()
    lines = [
        f"Fits from {dates[0][:16] if dates else '?'} to {dates[-1][:16] if dates else '?'} "
        f"(commit {commits or '?'}), on {machine['cpu']} with {machine['cores']} cores, "
        f"shared with other work (1-minute load average at the end of the fits: median "
        f"{load.median() if len(load) else float('nan'):.1f}, max "
        f"{load.max() if len(load) else float('nan'):.1f}); summary written "
        f"{machine['date']}.",
        "Command(s): " + "; ".join(f"`{c}`" for c in commands) + "." if commands else "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + "." if versions else "",
        "",
        f"Seeds {', '.join(map(str, s['seeds']))}; table columns are the datasets "
        "(rows in the table); RMSE in the target's units (log units for the log "
        "targets); mean over the seeds with a result.",
        "",
    ]
    test, std, nseed = s["test"], s["test_std"], s["n_seeds"]
    max_seeds = int(nseed.to_numpy().max()) if nseed.size else 0

    def test_cell(m, d):
        v = test.loc[m, d]
        if not np.isfinite(v):
            return "-"
        partial = f" ({nseed.loc[m, d]})" if nseed.loc[m, d] < max_seeds else ""
        spread = f" ± {_f(std.loc[m, d], 4, like=v)}" if nseed.loc[m, d] > 1 else ""
        return f"{_f(v, 4)}{spread}{partial}"

    lines += ["**Test RMSE** (mean ± std over seeds; a number in brackets: seeds with a "
              "result, where fewer than the rest):", ""]
    lines += _table(test, test_cell, header)
    ratio = s["test_ratio"]

    def count_wins(m):
        r = ratio.loc[m].dropna()
        return f"{int((r <= 1.0).sum())} of {len(r)}" if len(r) else "-"

    lines += ["", f"**Test RMSE / {YARDSTICK}** (per dataset: mean over seeds both have; "
              "*suite* is the mean of the per-dataset ratios):", ""]
    lines += _table(ratio, lambda m, d: _f(ratio.loc[m, d]), header, extra={
        "suite": lambda m: _f(ratio.loc[m].mean()) if ratio.loc[m].notna().any() else "-",
        "max": lambda m: _f(ratio.loc[m].max()) if ratio.loc[m].notna().any() else "-",
        "<= 1.00": count_wins,
    })
    val = s["val"]
    lines += ["", "**Validation RMSE** (mean over seeds; on the validation rows for every "
              "model, a bag's included: it is fitted on the training rows alone; a refit's, "
              "and a candidate's with protocol user, from a second fit on the training rows "
              "alone, whose own split chose the epoch):", ""]
    lines += _table(val, lambda m, d: _f(val.loc[m, d]), header)
    sec = s["seconds"]
    lines += ["", "**Seconds per fit** (mean wall time from raw frames to test predictions, "
              "one thread):", ""]
    lines += _table(sec, lambda m, d: f"{sec.loc[m, d]:.1f}" if np.isfinite(sec.loc[m, d])
                    else "-", header)
    if cands and OLD in cands:
        sr = s["seconds_ratio"]
        lines += ["", f"**Seconds / {OLD}** (the issue's budget: at most 3.0 on every table):",
                  ""]
        lines += _table(sr, lambda m, d: _f(sr.loc[m, d], 2), header, extra={
            "max": lambda m: _f(sr.loc[m].max(), 2) if sr.loc[m].notna().any() else "-"})
    sel = s["selection"]
    if cands:
        vr = s["val_ratio"].loc[cands]
        choice = sel["choice"]
        table = sel["table"].set_index("model")
        lines += ["", "### Selection (validation rows only)", "",
                  f"Validation RMSE / {YARDSTICK} per dataset and its mean over the suite; "
                  "only candidates with every (dataset, seed) the yardstick has, and within "
                  f"{BUDGET:g}x `{OLD}`'s seconds on every table where it ran beside them, "
                  "are eligible. "
                  "Test rows play no part in this table.", ""]
        lines += _table(vr, lambda m, d: _f(vr.loc[m, d]), header, extra={
            "suite (val)": lambda m: _f(table.loc[m, "mean_val_ratio"]),
            "eligible": lambda m: (
                f"no ({table.loc[m, 'missing']} missing)" if not table.loc[m, "complete"]
                else f"no ({table.loc[m, 'seconds_ratio']:.2f}x the seconds)"
                if not table.loc[m, "within_budget"] else "yes"),
        }, bold={choice} if choice else None)
        if choice:
            r = ratio.loc[choice]
            lines += ["", f"**The protocol's choice: `{choice}`** (lowest mean validation "
                      f"ratio, {_f(table.loc[choice, 'mean_val_ratio'])}). Reported on test: "
                      f"mean ratio to {YARDSTICK} {_f(r.mean())}, worst {_f(r.max())} "
                      f"({r.idxmax() if r.notna().any() else '-'}), at most 1.00 on "
                      f"{count_wins(choice)} datasets."]
            if OLD in cands and choice in s["seconds_ratio"].index:
                mx = s["seconds_ratio"].loc[choice]
                if mx.notna().any():
                    lines[-1] += (f" Seconds per fit: up to {mx.max():.2f}x `{OLD}`'s "
                                  f"({mx.idxmax()}).")
        else:
            lines += ["", "No candidate is eligible (none has every dataset and seed within "
                      "the time budget)."]
    errs = s["errors"]
    if len(errs):
        lines += ["", "**Fits without a result** (latest record each):", "",
                  "| model | status | fits | datasets | error |", "|---|---|---:|---|---|"]
        for _, e in errs.iterrows():
            msg = str(e.error).replace("|", "\\|")
            lines.append(f"| {e.model} | {e.status} | {e.fits} | {e.datasets} | {msg} |")
    return "\n".join(line for line in lines if line is not None) + "\n"


def machine_info() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        cpu = next((line.split(":", 1)[1].strip() for line in out.splitlines()
                    if line.startswith("Model name")), cpu)
    except Exception:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(),
            "date": dt.datetime.now().astimezone().isoformat(timespec="minutes")}


def plot(s: dict, img_dir: Path, stem: str = "defaults_suite") -> list[Path]:
    """Test-RMSE ratio to the yardstick and seconds per fit, per dataset and model."""
    if not s["datasets"] or s["test"].isna().all().all():
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img_dir.mkdir(parents=True, exist_ok=True)
    datasets, models = s["datasets"], s["models"]
    x = np.arange(len(datasets))
    width = 0.8 / max(len(models), 1)
    colors = {m: plt.cm.tab20(i % 20) for i, m in enumerate(models)}
    markers = "os^Dv<>PXh*"
    paths = []

    clip = 1.5
    fig, ax = plt.subplots(figsize=(max(8, 1.1 * len(datasets) + 3), 4.4))
    ratio = s["test_ratio"]
    for i, m in enumerate(models):
        r = ratio.loc[m].to_numpy(dtype=float)
        xs = x - 0.4 + width * (i + 0.5)
        ax.scatter(xs, np.minimum(r, clip), color=colors[m], marker=markers[i % len(markers)],
                   s=36, label=m, zorder=3)
        for xi, ri in zip(xs, r):
            if np.isfinite(ri) and ri > clip:
                ax.annotate(f"{ri:.1f}", (xi, clip), fontsize=6, ha="center", va="bottom")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks(x, datasets, rotation=30, ha="right")
    ax.set_ylabel(f"test RMSE / {YARDSTICK} (cut at {clip})")
    ax.set_title("Test RMSE relative to LightGBM with early stopping (below 1: better)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, frameon=False, bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.tight_layout()
    paths.append(img_dir / f"{stem}_ratio.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(max(8, 1.1 * len(datasets) + 3), 4.4))
    sec = s["seconds"]
    for i, m in enumerate(models):
        v = sec.loc[m].to_numpy(dtype=float)
        ax.scatter(x - 0.4 + width * (i + 0.5), v, color=colors[m],
                   marker=markers[i % len(markers)], s=36, label=m, zorder=3)
    ax.set_yscale("log")
    ax.set_xticks(x, datasets, rotation=30, ha="right")
    ax.set_ylabel("seconds per fit (log scale, one thread)")
    ax.set_title("Wall seconds per fit")
    ax.grid(axis="y", alpha=0.3, which="both")
    ax.legend(fontsize=7, frameon=False, bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.tight_layout()
    paths.append(img_dir / f"{stem}_seconds.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def update_doc(block: str, doc: Path = DOC) -> bool:
    """Replace the text between :data:`BEGIN` and :data:`END` in ``doc``; False if absent."""
    from bench.run_all import update_doc as replace_block

    return replace_block(block, doc, begin=BEGIN, end=END)


# -- the command line ------------------------------------------------------------------------------
def _candidate_arg(text: str) -> tuple[str, dict]:
    name, sep, payload = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise argparse.ArgumentTypeError(
            f"expected NAME='{{json}}', however: {text!r}")
    try:
        overrides = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(
            f"candidate {name!r}: its overrides are not JSON ({exc.msg}); "
            "quote them, e.g. wide='{\"c_hidden\": [256, 256]}'") from None
    if not isinstance(overrides, dict):
        raise argparse.ArgumentTypeError(
            f"candidate {name!r}: overrides must be a JSON object, however: {payload!r}")
    return name, overrides


def parse_args(argv=None) -> tuple[argparse.Namespace, dict[str, dict]]:
    p = argparse.ArgumentParser(
        prog="bench/defaults_suite.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=None, metavar="NAME",
                   help="suite tables (default all): " + " ".join(SUITE))
    p.add_argument("--seeds", nargs="+", type=int, default=None,
                   help="split and init seeds (default 0 1 2; --quick: 0)")
    p.add_argument("--models", nargs="+", default=None, metavar="NAME",
                   help="models (default every baseline but tabm_d, and every candidate): "
                        + " ".join([*BASELINES, *CANDIDATES]))
    p.add_argument("--candidate", action="append", type=_candidate_arg, default=[],
                   metavar="NAME=JSON",
                   help="add (or redefine) a tabresnet candidate: flat overrides of "
                        "tabresnet.fit as a JSON object; it joins the models run")
    p.add_argument("--jobs", type=int, default=1, help="fits at a time, one process each")
    p.add_argument("--threads", type=int, default=1, help="threads per fit (default 1)")
    p.add_argument("--out", type=Path, default=None,
                   help=f"JSON-lines results (default {DEFAULT_OUT.relative_to(ROOT)}; "
                        f"--quick: {QUICK_OUT.relative_to(ROOT)})")
    p.add_argument("--max-rows", type=int, default=None,
                   help="subsample every table to at most this many rows (--quick: 2000)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: seed 0, at most 2,000 rows, 5 epochs, 300 LightGBM "
                        "rounds; leaves docs/ alone")
    p.add_argument("--from-json", action="store_true",
                   help="fit nothing: rebuild the summary, plots and doc block from --out")
    p.add_argument("--no-docs", action="store_true", help="do not touch docs/")
    p.add_argument("--verbose", action="store_true", help="print the traceback of failed fits")
    args = p.parse_args(argv)
    argv_list = list(sys.argv[1:] if argv is None else argv)
    args.command = shlex.join(["python", "bench/defaults_suite.py", *argv_list])
    candidates = {k: dict(v) for k, v in CANDIDATES.items()}
    for name, overrides in args.candidate:
        if name in BASELINES:
            p.error(f"candidate name {name!r} is a baseline's; choose another name")
        candidates[name] = overrides
    args.explicit_models = args.models is not None
    args.explicit_datasets = args.datasets is not None
    args.explicit_seeds = args.seeds is not None
    if args.datasets is None:
        args.datasets = list(SUITE)
    if not args.from_json:
        bad = [d for d in args.datasets if d not in SUITE]
        if bad:
            p.error(f"unknown dataset(s) {', '.join(bad)}; valid: {', '.join(SUITE)}")
        if args.models is None:
            args.models = [m for m in BASELINES if m not in OPT_IN] + list(candidates)
        else:
            args.models += [n for n, _ in args.candidate if n not in args.models]
        bad = [m for m in args.models if m not in BASELINES and m not in candidates]
        if bad:
            p.error(f"unknown model(s) {', '.join(bad)}; valid: "
                    f"{', '.join([*BASELINES, *candidates])}, or define one with --candidate")
        args.models = list(dict.fromkeys(args.models))
    if args.jobs < 1 or args.threads < 1:
        p.error("--jobs and --threads must be at least 1")
    if args.seeds is None:
        args.seeds = [0] if args.quick else [0, 1, 2]
    if args.max_rows is None and args.quick:
        args.max_rows = 2000
    if args.out is None:
        args.out = QUICK_OUT if args.quick else DEFAULT_OUT
    if args.quick:
        args.no_docs = True
    return args, candidates


def summary(args: argparse.Namespace) -> tuple[dict, str, list[Path]]:
    """Rebuild the tables from ``args.out``; write ``<out>.md``, the plots and the doc block."""
    df = latest(read_records(args.out),
                datasets=args.datasets if args.explicit_datasets else None,
                models=args.models if args.explicit_models else None,
                seeds=args.seeds if args.explicit_seeds else None,
                quick=args.quick, max_rows=args.max_rows)
    s = summarise(df)
    text = markdown(s, df, machine_info())
    md = args.out.with_suffix(".md")
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text(text, encoding="utf-8")
    # docs/img keeps fixed names, so the page never points at a stale plot.
    pngs = plot(s, md.parent if args.no_docs else IMG,
                stem=args.out.stem if args.no_docs else "defaults_suite")
    if not args.no_docs:
        rel = [f"![{cap}](img/{p.name})" for cap, p in zip(
            ("test RMSE relative to LightGBM-ES per dataset and model",
             "seconds per fit per dataset and model, log scale"), pngs)]
        block = text + ("\n" + "\n\n".join(rel) + "\n" if rel else "")
        if not update_doc(block):
            print(f"docs/benchmarks.md has no {BEGIN} block; the summary is in {md}")
    return s, text, [md, *pngs]


def main(argv=None) -> int:
    args, candidates = parse_args(argv)
    started = time.perf_counter()
    if not args.from_json:
        try:
            run(args, candidates)
        except KeyboardInterrupt:
            print("interrupted: finished fits are in the file; rerun to resume",
                  file=sys.stderr)
            return 130
    _, text, paths = summary(args)
    print()
    print(text)
    print(f"wrote {' '.join(str(p) for p in paths)} in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
