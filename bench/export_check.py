"""Exported ONNX (and TorchScript) predictions against ``tabresnet predict`` on the suite.

    nice -n 10 python bench/export_check.py                 # all ten tables, about 10 min
    python bench/export_check.py --tables diabetes concrete --no-docs

For each table of the development suite (``bench/suite.py``): fit a model on
the training and validation rows of :func:`bench.datasets.split` (seed 0) with
a few epochs (the check is about the export, not the fit), each table with
another model variant (numeric embedding, in-network ensemble kind, scaling,
a bag), so that together they cover what ``export`` must fold in. The test
rows are then damaged: 10% of the numeric cells and 10% of the categorical
cells made missing, 3% of the categorical cells an unseen category. Written to
CSV, they go through the commands a user runs::

    tabresnet predict RUN test.csv -o predictions.csv
    tabresnet export RUN --onnx model.onnx --torchscript model.pt

and the ONNX graph runs in onnxruntime on the codes ``model.onnx.json``
gives (:func:`tabresnet.export.inputs_from_frame`). The bar (issue 15):
every prediction within 1e-4 relative of ``predict``'s; for the quantile model
(``--loss quantile``), every level of the graph's ``quantiles`` output and of
the TorchScript module's ``quantiles`` method within 1e-4 relative of the
``<target>_q<level>`` columns ``predict`` writes. Writes
``bench/results/export_check.json`` and the block between :data:`BEGIN` and
:data:`END` of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "src"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench.datasets import split  # noqa: E402
from bench.suite import SUITE, load_table  # noqa: E402

BEGIN, END = "<!-- export-check:begin -->", "<!-- export-check:end -->"
DOC = ROOT / "docs" / "benchmarks.md"
OUT = ROOT / "bench" / "results" / "export_check.json"
TOLERANCE = 1e-4

# One variant per table; together they cover the embeddings, the ensemble
# kinds, the three numeric transforms, a bag and quantile regression (the
# graph's second output).
VARIANTS: dict[str, tuple[str, dict]] = {
    "diabetes": ("defaults: PLE, TabM-mini k=8, quantile", {}),
    "housing": ("PLR, one network", {"num_embedding": "plr", "ensemble_size": 1}),
    "sacramento": ("bag of 3 (PLE, k=2)", {"bag": 3, "ensemble_size": 2}),
    "concrete": ("packed k=4, standard scaling",
                 {"ensemble": "packed", "ensemble_size": 4, "numeric_transform": "standard"}),
    "bwages": ("BatchEnsemble k=4, no numeric embedding",
               {"ensemble": "batch", "ensemble_size": 4, "num_embedding": "none"}),
    "ames": ("defaults, --loss quantile 0.1 0.5 0.9",
             {"loss": "quantile", "quantiles": [0.1, 0.5, 0.9]}),
    "nmes1988": ("PLR, TabM-mini k=4, no scaling",
                 {"num_embedding": "plr", "ensemble_size": 4, "numeric_transform": "none"}),
    "computers": ("bag of 2 (PLR, k=1)", {"bag": 2, "num_embedding": "plr", "ensemble_size": 1}),
    "cps1988": ("packed k=4, PLE", {"ensemble": "packed", "ensemble_size": 4}),
    "diamonds": ("defaults: PLE, TabM-mini k=8, quantile", {}),
}


def damage(frame: pd.DataFrame, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Missing numeric and categorical cells, and unseen categories; returns the counts."""
    rng = np.random.default_rng(seed)
    out = frame.copy()
    counts = {"numeric_missing": 0, "categorical_missing": 0, "unseen": 0}
    for col in out.columns:
        if isinstance(out[col].dtype, pd.CategoricalDtype) or out[col].dtype == object:
            values = out[col].astype(object)
            gone = rng.random(len(out)) < 0.10
            unseen = ~gone & (rng.random(len(out)) < 0.03)
            values[gone] = None
            values[unseen] = "never-seen-in-training"
            out[col] = values
            counts["categorical_missing"] += int(gone.sum())
            counts["unseen"] += int(unseen.sum())
        else:
            gone = rng.random(len(out)) < 0.10
            out[col] = out[col].astype("float64").mask(gone)
            counts["numeric_missing"] += int(gone.sum())
    return out, counts


