"""The ``tabresnet`` command.

    tabresnet demo                                  # fit + evaluate on bundled data
    tabresnet fit DATA --target COL [--config cfg.yaml] [--out DIR] [--lr 3e-3 ...]
    tabresnet fit DATA --target COL --weight W    # rows weighted by column W
    tabresnet predict MODEL DATA -o preds.csv [--keep ID ...]     # or -o preds.parquet
    tabresnet predict MODEL DATA --interval 0.9     # + conformal lower/upper columns
    tabresnet evaluate MODEL DATA
    tabresnet export MODEL --onnx model.onnx        # or --torchscript model.pt
    tabresnet importance MODEL DATA [--repeats N] [--scoring rmse] [-o importance.csv]
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
import contextlib
import errno
import gc
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from . import __version__
from .defaults import choices, flat_defaults, flat_fields
from .errors import ConfigError, TabResNetError
from .models.names import NAMES
from .tuning import PRUNERS, SAMPLERS

#: What a table argument may be (tabresnet.data.read_table reads it).
DATA_HELP = "CSV or Parquet file (.csv, .tsv, .txt, also as .csv.gz, .bz2, .xz, .zip; .parquet)"

EXIT_USAGE = 2
#: A reader that closed the pipe early (128 + SIGPIPE, as a shell reports a killed writer).
EXIT_SIGPIPE = 141


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


def _field_docs() -> dict[str, str]:
    """Flat option name -> the first sentence of its numpydoc ``Attributes`` entry.

    An entry ``a, b : type`` followed by indented lines documents ``a`` and ``b``;
    an entry with no description (its type lists the choices) maps to ``""``.
    """
    import inspect

    from .defaults import DataConfig, TrainConfig
    from .models.config import ModelConfig

    docs: dict[str, str] = {}
    for cls_ in (ModelConfig, DataConfig, TrainConfig):
        text = inspect.getdoc(cls_) or ""
        entries: list[tuple[list[str], list[str]]] = []  # (names, description lines)
        for line in text.split("Attributes\n----------\n", 1)[-1].splitlines():
            if not line.strip():
                continue
            if not line.startswith(" ") and " : " in line:  # a new entry
                entries.append(([n.strip() for n in line.split(" : ", 1)[0].split(",")], []))
            elif not line.startswith(" "):  # the next section
                break
            elif entries:
                entries[-1][1].append(line.strip())
        for names, body in entries:
            for name in names:
                docs[name] = _short(" ".join(body))
    return docs


def _short(text: str, limit: int = 120) -> str:
    """The first sentence of a docstring entry, plain text; cut at ``;`` or ``:`` if long."""
    text = re.sub(r":\w+:`~?(?:[\w.]*\.)?(\w+)`", r"\1", text).replace("``", "").strip()

    def cut(stops: str) -> str | None:
        depth = 0
        for i, ch in enumerate(text):
            depth += (ch == "(") - (ch == ")")
            if depth == 0 and ch in stops and (i + 1 == len(text) or text[i + 1] == " "):
                return text[: i + 1] if ch == "." else text[:i] + "."
        return None

    sentence = cut(".") or text
    if len(sentence) > limit:
        sentence = cut(".;:") or sentence
    return sentence


def _named_choices(section: str, name: str) -> list[str] | None:
    """The valid names of an option, for ``--help`` (those checked by argparse or the model)."""
    allowed = choices(section, name)
    if allowed:
        return list(allowed)
    if section == "model" and name in NAMES:
        return list(NAMES[name])
    return None


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One ``--name`` flag per flat config option; unset flags keep the config's value.

    The help text is the first sentence of the option's docstring (the
    ``Attributes`` of the config classes), its valid names and its default.
    """
    groups = {
        "model": parser.add_argument_group("model options (defaults: tabresnet config)"),
        "data": parser.add_argument_group("data options"),
        "train": parser.add_argument_group("training options"),
        "": parser.add_argument_group("run options"),
    }
    defaults = flat_defaults()
    docs = _field_docs()
    docs.setdefault("seed", "One seed for the splits, the initialisation and the batch order.")
    for name, (section, f) in flat_fields().items():
        flag = "--" + name.replace("_", "-")
        default = defaults[name]
        kwargs: dict[str, Any] = {"dest": f"opt_{name}", "default": argparse.SUPPRESS}
        text = str(f.type)  # an annotation string (from __future__ import annotations)
        named = _named_choices(section, name)
        if isinstance(default, bool):
            kwargs.update(type=_bool, metavar="BOOL")
        elif isinstance(default, list):
            item = int if "int" in text else float if "float" in text else str
            kwargs.update(nargs="*", type=item,
                          metavar={int: "N", float: "Q", str: "COL"}[item])
        elif isinstance(default, int):
            kwargs.update(type=int, metavar="N")
        elif isinstance(default, float):
            kwargs.update(type=float, metavar=name.upper())
        elif default is None or "None" in text:
            # The data section's free-text option names a column (--weight COL).
            kwargs.update(type=_optional_str,
                          metavar="NAME" if named else "COL" if section == "data" else "VALUE")
        else:
            kwargs.update(type=str, metavar="NAME" if named else "VALUE")
            if choices(section, name):
                kwargs["choices"] = choices(section, name)
        parts = [docs.get(name, "")]
        if named:
            parts.append(f"One of: {', '.join(named)}.")
        parts.append(f"Default: {json.dumps(default)}.")
        kwargs["help"] = " ".join(p for p in parts if p).replace("%", "%%")
        groups[section].add_argument(flag, **kwargs)


