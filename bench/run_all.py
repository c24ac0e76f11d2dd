"""Benchmark tabresnet against the field: one command reruns everything.

    python bench/run_all.py                      # the full run (about half an hour on 2 cores)
    python bench/run_all.py --quick              # smoke run: 1,000 rows, 1 seed, tiny budgets
    python bench/run_all.py --datasets diabetes concrete --seeds 0 1 2 --tune-budget 60

Every competitor in ``bench.baselines.COMPETITORS`` is trained on the same
64/16/20 split of each dataset for each seed, one after the other in this one
process, so the wall times are comparable as ratios within one run (the
machine may be shared; absolute seconds are not). A competitor whose library or
API is missing is reported as "skipped: not available" and the rest go on.

Writes ``bench/results/field.json`` (every fit, written as it finishes),
``bench/results/field.md`` (the table), ``docs/img/field_rmse.png`` and
``docs/img/field_time.png``, and replaces the generated block of the
"Against the field" section of ``docs/benchmarks.md``. ``--quick`` writes under
``bench/results/quick/`` and leaves ``docs/`` alone. A run of some competitors
(``--competitors``) replaces their rows of the run already in the file and is
listed under its ``reruns`` (:func:`merge_rerun`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench.baselines import COMPETITORS, Settings, SplitData, Unavailable  # noqa: E402
from bench.datasets import DATASETS, load, split, subsample  # noqa: E402

RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "benchmarks.md"
IMG = ROOT / "docs" / "img"
BEGIN, END = "<!-- field-results:begin -->", "<!-- field-results:end -->"
SECTION = "## Against the field (issue 7)"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="smoke run: subsample, one seed, tiny budgets; writes bench/results/quick/")
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    p.add_argument("--seeds", nargs="+", type=int, default=None,
                   help="split/init seeds (default 0 1 2; --quick: 0)")
    p.add_argument("--tune-budget", type=float, default=None,
                   help="seconds of tabresnet.tune per dataset and seed (default 60, --quick: 8)")
    p.add_argument("--tune-trials", type=int, default=None, metavar="N",
                   help="tabresnet.tune runs exactly N trials instead of --tune-budget seconds "
                        "(the same work on any machine: the smoke test uses it)")
    p.add_argument("--competitors", nargs="+", default=list(COMPETITORS), metavar="NAME",
                   help="a subset of: " + "; ".join(COMPETITORS))
    p.add_argument("--max-rows", type=int, default=None,
                   help="subsample every table to at most this many rows (--quick: 1000)")
    # One thread each by default: on a shared 2-core machine two OpenMP threads
    # ran LightGBM 7-17x slower than one (oversubscription), which would time the
    # neighbours' load rather than the models.
    p.add_argument("--threads", type=int, default=1,
                   help="threads per competitor: torch, LightGBM, OpenMP/BLAS (default 1)")
    p.add_argument("--out", type=Path, default=None,
                   help="results folder (default bench/results, --quick: bench/results/quick)")
    p.add_argument("--no-docs", action="store_true", help="do not touch docs/")
    p.add_argument("--from-json", type=Path, default=None, metavar="FIELD_JSON",
                   help="fit nothing: rebuild the table, plots and doc block from this file")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    unknown = sorted(set(args.competitors) - set(COMPETITORS))
    if unknown:
        p.error(f"unknown competitor(s) {unknown}; valid: {list(COMPETITORS)}")
    if args.seeds is None:
        args.seeds = [0] if args.quick else [0, 1, 2]
    if args.tune_budget is None:
        args.tune_budget = 8.0 if args.quick else 60.0
    if args.max_rows is None and args.quick:
        args.max_rows = 1000
    if args.out is None:
        args.out = RESULTS / "quick" if args.quick else RESULTS
    if args.quick:
        args.no_docs = True
    return args


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        cpu = next(line.split(":", 1)[1].strip() for line in out.splitlines()
                   if line.startswith("Model name")) or cpu
    except Exception:  # lscpu missing: keep platform's answer
        pass
    import sklearn
    import torch

    versions = {"python": platform.python_version(), "torch": torch.__version__,
                "scikit-learn": sklearn.__version__}
    for mod in ("lightgbm", "rtdl_revisiting_models", "tabresnet"):
        try:
            versions[mod] = getattr(__import__(mod), "__version__", "installed")
        except ImportError:
            versions[mod] = "missing"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:
        commit = ""
    return {"cpu": cpu, "cores": os.cpu_count(), "versions": versions, "commit": commit,
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def run(args: argparse.Namespace, log=print) -> dict:
    """Fit every competitor on every dataset and seed; returns (and saves) the records."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    # OpenMP/BLAS pools of scikit-learn (HistGradientBoosting), numpy and friends.
    with threadpool_limits(limits=args.threads):
        return _run(args, log)


