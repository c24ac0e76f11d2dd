"""The ``tabresnet`` command.

    tabresnet demo                                  # fit + evaluate on bundled data
    tabresnet fit DATA --target COL [--config cfg.yaml] [--out DIR] [--lr 3e-3 ...]
    tabresnet predict MODEL DATA -o preds.csv
    tabresnet evaluate MODEL DATA
    tabresnet tune DATA --target COL [--trials N] [--timeout 30m] ...
    tabresnet show --config model.yaml [--graph out.png]
    tabresnet report RUN_DIR
    tabresnet config                                # print the default config (YAML)

Every option of the run config (``tabresnet config`` lists them) is also a flag
of ``fit`` and ``tune``: its flags are generated from ``tabresnet.defaults``.
Bad input prints one ``error:`` line and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from . import __version__
from .defaults import RunConfig, choices, flat_fields
from .errors import TabResNetError

EXIT_USAGE = 2


# -- flags generated from the defaults ------------------------------------------------
def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _optional_str(text: str) -> str | None:
    return None if text.lower() in {"null", "default"} else text


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One ``--name`` flag per flat config option; unset flags keep the config's value."""
    groups = {
        "model": parser.add_argument_group("model options (defaults: tabresnet config)"),
        "data": parser.add_argument_group("data options"),
        "train": parser.add_argument_group("training options"),
        "": parser.add_argument_group("run options"),
    }
    defaults = RunConfig().to_flat()
    for name, (section, f) in flat_fields().items():
        flag = "--" + name.replace("_", "-")
        default = defaults[name]
        kwargs: dict[str, Any] = {"dest": f"opt_{name}", "default": argparse.SUPPRESS}
        text = str(f.type)  # an annotation string (from __future__ import annotations)
        if isinstance(default, bool):
            kwargs.update(type=_bool, metavar="BOOL")
        elif isinstance(default, list):
            item = int if "int" in text else str
            kwargs.update(nargs="*", type=item, metavar="N" if item is int else "COL")
        elif isinstance(default, int):
            kwargs["type"] = int
        elif isinstance(default, float):
            kwargs["type"] = float
        elif default is None or "None" in text:
            kwargs["type"] = _optional_str
        else:
            kwargs["type"] = str
            allowed = choices(section, name)
            if allowed:
                kwargs["choices"] = allowed
        kwargs["help"] = f"default: {json.dumps(default)}"
        groups[section].add_argument(flag, **kwargs)


def flag_overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {k[4:]: v for k, v in vars(args).items() if k.startswith("opt_")}


# -- commands ------------------------------------------------------------------
def _print_metrics(metrics: dict, out=None) -> None:
    out = out or sys.stdout
    rows = [(split, m) for split, m in metrics.items() if isinstance(m, dict) and "rmse" in m]
    if not rows:
        return
    keys = ["rmse", "mae", "r2", "mape"]
    print(f"{'split':<8}" + "".join(f"{k:>12}" for k in keys) + f"{'rows':>8}", file=out)
    for split, m in rows:
        cells = "".join(f"{m[k]:>12.4g}" if k in m else f"{'-':>12}" for k in keys)
        print(f"{split:<8}{cells}{m.get('n', ''):>8}", file=out)
    cv = metrics.get("cv")
    if cv:
        print(f"cv: {cv['folds']}-fold RMSE {cv['rmse_mean']:.4g} ± {cv['rmse_std']:.4g}", file=out)