def _cli(*argv: str) -> str:
    """Run a ``tabresnet`` command in this process; its stdout, or an error."""
    from tabresnet.cli import main

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(list(argv))
    if code != 0:
        raise RuntimeError(f"tabresnet {' '.join(argv)} exited with {code}")
    return buffer.getvalue()


def check_table(name: str, max_epochs: int, work: Path) -> dict:
    import onnxruntime as ort
    import torch

    import tabresnet
    from tabresnet.export import inputs_from_frame, read_sidecar

    X, y = load_table(name)
    train, val, test = split(len(X), seed=0)
    frame = X.assign(**{y.name: y})
    label, options = VARIANTS.get(name, ("defaults", {}))
    run_dir = work / name
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tabresnet.fit(frame.iloc[np.concatenate([train, val])], y.name, out=run_dir,
                      max_epochs=max_epochs, progress="none", report=False, seed=0, **options)
    fit_s = time.perf_counter() - started
    damaged, counts = damage(X.iloc[test].reset_index(drop=True))
    data_csv, pred_csv = work / f"{name}_test.csv", work / f"{name}_pred.csv"
    damaged.to_csv(data_csv, index=False)
    _cli("predict", str(run_dir), str(data_csv), "-o", str(pred_csv))
    written = pd.read_csv(pred_csv)
    expected = written[f"{y.name}_pred"].to_numpy()
    onnx_path, ts_path = work / f"{name}.onnx", work / f"{name}.pt"
    started = time.perf_counter()
    _cli("export", str(run_dir), "--onnx", str(onnx_path), "--torchscript", str(ts_path))
    export_s = time.perf_counter() - started
    rows = pd.read_csv(data_csv)  # what a user's program would read
    meta = read_sidecar(onnx_path)
    feeds = inputs_from_frame(rows, meta)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    started = time.perf_counter()
    outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
    onnx_s = time.perf_counter() - started
    got = outputs["prediction"]
    onnx32 = work / f"{name}_float32.onnx"
    _cli("export", str(run_dir), "--onnx", str(onnx32), "--float32")
    session32 = ort.InferenceSession(str(onnx32), providers=["CPUExecutionProvider"])
    got32 = session32.run(["prediction"], inputs_from_frame(rows, read_sidecar(onnx32)))[0]
    scripted = torch.jit.load(str(ts_path))
    numeric = torch.from_numpy(feeds.get("numeric", np.zeros((len(rows), 0), np.float32)))
    categorical = torch.from_numpy(feeds.get("categorical", np.zeros((len(rows), 0), np.int64)))
    with torch.no_grad():
        got_ts = scripted(numeric, categorical).numpy()

    def rel(a: np.ndarray) -> float:
        return float(np.max(np.abs(a[:, 0] - expected) / np.abs(expected)))

    # A quantile model: the graph's (N, 1, Q) levels against predict's y_q<level> columns.
    levels = meta["quantiles"]
    quantiles_rel = None
    if levels:
        want = written[[f"{y.name}_q{q:g}" for q in levels]].to_numpy()
        with torch.no_grad():
            got_q_ts = scripted.quantiles(numeric, categorical).numpy()
        quantiles_rel = max(float(np.max(np.abs(a[:, 0] - want) / np.abs(want)))
                            for a in (outputs["quantiles"], got_q_ts))

    n_missing_rows = int(damaged.isna().any(axis=1).sum())
    return {
        "table": name,
        "variant": label,
        "rows": len(test),
        "rows_with_missing": n_missing_rows,
        **counts,
        "numeric_inputs": int(feeds.get("numeric", np.zeros((0, 0))).shape[1]),
        "categorical_inputs": int(feeds.get("categorical", np.zeros((0, 0))).shape[1]),
        "onnx_max_rel": rel(got),
        "onnx_max_abs": float(np.max(np.abs(got[:, 0] - expected))),
        "torchscript_max_rel": rel(got_ts),
        "onnx_float32_max_rel": rel(got32),
        "quantiles_max_rel": quantiles_rel,
        "onnx_bytes": onnx_path.stat().st_size,
        "fit_s": round(fit_s, 1),
        "export_s": round(export_s, 2),
        "onnx_predict_s": round(onnx_s, 3),
    }