def flag_overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {k[4:]: v for k, v in vars(args).items() if k.startswith("opt_")}


# -- commands ------------------------------------------------------------------
# What each score is computed on: printed beside the table, so no one reads a
# validation score (the rows that picked the epoch) as a test score.


def _print_metrics(metrics: dict, out=None) -> None:
    from .metrics import SCORE_ROWS

    out = out or sys.stdout
    # Scored rows only: "cv" holds one RMSE per fold, printed on its own line below.
    rows = [(split, m) for split, m in metrics.items()
            if split != "cv" and isinstance(m, dict) and "rmse" in m]
    if not rows:
        return
    keys = ["rmse", "mae", "r2", "mape"]
    print(f"{'scored on':<10}" + "".join(f"{k:>12}" for k in keys) + f"{'rows':>8}", file=out)
    def cells(m: dict) -> str:
        return "".join(f"{m[k]:>12.4g}" if k in m else f"{'-':>12}" for k in keys)

    for split, m in rows:
        print(f"{split:<10}{cells(m)}{m.get('n', ''):>8}", file=out)
        for name, per in (m.get("per_target") or {}).items():  # several targets: each one
            print(f"{'  ' + str(name):<10}{cells(per)}", file=out)
        levels = m.get("quantiles") or {}
        if levels:  # a quantile model: does each level hold its share below it?
            print("  quantiles: " + "; ".join(
                f"{q}: {v['below']:.1%} below (pinball {v['pinball']:.4g})"
                for q, v in levels.items()), file=out)
    for split, _ in rows:
        if split in SCORE_ROWS:
            print(f"  {split}: {SCORE_ROWS[split]}", file=out)
    targets = max((len(m.get("per_target") or {}) for _, m in rows), default=0)
    if targets:
        print(f"  a split's first line is the mean over its {targets} targets (each in its own "
              "units); the indented lines are the targets", file=out)
    refit = (metrics.get("training") or {}).get("refit")
    if isinstance(refit, dict):
        print(f"  the saved model was refit on all {refit['rows']} training and validation rows "
              f"for {refit['epochs']} epochs;\n  the val score is the early-stopped network's",
              file=out)
    weighted = sorted({str(m["weighted_by"]) for _, m in rows if "weighted_by" in m})
    if weighted:
        print(f"  each row weighted by column {', '.join(weighted)}", file=out)
    if "test" not in metrics and "data" not in metrics:
        print("  no test rows were kept (--test-size 0.2 or --test-data FILE holds some out)",
              file=out)
    iv = metrics.get("intervals")
    if isinstance(iv, dict) and isinstance(iv.get(f"test_{iv.get('mode')}"), dict):
        t = iv[f"test_{iv['mode']}"]
        width = t["mean_width"] if isinstance(t["mean_width"], float) else t["mean_width"][0]
        if t.get("finite") is False:
            print(f"{iv['level']:.0%} intervals ({iv['mode']}, {iv['calibration']}): infinite, "
                  f"too few calibration rows ({iv.get('calibration_rows')}) for that level",
                  file=out)
        else:
            per = t.get("coverage_per_target")
            each = f" (per target {', '.join(f'{c:.1%}' for c in per)})" if per else ""
            print(f"{iv['level']:.0%} intervals ({iv['mode']}, {iv['calibration']}): test "
                  f"coverage {t['coverage']:.1%}{each}, mean width {width:.4g}", file=out)
    cv = metrics.get("cv")
    if cv:
        print(f"cv: {cv['folds']}-fold RMSE {cv['rmse_mean']:.4g} ± {cv['rmse_std']:.4g}", file=out)


