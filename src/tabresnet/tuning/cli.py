"""The ``tabresnet tune`` sub-command (wired into ``tabresnet.cli``).

    tabresnet tune data.csv --target price --trials 50 --timeout 30m
    tabresnet tune data.csv --target price --jobs 2 --pruner hyperband --max-epochs 200
    tabresnet tune data.csv --target price --storage postgresql://user@db/tabresnet --study shared
    tabresnet tune --show-space > my_space.yaml

Rerunning a command resumes its study (``--out`` defaults to
``runs/tune-<data name>``, so the same command finds the same study);
``--trials`` counts all finished trials of the study.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import ConfigError

__all__ = ["PRUNERS", "SAMPLERS", "add_tune_parser", "run_tune"]

# Here, not in study.py, so that building the parser imports neither Optuna nor Lightning.
SAMPLERS = ("tpe", "gp", "random", "cmaes", "qmc")
PRUNERS = ("median", "hyperband", "successive-halving", "none")


def _folds(value: str) -> int | str:
    if value.strip().lower() == "auto":
        return "auto"
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of folds or 'auto', however: {value!r}"
        ) from None


def add_tune_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from ..cli import add_config_flags

    p = subparsers.add_parser(
        "tune",
        help="search hyperparameters with Optuna, then retrain and save the best model",
        description=(
            "Search the hyperparameters with Optuna (pruning bad trials early), retrain the "
            "best configuration and save it as a run directory, like fit. Rerunning the same "
            "command resumes the study. Options the search space does not list take the "
            "values of the run-config flags below."
        ),
    )
    p.add_argument("data", nargs="?", help="CSV or Parquet file")
    p.add_argument("--target", "-t", nargs="+", help="target column(s)")
    p.add_argument("--config", "-c", help="YAML run config for the options not searched")
    p.add_argument("--trials", type=int, default=20,
                   help="finished trials the study should hold in total, earlier runs and "
                        "other workers included (default: 20)")
    p.add_argument("--timeout", metavar="DURATION",
                   help="time limit of the search: 90, 90s, 30m, 1h; a trial still running "
                        "then is stopped (the best configuration is retrained afterwards)")
    p.add_argument("--space", metavar="YAML", help="search space (default: --show-space)")
    p.add_argument("--show-space", action="store_true",
                   help="print the search space (the default or --space) and exit")
    p.add_argument("--sampler", choices=SAMPLERS, default="tpe", help="default: tpe")
    p.add_argument("--pruner", choices=PRUNERS, default="median", help="default: median")
    p.add_argument("--storage", metavar="URL",
                   help="study database, e.g. postgresql://user@host/db for workers on many "
                        "machines (default: OUT/tuning/study.db)")
    p.add_argument("--study", metavar="NAME", help="study name (default: <data name>-<target>)")
    p.add_argument("--jobs", "-j", type=int, default=1,
                   help="worker processes on this machine, sharing the cores (default: 1)")
    p.add_argument("--cv", type=_folds, default="auto", metavar="K",
                   help="score trials by K-fold cross-validation and save the best "
                        "configuration as a bag of its K fold networks; 0: the validation "
                        "split, one network (default: auto, i.e. --cv-folds if given, else 4 "
                        "folds for tables of at most 10,000 rows and 0 for larger ones)")
    p.add_argument("--out", "-o", help="run directory (default: runs/tune-<data name>)")
    p.add_argument("--val-data", help="separate validation table")
    p.add_argument("--test-data", help="separate test table")
    p.add_argument("--no-report", action="store_true", help="skip report.html")
    p.add_argument("--no-bag", action="store_true",
                   help="with --cv: save one network retrained on the training split instead "
                        "of the bag of the K fold networks")
    p.add_argument("--no-defaults-first", action="store_true",
                   help="do not make fit's configuration the first trial of a new study")
    add_config_flags(p)
    p.set_defaults(func=run_tune)
    return p


def run_tune(args: argparse.Namespace) -> int:
    from .space import SearchSpace

    if args.show_space:
        space = SearchSpace.load(args.space)
        sys.stdout.write(space.text if space.text.endswith("\n") else space.text + "\n")
        return 0
    if not args.data or not args.target:
        raise ConfigError("tune needs DATA and --target COLUMN (or --show-space)")

    from ..cli import _print_metrics, flag_overrides
    from .api import tune

    target = args.target if len(args.target) > 1 else args.target[0]
    out = Path(args.out) if args.out else Path("runs") / f"tune-{Path(args.data).stem}"
    overrides = flag_overrides(args)
    progress = overrides.pop("progress", "auto")
    result = tune(
        args.data,
        target,
        config=args.config,
        trials=args.trials,
        timeout=args.timeout,
        space=args.space,
        sampler=args.sampler,
        pruner=args.pruner,
        storage=args.storage,
        study_name=args.study,
        jobs=args.jobs,
        cv=args.cv,
        out=out,
        val_data=args.val_data,
        test_data=args.test_data,
        progress=progress,
        report=not args.no_report,
        defaults_first=not args.no_defaults_first,
        bag=False if args.no_bag else None,
        **overrides,
    )
    counts = ", ".join(f"{n} {s.lower()}" for s, n in sorted(result.counts.items()))
    print(f"study {result.study.study_name}: {counts}"
          + (" (interrupted)" if result.interrupted else ""))
    print(f"best trial {result.best_trial}: validation RMSE {result.best_value:.5g}")
    for name, value in result.best_params.items():
        print(f"  {name} = {value}")
    if result.model.n_members > 1:
        print(f"retrained best configuration: a bag of {result.model.n_members} networks, one "
              "per fold (oof: each scored on the fold it did not train on)")
    else:
        print("retrained best configuration:")
    _print_metrics(result.metrics)
    print(f"run directory: {result.dir}")
    if result.dir is not None and (result.dir / "report.html").is_file():
        print(f"report: {result.dir / 'report.html'}")
    return 0