def _run(args: argparse.Namespace, log) -> dict:
    settings = Settings(threads=args.threads, tune_budget=args.tune_budget, quick=args.quick,
                        tune_trials=args.tune_trials)
    if args.quick:
        settings.max_epochs, settings.patience, settings.max_seconds = 5, 3, 20.0
        settings.tune_hard_factor = 10.0  # start-up dominates tiny trials; let one finish
    args.out.mkdir(parents=True, exist_ok=True)
    command = shlex.join(["python", "bench/run_all.py", *getattr(args, "argv", [])])
    report = {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": command,
        "machine": machine(),
        "settings": {k: v for k, v in vars(settings).items()},
        "seeds": args.seeds,
        "records": [],
    }
    path = args.out / ("field_quick.json" if args.quick else "field.json")
    # A run of some competitors only updates their rows of the full run in the file.
    partial = set(args.competitors) != set(COMPETITORS) and path.is_file()
    earlier = json.loads(path.read_text(encoding="utf-8")) if partial else None

    def merged() -> dict:
        return merge_rerun(earlier, report, args.competitors) if earlier else report

    started = time.perf_counter()
    for name in args.datasets:
        X, y, _ = load(name)
        if args.max_rows:
            X, y = subsample(X, y, args.max_rows)
        for seed in args.seeds:
            data = SplitData.from_indices(X, y, name, seed, *split(len(X), seed))
            for comp in args.competitors:
                rec = {"dataset": name, "seed": seed, "model": comp, "rows": len(X)}
                try:
                    score = COMPETITORS[comp](data, settings)
                except Unavailable as exc:
                    rec.update(status="skipped", reason=str(exc))
                    log(f"{name:9s} seed {seed}  {comp:30s} skipped: not available ({exc})")
                except Exception as exc:  # one broken competitor must not end the run
                    rec.update(status="error", reason=f"{type(exc).__name__}: {exc}")
                    log(f"{name:9s} seed {seed}  {comp:30s} error: {rec['reason']}")
                    log(traceback.format_exc(limit=3))
                else:
                    rec.update(status="ok", test_rmse=score.test_rmse, val_rmse=score.val_rmse,
                               seconds=score.seconds, **score.info)
                    log(f"{name:9s} seed {seed}  {comp:30s} test RMSE {score.test_rmse:12.4f}"
                        f"  val {score.val_rmse:12.4f}  {score.seconds:7.1f} s")
                report["records"].append(rec)
                report["total_seconds"] = time.perf_counter() - started
                report["machine"]["load_average_now"] = [round(x, 2) for x in os.getloadavg()]
                _write_json(path, merged())
    return merged()