def _print_run(metrics: dict, run_dir: Path | None) -> None:
    """The metrics table, the run directory and its report."""
    _print_metrics(metrics)
    print(f"run directory: {run_dir}")
    if run_dir is not None and (run_dir / "predictions_oof.csv").is_file():
        print(f"out-of-fold predictions: {run_dir / 'predictions_oof.csv'}")
    if run_dir is not None and (run_dir / "report.html").is_file():
        print(f"report: {run_dir / 'report.html'}")


STRICT_HELP = (
    "stop with an error on cells the model cannot use as trained (text in a numeric "
    "column, no date in a date column, unseen categories); default: read them as "
    "missing with one warning"
)


def _default_out(stem: str) -> Path:
    import time

    return Path("runs") / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def cmd_fit(args: argparse.Namespace) -> int:
    from .api import fit

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
    if run.dir is not None:  # None: an extra process of a multi-process run
        _print_roles(run)
        _print_run(run.metrics, run.dir)
    return 0


def _print_roles(run) -> None:
    """One line per column role, so no type decision is silent."""
    print("columns:")
    for line in run.model.schema.describe():
        print(f"  {line}")


def _first_names(columns: Any, limit: int = 12) -> str:
    names = [str(c) for c in columns]
    return ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _refuse_to_destroy(out: str | Path, data: str | None = None, model: str | None = None,
                      flag: str = "--output") -> None:
    """A ``ConfigError`` if writing ``out`` would replace the input table or the model."""
    out = Path(out)
    if not out.exists():
        return
    inputs: list[tuple[Path, str]] = []
    if data is not None:
        inputs.append((Path(data), "the input table"))
    if model is not None:
        run = Path(model) if Path(model).is_dir() else Path(model).parent
        inputs += [(run / "model.json", "the model's file"),
                   (run / "model.safetensors", "the model's weights")]
    for path, what in inputs:
        if path.exists() and os.path.samefile(out, path):
            raise ConfigError(f"{flag} {out} is {what}; writing there would destroy it - "
                              "choose another file")


def cmd_predict(args: argparse.Namespace) -> int:
    import pandas as pd

    from .artifact import atomic_write_bytes, load
    from .data import read_table
    from .data.io import table_bytes
    from .errors import DataError

    if args.output not in (None, "-"):  # before any work: what it would overwrite
        _refuse_to_destroy(args.output, args.data, args.model)
    model = load(args.model)
    data = read_table(args.data)
    keep = list(dict.fromkeys(args.keep or []))  # in the order given, once each
    missing = [c for c in keep if c not in data.columns]
    if missing:
        raise DataError(
            f"--keep column(s) {', '.join(missing)} not in {args.data}; "
            f"its columns are: {_first_names(data.columns)}"
        )
    frame = model.predict_frame(data, strict=args.strict, interval=args.interval,
                                mode=args.interval_mode)
    if keep:
        clash = [c for c in keep if c in frame.columns]
        if clash:
            raise DataError(
                f"--keep column(s) {', '.join(clash)} would repeat a prediction column's name; "
                "rename them in the data"
            )
        kept = data[keep].reset_index(drop=True)
        frame = pd.concat([kept, frame.reset_index(drop=True)], axis=1)
    if args.output in (None, "-"):
        frame.to_csv(sys.stdout, index=False)
    else:
        out = Path(args.output)  # checked against the inputs before any work
        atomic_write_bytes(out, table_bytes(frame, out))
        print(f"wrote {len(frame)} predictions to {out}", file=sys.stderr)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .artifact import dumps_standard, load

    metrics = load(args.model).evaluate(args.data, strict=args.strict)
    if args.json:
        print(dumps_standard(metrics))
    else:
        _print_metrics({"data": metrics})
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .artifact import load
    from .export import export_onnx, export_torchscript, sidecar_path

    if not args.onnx and not args.torchscript:
        raise ConfigError("export needs --onnx FILE or --torchscript FILE (or both)")
    if args.float32 and not args.onnx:
        raise ConfigError("--float32 sets the ONNX graph's input type; add --onnx FILE (a "
                          "TorchScript module takes float32 or float64 as it comes)")
    for flag, path in (("--onnx", args.onnx), ("--torchscript", args.torchscript)):
        if path:
            for target in (Path(path), sidecar_path(path)):
                _refuse_to_destroy(target, model=args.model, flag=flag)
    model = load(args.model)
    written = []
    if args.onnx:
        written.append(export_onnx(model, args.onnx, float32=args.float32))
    if args.torchscript:
        written.append(export_torchscript(model, args.torchscript))
    for path in written:
        print(f"wrote {path} and {sidecar_path(path)}")
    n_num, n_cat = len(model.preprocessor._num_names), len(model.schema.categorical)
    inputs = []
    if n_num:
        dtype = "float32" if args.float32 else "float64"
        inputs.append(f"numeric {dtype} (N, {n_num}), NaN = missing")
    if n_cat:
        inputs.append(f"categorical int64 (N, {n_cat}), codes from the JSON, 0 = missing or unseen")
    outputs = f"prediction float32 (N, {len(model.targets)})"
    if model.quantiles:
        levels = ", ".join(f"{q:g}" for q in model.quantiles)
        outputs += (f" and quantiles float32 (N, {len(model.targets)}, {len(model.quantiles)}) "
                    f"at levels {levels}")
    print(f"inputs: {'; '.join(inputs)}; output: {outputs} "
          f"in target units ({', '.join(model.targets)})")
    return 0


