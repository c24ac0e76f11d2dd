"""Conformal prediction intervals on the development suite (issue 15), one command.

    nice -n 10 python bench/intervals.py                       # 8 smallest tables x 3 seeds
    python bench/intervals.py --datasets diabetes concrete --seeds 0 --max-epochs 20
    python bench/intervals.py --bag 5                          # CV+ from a 5-fold bag
    python bench/intervals.py --from-json                      # the tables from the file only

Each (table, seed) is :func:`tabresnet.fit` with the defaults (a TabM-mini
ensemble of four members, so the members' spread is there) on the suite's 64/16/20
train/validation/test rows (:func:`bench.datasets.split`): the model is
calibrated on the validation rows (split conformal, Lei et al. 2018; with
``--bag K`` CV+ on the out-of-fold rows, Barber et al. 2021) and its 90%
intervals are scored on the test rows in both modes: ``constant`` (one width,
absolute residuals) and ``adaptive`` (residuals over the members' spread plus a
floor). Every fit is appended to ``--out`` (JSON lines) as it ends and a rerun
skips the ones there, so an interrupted run resumes.

The issue's bars: mean test coverage over the seeds between 88% and 92% on
every table, and adaptive intervals at least 10% narrower than constant ones on
average (mean over tables of the ratio of mean widths) at the same coverage.
The summary is printed and replaces the block between :data:`BEGIN` and
:data:`END` of ``docs/benchmarks.md`` (machine, date, commit), unless
``--no-docs``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.datasets import split  # noqa: E402
from bench.suite import SUITE, load_table  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"
OUT = ROOT / "bench" / "results" / "intervals.jsonl"
BEGIN = "<!-- intervals:begin -->"
END = "<!-- intervals:end -->"
LEVEL = 0.9
# The eight smallest tables: cps1988 and diamonds take 5-30 minutes per fit of
# the defaults on a shared 2-core machine.
DEFAULT_DATASETS = list(SUITE)[:8]


def fit_one(name: str, seed: int, overrides: dict) -> tuple[dict, dict | None]:
    """One fit: its row (coverage and mean width of both modes' 90% intervals on the
    test rows) and, without a bag, the numbers the intervals are built from."""
    import warnings

    import pandas as pd

    from tabresnet.calibrate import interval_scores
    from tabresnet.training import fit

    X, y = load_table(name)
    frame = pd.concat([X, y], axis=1)
    tr, va, te = split(len(frame), seed)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        options = {"progress": "none", "num_threads": 1, "seed": seed, **overrides}
        if int(options.get("bag", 0)) > 1:  # the bag's folds cover train and validation
            run = fit(frame.iloc[np.concatenate([tr, va])], y.name,
                      test_data=frame.iloc[te], **options)
        else:
            run = fit(frame.iloc[tr], y.name, val_data=frame.iloc[va],
                      test_data=frame.iloc[te], **options)
    seconds = time.perf_counter() - start
    model, test = run.model, frame.iloc[te]
    row = {"dataset": name, "seed": seed, "rows": len(frame), "seconds": round(seconds, 1),
           "calibration": model.calibration.kind, "test_rmse": float(run.metrics["test"]["rmse"])}
    parts = None
    if model.calibration.kind == "split":
        parts = {}
        for split_name, rows in (("val", frame.iloc[va]), ("test", test)):
            p = model.interval_parts(*model._tensors(rows, strict=False))
            parts[f"{split_name}_y"] = rows[[y.name]].to_numpy(dtype=np.float64)
            parts[f"{split_name}_pred"] = p["pred"]
            if p["spread"] is not None:
                parts[f"{split_name}_spread"] = p["spread"]
        row.update(score(parts))
    else:
        cal = model.calibration
        row.update(calibration_rows=cal.n, default=cal.default, modes={})
        y_true = test[[y.name]].to_numpy(dtype=np.float64)
        for mode in cal.modes:
            _, lower, upper = model.predict_interval(test, LEVEL, mode=mode)
            row["modes"][mode] = interval_scores(y_true, lower[:, None], upper[:, None])
    return row, parts


def score(parts: dict) -> dict:
    """Split-conformal calibration on the validation numbers, scored on the test ones."""
    from tabresnet.calibrate import Calibration, interval_scores

    cal = Calibration.fit_split(parts["val_y"], parts["val_pred"], parts.get("val_spread"),
                                targets=["y"])
    out = {"calibration_rows": cal.n, "default": cal.default, "modes": {}}
    for mode in cal.modes:
        lower, upper = cal.interval(parts["test_pred"], parts.get("test_spread"), LEVEL, mode)
        out["modes"][mode] = interval_scores(parts["test_y"], lower, upper)
    return out


def _done(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def summarise(rows: list[dict], datasets: list[str]) -> dict:
    """Per table: mean coverage and width of each mode over the seeds, the width ratio."""
    out: dict = {"tables": {}}
    for name in datasets:
        mine = [r for r in rows if r["dataset"] == name]
        if not mine:
            continue
        t: dict = {"rows": mine[0]["rows"], "seeds": sorted(r["seed"] for r in mine),
                   "calibration_rows": float(np.mean([r["calibration_rows"] for r in mine])),
                   "seconds": float(np.mean([r["seconds"] for r in mine])),
                   "default": [r["default"] for r in mine]}
        for mode in ("constant", "adaptive"):
            have = [r["modes"][mode] for r in mine if mode in r["modes"]]
            if len(have) == len(mine):
                t[mode] = {"coverage": float(np.mean([h["coverage"] for h in have])),
                           "width": float(np.mean([h["mean_width"] for h in have]))}
        if "adaptive" in t and "constant" in t:
            t["ratio"] = t["adaptive"]["width"] / t["constant"]["width"]
        default = [r["modes"][r["default"]] for r in mine]
        t["default_mode"] = {"coverage": float(np.mean([d["coverage"] for d in default])),
                             "width": float(np.mean([d["mean_width"] for d in default]))}
        out["tables"][name] = t
    tables = out["tables"].values()
    ratios = [t["ratio"] for t in tables if "ratio" in t]
    out["mean_ratio"] = float(np.mean(ratios)) if ratios else None
    for mode in ("constant", "adaptive", "default_mode"):
        cov = [t[mode]["coverage"] for t in tables if mode in t]
        out[f"{mode}_in_bar"] = sum(0.88 <= c <= 0.92 for c in cov)
        out[f"{mode}_n"] = len(cov)
    return out


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True, timeout=10).stdout.strip() or "?"
    except Exception:
        return "?"


def markdown(summary: dict, command: str, machine: str) -> str:
    pct = lambda v: f"{100 * v:.1f}%"  # noqa: E731
    lines = [
        f"Run of {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} (commit {_commit()}), "
        f"`{command}`, on {machine}.",
        "",
        "90% intervals on the test rows; coverage and mean width are means over the seeds; "
        "*ratio* is adaptive width / constant width; *default* is the mode each fit's "
        "calibration chose (a = adaptive, c = constant).",
        "",
        "| table (rows) | seeds | calibration rows | coverage constant | coverage adaptive "
        "| width constant | width adaptive | ratio | default | coverage default |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for name, t in summary["tables"].items():
        c, a = t.get("constant"), t.get("adaptive")
        lines.append(
            f"| {name} ({t['rows']:,}) | {len(t['seeds'])} | {t['calibration_rows']:.0f} "
            f"| {pct(c['coverage']) if c else '-'} | {pct(a['coverage']) if a else '-'} "
            f"| {c['width']:.4g} | {a['width']:.4g} | {t.get('ratio', float('nan')):.3f} "
            f"| {''.join(m[0] for m in t['default'])} | {pct(t['default_mode']['coverage'])} |"
            if c and a else
            f"| {name} ({t['rows']:,}) | {len(t['seeds'])} | {t['calibration_rows']:.0f} "
            f"| {pct(c['coverage']) if c else '-'} | - | {c['width']:.4g} | - | - | c "
            f"| {pct(t['default_mode']['coverage'])} |"
        )
    ratio = summary["mean_ratio"]
    lines += [
        "",
        f"Mean coverage within 88-92%: constant on {summary['constant_in_bar']} of "
        f"{summary['constant_n']} tables, adaptive on {summary['adaptive_in_bar']} of "
        f"{summary['adaptive_n']}, the default mode on {summary['default_mode_in_bar']} of "
        f"{summary['default_mode_n']}. Adaptive / constant mean width, averaged over the "
        f"tables: {ratio:.3f}" + (f" ({100 * abs(1 - ratio):.1f}% "
                                  f"{'narrower' if ratio <= 1 else 'wider'})." if ratio else "."),
    ]
    return "\n".join(lines) + "\n"


def update_doc(block: str, doc: Path = DOC) -> bool:
    from bench.run_all import update_doc as replace_block

    return replace_block(block, doc, begin=BEGIN, end=END)


def machine_info() -> str:
    from bench.defaults_suite import machine_info as info

    m = info()
    return f"{m['cpu']} with {m['cores']} cores (shared; 1-minute load {os.getloadavg()[0]:.1f})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", nargs="+", default=DEFAULT_DATASETS, choices=list(SUITE))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--max-epochs", type=int, default=None, help="default: fit's default")
    p.add_argument("--bag", type=int, default=0, help="K-fold bag: CV+ intervals")
    p.add_argument("--jobs", type=int, default=2, help="fits at a time (processes)")
    p.add_argument("--out", type=Path, default=None, help=f"JSON lines (default: {OUT})")
    p.add_argument("--from-json", action="store_true", help="summarise the file only")
    p.add_argument("--rescore", action="store_true",
                   help="with --from-json: recompute the split-conformal intervals from the "
                        "saved network outputs (<out stem>_parts/ beside --out) with the current "
                        "tabresnet.calibrate")
    p.add_argument("--no-docs", action="store_true", help="leave docs/benchmarks.md alone")
    args = p.parse_args(argv)
    overrides: dict = {}
    if args.max_epochs:
        overrides["max_epochs"] = args.max_epochs
    if args.bag > 1:
        overrides["bag"] = args.bag
    out = args.out or (OUT if not overrides else OUT.with_name(
        "intervals_" + "_".join(f"{k}{v}" for k, v in overrides.items()) + ".jsonl"))
    rows = [r for r in _done(out) if r["dataset"] in args.datasets and r["seed"] in args.seeds]
    # Network outputs on the validation and test rows of each fit (not committed).
    parts_dir = out.with_name(out.stem + "_parts")
    if args.rescore:
        for row in rows:
            path = parts_dir / f"{row['dataset']}_{row['seed']}.npz"
            if row.get("calibration") == "split" and path.is_file():
                with np.load(path) as f:
                    row.update(score(dict(f)))
    if not args.from_json:
        have = {(r["dataset"], r["seed"]) for r in rows}
        todo = [(d, s) for d in args.datasets for s in args.seeds if (d, s) not in have]
        out.parent.mkdir(parents=True, exist_ok=True)
        with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            futures = {pool.submit(fit_one, d, s, overrides): (d, s) for d, s in todo}
            for fut in as_completed(futures):
                d, s = futures[fut]
                try:
                    row, parts = fut.result()
                except Exception as exc:  # record nothing; a rerun tries again
                    print(f"{d} seed {s}: failed: {exc}".splitlines()[0], flush=True)
                    continue
                rows.append(row)
                if parts is not None:  # --rescore recomputes the intervals from these
                    parts_dir.mkdir(parents=True, exist_ok=True)
                    np.savez(parts_dir / f"{d}_{s}.npz", **parts)
                with out.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                modes = ", ".join(f"{m} {v['coverage']:.3f}/{v['mean_width']:.4g}"
                                  for m, v in row["modes"].items())
                print(f"{d} seed {s}: {modes} ({row['seconds']:.0f} s)", flush=True)
    summary = summarise(rows, args.datasets)
    if not summary["tables"]:
        print("nothing to summarise")
        return 1
    command = "python bench/intervals.py " + " ".join(argv if argv is not None else sys.argv[1:])
    block = markdown(summary, command.strip(), machine_info())
    print(block)
    if not args.no_docs and not overrides.get("max_epochs"):
        print("docs/benchmarks.md updated" if update_doc(block) else
              f"docs/benchmarks.md has no {BEGIN} block")
    return 0


if __name__ == "__main__":
    sys.exit(main())