def merge_rerun(earlier: dict, rerun: dict, competitors: list[str]) -> dict:
    """``earlier`` with ``rerun``'s records in place of its rows of the same fits.

    The rerun is listed under ``reruns`` (competitors, date, machine, command,
    seconds); the table's header names each one (:func:`rerun_lines`), so it
    says which rows are newer. The run's own date, machine and command stay.

    >>> old = {"command": "python bench/run_all.py", "records": [
    ...     {"dataset": "d", "seed": 0, "model": "A", "test_rmse": 1.0},
    ...     {"dataset": "d", "seed": 0, "model": "B", "test_rmse": 2.0}]}
    >>> new = {"command": "python bench/run_all.py --competitors B", "date": "2026-01-02T03:04",
    ...        "machine": {"commit": "abc"}, "total_seconds": 60.0,
    ...        "records": [{"dataset": "d", "seed": 0, "model": "B", "test_rmse": 1.5}]}
    >>> out = merge_rerun(old, new, ["B"])
    >>> [(r["model"], r["test_rmse"]) for r in out["records"]], out["command"]
    ([('A', 1.0), ('B', 1.5)], 'python bench/run_all.py')
    >>> rerun_lines(out)
    'Rows rerun since: "B" on 2026-01-02 (commit abc, 1 min) with `python bench/run_all.py --competitors B`.'
    """
    fresh = {(r["dataset"], r["seed"], r["model"]): r for r in rerun["records"]}
    merged = dict(earlier)
    records = [fresh.pop((r["dataset"], r["seed"], r["model"]), r) for r in earlier["records"]]
    merged["records"] = records + list(fresh.values())
    entry = {"competitors": list(competitors), "date": rerun.get("date"),
             "machine": rerun.get("machine"), "command": rerun["command"],
             "total_seconds": rerun.get("total_seconds")}
    merged["reruns"] = [*earlier.get("reruns", []), entry]
    return merged


def rerun_lines(report: dict) -> str:
    """The header's sentence naming the ``reruns`` of a report, in order (empty if none).

    An entry's optional ``note`` (written by hand: what a reader should know
    about those rows) goes in its brackets.
    """
    parts = []
    for e in report.get("reruns", []):
        names = ", ".join(f'"{c}"' for c in e["competitors"])
        said = [f"commit {(e.get('machine') or {}).get('commit') or '?'}",
                f"{(e.get('total_seconds') or 0) / 60:.0f} min", *filter(None, [e.get("note")])]
        parts.append(f"{names} on {str(e.get('date'))[:10]} ({', '.join(said)}) "
                     f"with `{e['command']}`")
    return f"Rows rerun since: {'; '.join(parts)}." if parts else ""


def _write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=float) + "\n", encoding="utf-8")
    tmp.replace(path)


# -- tables and plots ---------------------------------------------------------------------------
def summarise(report: dict) -> pd.DataFrame:
    """One row per dataset and competitor: mean/std test RMSE, val RMSE, seconds, ratio to best.

    Means are over the seeds that produced a result; ``failed`` counts the
    others and ``reason`` keeps the first failure's message.
    """
    df = pd.DataFrame(report["records"])
    if "status" not in df:
        return pd.DataFrame()
    rows = []
    for (name, model), g in df.groupby(["dataset", "model"], sort=False):
        ok, bad = g[g.status == "ok"], g[g.status != "ok"]
        row = {"dataset": name, "model": model, "seeds": len(ok), "failed": len(bad),
               "status": "ok" if len(ok) else bad.status.iloc[0],
               "reason": bad.reason.iloc[0] if len(bad) and "reason" in bad else ""}
        if len(ok):
            row.update(test_rmse=ok.test_rmse.mean(), test_std=ok.test_rmse.std(ddof=0),
                       val_rmse=ok.val_rmse.mean(), seconds=ok.seconds.mean())
        rows.append(row)
    out = pd.DataFrame(rows)
    if "test_rmse" not in out:
        return out
    best = out.groupby("dataset").test_rmse.transform("min")
    out["ratio"] = out.test_rmse / best
    return out