def cmd_importance(args: argparse.Namespace) -> int:
    from .artifact import atomic_write_bytes
    from .data.io import table_bytes
    from .feature_importance import importance

    if args.output not in (None, "-"):  # before any work: what it would overwrite
        _refuse_to_destroy(args.output, args.data, args.model)
    table = importance(args.model, args.data, repeats=args.repeats, scoring=args.scoring,
                       seed=args.seed, max_rows=args.max_rows, strict=args.strict)
    if args.output in (None, "-"):
        drop = "R² decrease" if args.scoring == "r2" else f"{args.scoring.upper()} increase"
        print(f"permutation importance on {table.attrs['rows']} rows, {args.repeats} shuffles "
              f"per column ({drop} when the column is shuffled; baseline "
              f"{args.scoring} {table.attrs['baseline']:.4g})")
        width = max([len("column"), *(len(f) for f in table.feature)])
        print(f"{'column':<{width}}  {'role':<11}{'importance':>12}{'std':>12}")
        for r in table.itertuples(index=False):
            print(f"{r.feature:<{width}}  {r.role:<11}{r.importance:>12.4g}{r.std:>12.4g}")
    else:
        out = Path(args.output)
        atomic_write_bytes(out, table_bytes(table, out))
        print(f"wrote the importance of {len(table)} columns to {out}", file=sys.stderr)
    return 0


def _holds_demo_run(out: Path, features: list[str]) -> bool:
    """Whether ``out`` is empty or holds an earlier demo run (the diabetes model)."""
    if not out.is_dir() or not any(out.iterdir()):
        return True
    try:
        schema = json.loads((out / "model.json").read_text(encoding="utf-8"))["schema"]
        return schema["targets"] == ["target"] and schema["numeric"] == features
    except (OSError, ValueError, KeyError, TypeError):
        return False


def cmd_demo(args: argparse.Namespace) -> int:
    from sklearn.datasets import load_diabetes

    from .api import fit

    frame = load_diabetes(as_frame=True).frame
    out = Path(args.out)
    print(
        f"demo: scikit-learn's diabetes data ({len(frame)} patients, 10 features, "
        "target: disease progression after one year)"
    )
    # The demo holds out a test split (fit itself keeps none unless asked).
    options = {"test_size": 0.2, **flag_overrides(args)}
    # Running the demo again replaces its own earlier run, never another model.
    overwrite = args.overwrite or _holds_demo_run(out, list(frame.columns[:-1]))
    run = fit(frame, "target", out=out, overwrite=overwrite, **options)
    if run.dir is None:
        return 0
    _print_metrics(run.metrics)
    t = run.metrics.get("training", {})
    print(f"trained {t.get('epochs')} epochs in {t.get('seconds', 0):.1f} s "
          f"(best epoch {t.get('best_epoch')}; batch {t.get('batch_size')}, "
          f"patience {t.get('patience')})")
    _print_run({}, run.dir)
    print(f"next: tabresnet predict {run.dir} YOUR_TABLE.csv -o predictions.csv "
          "(a table with the feature columns above), or tabresnet fit YOUR_TABLE.csv -t TARGET")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from .training.fit import resolve_config  # config problems: one ConfigError line

    cfg = resolve_config(args.config, flag_overrides(args))
    sys.stdout.write(cfg.to_yaml())
    return 0