def _default_out(stem: str) -> Path:
    import time

    return Path("runs") / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def cmd_fit(args: argparse.Namespace) -> int:
    from .training import fit

    target = args.target if len(args.target) > 1 else args.target[0]
    out = Path(args.out) if args.out else _default_out("fit")
    run = fit(
        args.data,
        target,
        config=args.config,
        out=out,
        val_data=args.val_data,
        test_data=args.test_data,
        overwrite=args.overwrite,
        report=not args.no_report,
        **flag_overrides(args),
    )
    if run.dir is None:  # an extra process of a multi-process run
        return 0
    _print_metrics(run.metrics)
    print(f"run directory: {run.dir}")
    if (run.dir / "report.html").is_file():
        print(f"report: {run.dir / 'report.html'}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from .artifact import atomic_write_bytes, atomic_write_text, load

    model = load(args.model)
    frame = model.predict_frame(args.data)
    if args.output in (None, "-"):
        frame.to_csv(sys.stdout, index=False)
    else:
        out = Path(args.output)
        if out.suffix.lower() in {".parquet", ".pq"}:
            import io

            buf = io.BytesIO()
            frame.to_parquet(buf, index=False)
            atomic_write_bytes(out, buf.getvalue())
        else:
            atomic_write_text(out, frame.to_csv(index=False))
        print(f"wrote {len(frame)} predictions to {out}", file=sys.stderr)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .artifact import load

    metrics = load(args.model).evaluate(args.data)
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        _print_metrics({"data": metrics})
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from sklearn.datasets import load_diabetes

    from .training import fit

    frame = load_diabetes(as_frame=True).frame
    out = Path(args.out)
    print(
        f"demo: scikit-learn's diabetes data ({len(frame)} patients, 10 features, "
        "target: disease progression after one year)"
    )
    run = fit(frame, "target", out=out, overwrite=True, **flag_overrides(args))
    if run.dir is None:
        return 0
    _print_metrics(run.metrics)
    t = run.metrics.get("training", {})
    print(
        f"trained {t.get('epochs')} epochs in {t.get('seconds', 0):.1f} s (best epoch {t.get('best_epoch')})"
    )
    print(f"run directory: {run.dir}")
    if (run.dir / "report.html").is_file():
        print(f"report: {run.dir / 'report.html'}")
    print(f"next: tabresnet predict {run.dir} DATA.csv -o predictions.csv")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    cfg = RunConfig.load(args.config) if args.config else RunConfig()
    cfg = cfg.replace(**flag_overrides(args))
    sys.stdout.write(cfg.to_yaml())
    return 0


# -- parser ----------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tabresnet",
        description="Residual networks for tabular regression: fit, tune, predict, report.",
    )
    parser.add_argument("--version", action="version", version=f"tabresnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("demo", help="fit and evaluate on scikit-learn's bundled diabetes data")
    p.add_argument("--out", default="runs/demo", help="run directory (default: runs/demo)")
    add_config_flags(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("fit", help="train a model on a table and write a run directory")
    p.add_argument("data", help="CSV or Parquet file")
    p.add_argument("--target", "-t", required=True, nargs="+", help="target column(s)")
    p.add_argument("--config", "-c", help="YAML run config (model/data/train sections)")
    p.add_argument("--out", "-o", help="run directory (default: runs/fit-<time>)")
    p.add_argument("--val-data", help="separate validation table")
    p.add_argument("--test-data", help="separate test table")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    p.add_argument("--no-report", action="store_true", help="skip report.html")
    add_config_flags(p)
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("predict", help="predict from raw columns with a saved model")
    p.add_argument("model", help="run directory or model.json")
    p.add_argument("data", help="CSV or Parquet file")
    p.add_argument("-o", "--output", help="CSV or Parquet to write (default: stdout)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("evaluate", help="RMSE, MAE, R2, MAPE of a saved model on a table")
    p.add_argument("model", help="run directory or model.json")
    p.add_argument("data", help="CSV or Parquet file with the target column(s)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("config", help="print the run config (defaults, a file, and flags)")
    p.add_argument("--config", "-c", help="YAML run config to start from")
    add_config_flags(p)
    p.set_defaults(func=cmd_config)

    import importlib

    for module, adder, runner in (
        ("tabresnet.show", "add_show_parser", "run_show"),
        ("tabresnet.report", "add_report_parser", "run_report"),
        ("tabresnet.tuning.cli", "add_tune_parser", "run_tune"),
    ):
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        before = set(sub.choices)
        getattr(mod, adder)(sub)
        for name in set(sub.choices) - before:
            if sub.choices[name].get_default("func") is None:
                sub.choices[name].set_defaults(func=getattr(mod, runner))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except TabResNetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except FileNotFoundError as exc:
        print(f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