def markdown(report: dict, summary: pd.DataFrame) -> str:
    m = report["machine"]
    lines = [
        f"Run of {report['date']} (commit {m.get('commit') or '?'}), "
        f"`{report['command']}`, {report.get('total_seconds', 0) / 60:.1f} min in all, "
        f"on {m['cpu']} with {m['cores']} cores, shared with other work (1-minute load "
        f"average {_load(m, 'load_average_at_start')} at the start, "
        f"{_load(m, 'load_average_now')} at the end): compare seconds as ratios within "
        "this run, not with other runs." + (f" {rerun_lines(report)}" if report.get("reruns") else ""),
        "Versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + ".",
        "",
        "Test RMSE in the target's units, mean ± standard deviation over seeds "
        f"{', '.join(map(str, report['seeds']))}; *× best* divides by the best mean on that "
        "dataset; seconds are mean wall time per fit (preprocessing, training, prediction).",
        "",
    ]
    order = {name: i for i, name in enumerate(COMPETITORS)}
    for name in [d for d in DATASETS if d in set(summary.get("dataset", []))]:
        sub = summary[summary.dataset == name].copy()
        sub["o"] = sub.model.map(order)
        rows = int(next(r["rows"] for r in report["records"] if r["dataset"] == name))
        lines += [f"**{name}** ({rows:,} rows)", "",
                  "| model | test RMSE | × best | val RMSE | seconds |",
                  "|---|---:|---:|---:|---:|"]
        for _, r in sub.sort_values("o").iterrows():
            if r.seeds == 0:
                note = "not available" if r.status == "skipped" else f"failed: {r.reason}"
                lines.append(f"| {r.model} | {note} | | | |")
                continue
            bold = "**" if r.ratio == 1 else ""
            partial = f" ({r.seeds} of {r.seeds + r.failed} seeds: {r.reason})" if r.failed else ""
            lines.append(
                f"| {r.model} | {bold}{_fmt(r.test_rmse)} ± {_fmt(r.test_std, r.test_rmse)}"
                f"{bold}{partial} | "
                f"{r.ratio:.3f} | {_fmt(r.val_rmse)} | {r.seconds:.1f} |"
            )
        lines.append("")
    lines += verdict(summary)
    return "\n".join(lines)


def verdict(summary: pd.DataFrame) -> list[str]:
    """Plain sentences: where each tabresnet entry loses (or wins), and by how much."""
    if "test_rmse" not in summary:
        return []
    ok = summary.dropna(subset=["test_rmse"])
    out = ["Where tabresnet stands (test RMSE of its mean over seeds against the best "
           "other competitor):", ""]
    for name in [d for d in DATASETS if d in set(ok.dataset)]:
        sub = ok[ok.dataset == name].set_index("model")
        others = sub[~sub.index.str.startswith("tabresnet")]
        if others.empty:
            continue
        rival = others.test_rmse.idxmin()
        for ours in [m for m in sub.index if m.startswith("tabresnet")]:
            ratio = sub.test_rmse[ours] / others.test_rmse[rival]
            diff = sub.test_rmse[ours] - others.test_rmse[rival]
            word = "loses to" if ratio > 1 else "beats"
            spread = max(sub.test_std[ours], others.test_std[rival])
            noise = " (within the seed-to-seed spread)" if abs(diff) < spread else ""
            out.append(
                f"- {name}: {ours} {word} {rival} by {abs(ratio - 1):.1%}{noise} "
                f"({_fmt(abs(diff), others.test_rmse[rival])} in target units; "
                f"{_fmt(sub.test_rmse[ours])} vs {_fmt(others.test_rmse[rival])}), "
                f"at {sub.seconds[ours]:.1f} s vs {sub.seconds[rival]:.1f} s per fit."
            )
    failed = summary[(summary.seeds == 0) & summary.model.str.startswith("tabresnet")]
    for _, r in failed.iterrows():
        out.append(f"- {r.dataset}: {r.model} gave no model ({r.reason}).")
    return [*out, ""]


def _load(m: dict, key: str) -> str:
    values = m.get(key) or []
    return f"{values[0]:.1f}" if values else "?"


def _fmt(x: float, like: float | None = None) -> str:
    """Thousands without decimals, smaller numbers with two; ``like`` picks the scale."""
    if not np.isfinite(x):
        return "nan"
    scale = abs(x if like is None else like)
    return f"{x:,.0f}" if scale >= 1000 else f"{x:.2f}" if scale >= 0.1 else f"{x:.3g}"