def _pack(text: str) -> int | str:
    """``--pack``: a positive number of members or ``auto``."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of members or 'auto', got {text!r}"
                                         ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def cmd_tune(args: argparse.Namespace) -> int:
    if args.show_space:
        from .tuning.space import SearchSpace

        text = SearchSpace.load(args.space).text
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return 0
    if not args.data or not args.target:
        raise ConfigError("tune needs DATA and --target COLUMN (or --show-space)")
    if args.no_ensemble and not args.pack:
        raise ConfigError("--no-ensemble chooses among a population's members; add --pack P")
    from .api import tune

    overrides = flag_overrides(args)
    if "bag" in overrides:
        raise ConfigError("tune saves a bag through --cv K: the best configuration's K fold "
                          "networks (the default on small tables); drop --bag")
    result = tune(
        args.data,
        args.target if len(args.target) > 1 else args.target[0],
        config=args.config,
        trials=args.trials,
        timeout=args.timeout,
        space=Path(args.space) if args.space else None,  # a file, even one not there
        sampler=args.sampler,
        pruner=args.pruner,
        storage=args.storage,
        study_name=args.study,
        jobs=args.jobs,
        cv=args.cv,
        out=Path(args.out) if args.out else Path("runs") / f"tune-{Path(args.data).stem}",
        val_data=args.val_data,
        test_data=args.test_data,
        progress=overrides.pop("progress", "auto"),
        report=not args.no_report,
        defaults_first=not args.no_defaults_first,
        bag=False if args.no_bag else None,
        **({"pack": args.pack, "pack_ensemble": not args.no_ensemble} if args.pack else {}),
        **overrides,
    )
    counts = ", ".join(f"{n} {s.lower()}" for s, n in sorted(result.counts.items()))
    print(f"study {result.study.study_name}: {counts}"
          + (" (interrupted)" if result.interrupted else ""))
    tuning = result.metrics.get("tuning", {})
    folds = int(tuning.get("cv_folds") or 0)
    score = (f"validation RMSE {result.best_value:.5g} (mean of its {folds} folds)" if folds >= 2
             else f"validation RMSE {result.best_value:.5g}")
    print(f"best trial {result.best_trial}: {score}")
    for name, value in result.best_params.items():
        print(f"  {name} = {value}")
    chosen = tuning.get("ensemble")
    if chosen:
        parts = ", ".join(f"trial {c['trial']} ({c['weight']:.2f})" for c in chosen)
        print(f"saved {'ensemble' if len(chosen) > 1 else 'member'} of the population: {parts}")
        if folds >= 2:
            print(f"  each trial as its {folds} fold networks; out-of-fold RMSE "
                  f"{tuning['ensemble_oof_rmse']:.5g} (every non-test row predicted by the "
                  "networks that did not train on it)")
        else:
            print(f"  validation RMSE {tuning['ensemble_val_rmse']:.5g} (the validation rows "
                  "also chose the members)")
    elif result.model.n_members > 1:
        print(f"retrained best configuration: a bag of {result.model.n_members} networks, one "
              "per fold (oof: each scored on the fold it did not train on)")
    else:
        print("retrained best configuration:")
    _print_run(result.metrics, result.dir)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from .show import (
        DEFAULT_INPUT_DIM,
        check_graph_path,
        describe,
        describe_trained,
        draw_graph,
        load_model_config,
    )

    if args.model is not None:  # a saved model: its network as trained
        given = [f for f, v in (("--config", args.config), ("--graph", args.graph),
                               ("--input-dim", args.input_dim), ("--output-dim", args.output_dim))
                 if v is not None]
        if given:
            raise ConfigError(f"{', '.join(given)}: for a network built from a config, not a "
                              f"saved MODEL; drop {'it' if len(given) == 1 else 'them'} or MODEL")
        from .artifact import load

        print(describe_trained(load(args.model)))
        return 0
    cfg = load_model_config(args.config)
    input_dim, output_dim = args.input_dim or DEFAULT_INPUT_DIM, args.output_dim or 1
    if args.graph:
        check_graph_path(args.graph)  # a bad suffix fails before anything is printed
    print(describe(cfg, input_dim, output_dim))
    if args.graph:
        path = draw_graph(cfg.build(input_dim, output_dim), input_dim, args.graph)
        print(f"graph written to {path}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    import matplotlib

    from .report import write_report

    matplotlib.use("Agg")  # a command-line tool never needs a window
    print(f"report: {write_report(args.run_dir, args.out)}")
    return 0


def _level(text: str) -> float:
    from .calibrate import check_level

    try:
        return check_level(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _folds(value: str) -> int | str:
    if value.strip().lower() == "auto":
        return "auto"
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of folds or 'auto', however: {value!r}"
        ) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


# -- parser ----------------------------------------------------------------------
class Parser(argparse.ArgumentParser):
    """argparse with whole option names only and a one-line usage error.

    Abbreviations are refused (``--weight`` is not ``--weight-decay``: a new
    option could otherwise change what an abbreviation means), and a usage
    error prints ``error: ... (see tabresnet fit --help)`` instead of the
    whole usage. Subcommand parsers are of this class too.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self.commands: dict[str, argparse.ArgumentParser] = {}

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_USAGE, f"error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="tabresnet",
        description="Residual networks for tabular regression: fit, tune, predict, report.",
    )
    parser.add_argument("--version", action="version", version=f"tabresnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("demo", help="fit and evaluate on scikit-learn's bundled diabetes data")
    p.add_argument("--out", default="runs/demo", help="run directory (default: runs/demo)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a non-empty --out (an earlier demo run is replaced anyway)")
    add_config_flags(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("fit", help="train a model on a table and write a run directory")
    p.add_argument("data", help=DATA_HELP)
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
    p.add_argument("data", help=DATA_HELP)
    p.add_argument("-o", "--output",
                   help="CSV (.csv, .tsv, compressed as .csv.gz ...) or Parquet (.parquet, .pq) "
                        "file to write (default: CSV on stdout)")
    p.add_argument("--keep", nargs="+", metavar="COL", default=[],
                   help="columns of DATA to copy into the output, before the predictions "
                        "(e.g. an identifier)")
    p.add_argument("--strict", action="store_true", help=STRICT_HELP)
    p.add_argument("--interval", type=_level, metavar="LEVEL",
                   help="add <target>_lower and <target>_upper columns: a conformal prediction "
                        "interval that holds the true value of this share of new rows "
                        "(e.g. 0.9), calibrated when the model was fitted")
    p.add_argument("--interval-mode", choices=("auto", "adaptive", "constant"), default="auto",
                   help="adaptive: narrower where the ensemble's members agree; constant: one "
                        "width for all rows; auto: the calibration's choice (default)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("evaluate", help="RMSE, MAE, R2, MAPE of a saved model on a table")
    p.add_argument("model", help="run directory or model.json")
    p.add_argument("data", help=f"{DATA_HELP}, with the target column(s)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--strict", action="store_true", help=STRICT_HELP)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "export",
        help="write a model as one ONNX or TorchScript graph that runs without Python",
        description=(
            "Write the network with its numeric preprocessing folded in (imputation, missing "
            "indicators, quantile transform or scaling, the target mapped back to its units): "
            "the graph takes raw numeric columns (float64, NaN for missing) and categorical "
            "codes (int64) and returns predictions in target units; a quantile model "
            "(--loss quantile) also returns all its levels, sorted, as a second output "
            "'quantiles' (N, targets, levels) (TorchScript: the module's quantiles method). "
            "A JSON file beside it (FILE.json) lists the input columns in order, each "
            "category's code (0 = missing or unseen), the targets, the outputs, the quantile "
            "levels and the ONNX opset. A bag or an ensemble is one graph."
        ),
    )
    p.add_argument("model", help="run directory or model.json")
    p.add_argument("--onnx", metavar="FILE",
                   help="ONNX file to write (e.g. model.onnx), for onnxruntime and other "
                        "ONNX runtimes; checked once with onnxruntime when it is installed")
    p.add_argument("--torchscript", metavar="FILE",
                   help="TorchScript file to write (e.g. model.pt), for torch.jit.load and "
                        "LibTorch (C++); takes float64 or float32 numeric input")
    p.add_argument("--float32", action="store_true",
                   help="ONNX: take the numeric input as float32 instead of float64; values "
                        "rounded to float32 can move predictions by about 1e-5 relative")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "importance",
        help="permutation feature importance of a saved model on a table",
        description=(
            "How much the score worsens when one column's values are shuffled across the rows "
            "(permutation importance: Breiman 2001, Fisher et al. 2019), per source column: "
            "its one-hot, indicator and embedding inputs move together. Give rows the model "
            "did not train on (test or validation rows), with the target column(s)."
        ),
    )
    p.add_argument("model", help="run directory or model.json")
    p.add_argument("data", help=f"{DATA_HELP}, with the feature and target columns")
    p.add_argument("--repeats", type=_positive_int, default=5, metavar="N",
                   help="shuffles per column; the std column is their spread (default: 5)")
    p.add_argument("--scoring", choices=["rmse", "mae", "r2"], default="rmse",
                   help="the score whose drop is measured (default: rmse)")
    p.add_argument("--seed", type=int, default=0, help="seed of the shuffles (default: 0)")
    p.add_argument("--max-rows", type=_positive_int, metavar="N",
                   help="score on a random sample of N rows per shuffle (default: every row)")
    p.add_argument("-o", "--output", help="CSV or Parquet file to write, as predict's "
                   "--output (default: a table on stdout)")
    p.add_argument("--strict", action="store_true", help=STRICT_HELP)
    p.set_defaults(func=cmd_importance)

    p = sub.add_parser("config", help="print the run config (defaults, a file, and flags)")
    p.add_argument("--config", "-c", help="YAML run config to start from")
    add_config_flags(p)
    p.set_defaults(func=cmd_config)

    p = sub.add_parser(
        "tune",
        help="search hyperparameters with Optuna, then retrain and save the best model",
        description=(
            "Search the hyperparameters with Optuna (pruning bad trials early), retrain the "
            "best configuration and save it as a run directory, like fit. Rerunning the same "
            "command resumes the study (--out defaults to runs/tune-<data name>). Options the "
            "search space does not list take the values of the run-config flags below."
        ),
    )
    p.add_argument("data", nargs="?", help=DATA_HELP)
    p.add_argument("--target", "-t", nargs="+", help="target column(s)")
    p.add_argument("--config", "-c", help="YAML run config for the options not searched")
    p.add_argument("--trials", type=int, default=20,
                   help="finished trials (complete, pruned, or stopped at the time limit) "
                        "the study should hold in total, earlier runs and other workers "
                        "included (default: 20)")
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
                        "of the bag of the K fold networks (not with --pack)")
    p.add_argument("--pack", metavar="P", type=_pack,
                   help="train P configurations at a time as one packed network, each a trial "
                        "refilled when it ends; block, norm, activation, groups, embeddings, "
                        "optimizer, batch size and loss are then one value per pack (the "
                        "config's); with --cv K (or auto's folds) each trial trains one "
                        "member per fold, P*K networks at a time; 'auto': by the table's rows "
                        "(16 up to 5,000), and with --timeout fewer at once, so that the "
                        "trials started finish in time")
    p.add_argument("--no-ensemble", action="store_true",
                   help="with --pack: save the single best trial (with --cv its K fold "
                        "networks) instead of the greedy ensemble selection of the finished "
                        "trials, chosen on the validation rows or, with --cv, on out-of-fold "
                        "predictions")
    p.add_argument("--no-defaults-first", action="store_true",
                   help="do not make fit's configuration the first trial of a new study")
    add_config_flags(p)
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser(
        "show",
        help="print a network's module tree and parameter count; optionally draw its graph",
        description="Build the network a config describes, print its module tree and "
        "parameter counts, and optionally render its autograd graph (needs Graphviz); "
        "or, given a saved MODEL, print the network it was trained as and the columns "
        "it reads.",
    )
    p.add_argument("model", nargs="?", metavar="MODEL",
                   help="a run directory or model.json: describe its trained network")
    p.add_argument("--config", "-c",
                   help="YAML run config (its model: section) or bare model options; "
                        "default: defaults")
    p.add_argument("--graph", metavar="FILE", help="draw the graph to FILE (.png, .svg or .pdf)")
    # A model config does not know the table it will see; the chapter's examples
    # use 10 input features, so a tree drawn without --input-dim matches them.
    p.add_argument("--input-dim", type=_positive_int, default=None, metavar="N",
                   help="number of input features (default: 10)")
    p.add_argument("--output-dim", type=_positive_int, default=None, metavar="M",
                   help="number of regression targets (default: 1)")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser(
        "report",
        help="write a self-contained HTML report of a run directory",
        description=(
            "Write one HTML file (images embedded, no network needed) with the data summary, "
            "the model, learning curves, test-set plots, metrics and, for tuning runs, "
            "the optimisation plots."
        ),
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory written by fit or tune")
    p.add_argument("-o", "--out", metavar="OUT.html",
                   help="where to write the report (default: RUN_DIR/report.html)")
    p.set_defaults(func=cmd_report)
    parser.commands = dict(sub.choices)  # name -> its parser
    return parser


def _one_line_warnings():
    """Show tabresnet's own warnings as ``warning: message`` (no source path and line), once.

    A bag or a cross-validation reads the columns once per fold, from more than
    one place in the code, so Python's once-per-location rule would repeat them.
    """
    import warnings

    from .errors import TabResNetWarning

    original = warnings.showwarning
    shown: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, TabResNetWarning):
            if str(message) not in shown:
                shown.add(str(message))
                print(f"warning: {message}", file=file or sys.stderr)
        else:
            original(message, category, filename, lineno, file, line)

    return show, original