def markdown(results: list[dict], machine: dict, commit: str, max_epochs: int) -> str:
    worst = max(_worst(r) for r in results)
    lines = [
        f"Latest run: {machine['date']}, commit {commit or '?'}, {machine['cpu']} "
        f"({machine['cores']} cores), onnxruntime {machine['onnxruntime']}, torch "
        f"{machine['torch']}; each model fitted for {max_epochs} epochs. "
        f"Worst relative error over all tables: **{worst:.1e}** (bar: {TOLERANCE:g}). "
        "Columns 6-9: the largest relative difference from `tabresnet predict` over the "
        "test rows (numeric input float64 unless `--float32`); column 9, for the quantile "
        "model: every level of the ONNX `quantiles` output and of the TorchScript "
        "`quantiles` method against predict's `<target>_q<level>` columns.",
        "",
        "| table | model | test rows | rows with gaps | numeric / categorical inputs "
        "| ONNX | TorchScript | ONNX, `--float32` input | quantiles | export s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['table']} | {r['variant']} | {r['rows']:,} | {r['rows_with_missing']:,} "
            f"| {r['numeric_inputs']} / {r['categorical_inputs']} | {r['onnx_max_rel']:.1e} "
            f"| {r['torchscript_max_rel']:.1e} | {r['onnx_float32_max_rel']:.1e} "
            f"| {_rel(r['quantiles_max_rel'])} | {r['export_s']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def _rel(value: float | None) -> str:
    return "-" if value is None else f"{value:.1e}"


def _worst(r: dict) -> float:
    """The largest relative difference a table's checks found (the bar is about it)."""
    return max(r["onnx_max_rel"], r["torchscript_max_rel"], r["quantiles_max_rel"] or 0.0)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", nargs="+", choices=list(SUITE), default=list(SUITE))
    parser.add_argument("--max-epochs", type=int, default=2,
                        help="epochs per fit (default: 2; the check is about the export)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"results JSON (default: {OUT})")
    parser.add_argument("--no-docs", action="store_true",
                        help="do not rewrite the block in docs/benchmarks.md")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import onnxruntime
    import torch

    from bench.defaults_suite import git_commit, machine_info
    from bench.run_all import update_doc

    args = parse_args(argv)
    machine = {**machine_info(), "onnxruntime": onnxruntime.__version__,
               "torch": torch.__version__.split("+")[0]}
    commit = git_commit()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.tables:
            r = check_table(name, args.max_epochs, Path(tmp))
            ok = "ok" if _worst(r) <= TOLERANCE else "FAIL"
            print(f"{name:11s} {r['variant']:42s} onnx {r['onnx_max_rel']:.1e}  torchscript "
                  f"{r['torchscript_max_rel']:.1e}  float32 {r['onnx_float32_max_rel']:.1e}  "
                  f"quantiles {_rel(r['quantiles_max_rel'])}  "
                  f"({r['rows_with_missing']}/{r['rows']} rows "
                  f"with gaps, fit {r['fit_s']} s, export {r['export_s']} s)  {ok}", flush=True)
            results.append(r)
    report = {"machine": machine, "commit": commit, "max_epochs": args.max_epochs,
              "tolerance": TOLERANCE, "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    text = markdown(results, machine, commit, args.max_epochs)
    print()
    print(text)
    if not args.no_docs and set(args.tables) == set(SUITE):
        print("docs/benchmarks.md updated" if update_doc(text, DOC, BEGIN, END)
              else f"docs/benchmarks.md has no {BEGIN} block; the results are in {args.out}")
    failed = [r["table"] for r in results if _worst(r) > TOLERANCE]
    if failed:
        print(f"above {TOLERANCE:g}: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