def plot(summary: pd.DataFrame, img_dir: Path) -> list[Path]:
    """Test RMSE relative to the best per dataset (bars) and RMSE vs seconds (scatter)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = summary.dropna(subset=["test_rmse"]) if "test_rmse" in summary else summary.iloc[:0]
    if ok.empty:
        return []
    img_dir.mkdir(parents=True, exist_ok=True)
    names = [d for d in DATASETS if d in set(ok.dataset)]
    models = [m for m in COMPETITORS if m in set(ok.model)]
    colors = {m: plt.cm.tab10(i) for i, m in enumerate(COMPETITORS)}

    # One row per model in every panel; bars past CLIP (the chapter's ResNet,
    # several times worse) are cut there and labelled, so the close race among
    # the rest stays readable.
    clip = 1.8
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names) + 2.2, 3.6), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        sub = ok[ok.dataset == name].set_index("model")
        best = sub.test_rmse.min()
        for i, m in enumerate(models):
            if m not in sub.index:
                ax.text(1.0, i, "  no result", va="center", fontsize=7, color="0.4")
                continue
            ratio, err = sub.test_rmse[m] / best, sub.test_std[m] / best
            ax.barh(i, min(ratio, clip) - 0.9, left=0.9, color=colors[m],
                    xerr=err if ratio < clip else None)
            if ratio >= clip:
                ax.text(clip, i, f" {ratio:.1f}x", va="center", ha="right", fontsize=7,
                        color="white")
        ax.set_yticks(range(len(models)), models if ax is axes[0][0] else [""] * len(models))
        ax.invert_yaxis()
        ax.axvline(1.0, color="k", lw=0.8)
        ax.set_xlim(0.9, clip)
        ax.set_title(name)
        ax.set_xlabel("test RMSE / best")
    fig.tight_layout()
    rmse_png = img_dir / "field_rmse.png"
    fig.savefig(rmse_png, dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names) + 2.2, 3.4), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        sub = ok[ok.dataset == name]
        for _, r in sub.iterrows():
            ax.scatter(r.seconds, r.ratio, color=colors[r.model], label=r.model, s=30)
        ax.set_xscale("log")
        ax.set_ylim(0.95, min(clip, max(1.05, sub.ratio.max() * 1.05)))
        ax.set_title(name)
        ax.set_xlabel("seconds per fit (log)")
        ax.set_ylabel(f"test RMSE / best (cut at {clip})")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0, 0.86, 1))
    time_png = img_dir / "field_time.png"
    fig.savefig(time_png, dpi=110)
    plt.close(fig)
    return [rmse_png, time_png]


def update_doc(table: str, doc: Path = DOC, begin: str = BEGIN, end: str = END) -> bool:
    """Replace the text between ``begin`` and ``end`` in ``doc`` (by default the generated
    block of the "Against the field" section); False if absent."""
    if not doc.exists():
        return False
    text = doc.read_text(encoding="utf-8")
    if begin not in text or end not in text:
        return False
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    doc.write_text(f"{head}{begin}\n{table.rstrip()}\n{end}{tail}", encoding="utf-8")
    return True


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    if args.from_json is not None:  # redo the tables, plots and doc from a finished run
        report = json.loads(args.from_json.read_text(encoding="utf-8"))
    else:
        report = run(args)
    summary = summarise(report)
    table = markdown(report, summary)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / ("field_quick.md" if args.quick else "field.md")).write_text(
        table + "\n", encoding="utf-8")
    pngs = plot(summary, args.out if args.no_docs else IMG)
    print()
    print(table)
    if not args.no_docs:
        print("docs/benchmarks.md updated" if update_doc(table)
              else f"docs/benchmarks.md has no {BEGIN} block; the table is in {args.out}")
    print(f"wrote {args.out} {' '.join(str(p) for p in pngs)} "
          f"in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