# What to do about an OS error, by errno.
_OS_WAY_OUT = {
    errno.ENOSPC: "the disk is full; free some space or write elsewhere",
    errno.EDQUOT: "the disk quota is exceeded; free some space or write elsewhere",
    errno.EACCES: "check its permissions or choose another path",
    errno.EPERM: "check its permissions or choose another path",
    errno.EROFS: "the file system is read-only; choose another path",
    errno.EISDIR: "it is a folder; give a file name",
    errno.ENOTDIR: "a part of the path is not a folder; check the path",
    errno.ENOENT: "check the path",
    errno.ENAMETOOLONG: "choose a shorter path",
}


def os_error_line(exc: OSError) -> str:
    """One line for an OS error: the problem, the path and the way out.

    >>> os_error_line(PermissionError(13, "Permission denied", "/ro/run"))
    "error: permission denied: '/ro/run'; check its permissions or choose another path"
    >>> os_error_line(OSError(28, "No space left on device"))
    'error: no space left on device; the disk is full; free some space or write elsewhere'
    """
    if exc.strerror is None:  # raised with a message of ours, e.g. "config file not found: x"
        return f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    text = exc.strerror[:1].lower() + exc.strerror[1:]
    if exc.filename is not None:
        text += f": {str(exc.filename)!r}"
    way_out = _OS_WAY_OUT.get(exc.errno or 0)
    return f"error: {text}" + (f"; {way_out}" if way_out else "")


def main(argv: list[str] | None = None) -> int:
    """Run the command; bad input and OS errors print one ``error:`` line and return 2."""
    import warnings

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # named by the command's parser, so its --help is the one suggested
        parser.commands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    show, original = _one_line_warnings()
    warnings.showwarning = show
    try:
        return int(args.func(args) or 0)
    except TabResNetError as exc:
        print(f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
              file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `tabresnet predict ... | head`: the reader has what it wanted
        with contextlib.suppress(OSError, ValueError):  # no flush into the closed pipe at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_SIGPIPE
    except OSError as exc:
        print(os_error_line(exc), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = original


def entry(argv: list[str] | None = None) -> int:
    """The ``tabresnet`` command: :func:`main`, then a quick exit.

    Python's shutdown runs a last garbage collection over every object torch and
    Lightning made at import, 1-2 s of a CPU for nothing: the command's files are
    written and closed by then. :func:`gc.freeze` takes those objects out of the
    collector's view first; exit handlers and finalisers still run.
    """
    code = main(argv)
    gc.freeze()
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(entry())
