"""How much narrower can adaptive intervals get on the development suite? One command.

    nice -n 10 python bench/interval_scales.py                 # 8 smallest tables x 3 seeds
    python bench/interval_scales.py --from-parts                # the table from saved fits only
    python bench/interval_scales.py --units raw                 # log-price tables in their own units

Issue 15 asks adaptive (normalised) split-conformal intervals to be at least 10%
narrower than constant-width ones at the same coverage. Normalised scores
``|y - mu(x)| / sigma(x)`` (Papadopoulos, Vovk & Gammerman 2008; Lei et al.
2018, section 5.2) can only be narrower where the errors' scale really varies
from row to row and ``sigma`` follows it. This bench asks both questions on the
suite: it fits the defaults once per (table, seed) on the 64/16/20 split of
:func:`bench.datasets.split` (as ``bench/intervals.py``), calibrates on the
validation rows, scores 90% intervals on the test rows, and compares difficulty
estimates ``sigma``:

- ``spread``: the ensemble members' standard deviation (what tabresnet uses);
- ``iso_pred``: a monotone function of the prediction, fitted to the training
  rows' absolute residuals (isotonic regression);
- ``knn50``: the mean absolute training residual of the 50 nearest training
  rows in the network's input space;
- ``hgb_abs``: gradient boosting fitted to the training rows' absolute residuals;
- ``heldout_ceiling``: gradient boosting fitted to *held-out* absolute residuals
  (validation and test rows, 5-fold cross-fitting). It looks at the test rows'
  residuals (of other folds), so it is not a method: it bounds what a difficulty
  model learned from honest residuals could give.

With ``--units raw`` the tables whose suite target is a logarithm (prices,
wages) are fitted in their own units instead, where the errors grow with the
level: a heteroscedastic control for the same networks.

Each is scored twice: always adaptive, and ``@auto`` (tabresnet's choice between
adaptive and constant on the calibration rows, :class:`tabresnet.calibrate.Calibration`).
The network outputs, inputs and targets of each fit are saved under
:data:`PARTS` (not committed), so ``--from-parts`` recomputes the table
without training. Results: ``bench/results/interval_scales.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.datasets import split  # noqa: E402
from bench.suite import SUITE, load_table  # noqa: E402

PARTS = ROOT / "bench" / "results" / "interval_scales_parts"
OUT = ROOT / "bench" / "results" / "interval_scales{}.md"  # "" or "_raw"
LEVEL = 0.9
DEFAULT_DATASETS = list(SUITE)[:8]  # as bench/intervals.py
SPLITS = ("train", "val", "test")


def _stem(name: str, seed: int, units: str) -> str:
    return f"{name}_{seed}" if units == "suite" else f"{name}_{units}_{seed}"


def fit_one(name: str, seed: int, units: str = "suite") -> float:
    """Fit the defaults on (table, seed) and save what the intervals need; seconds."""
    import pandas as pd

    from tabresnet.training import fit

    X, y = load_table(name)
    if units == "raw":
        y = np.exp(y)
    frame = pd.concat([X, y], axis=1)
    rows = dict(zip(SPLITS, split(len(frame), seed)))
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = fit(frame.iloc[rows["train"]], y.name, val_data=frame.iloc[rows["val"]],
                  test_data=frame.iloc[rows["test"]], progress="none", num_threads=1,
                  seed=seed)
        parts = {}
        for s in SPLITS:
            part = frame.iloc[rows[s]]
            x_num, x_cat = run.model._tensors(part, strict=False)
            p = run.model.interval_parts(x_num, x_cat)
            parts.update({f"{s}_y": part[[y.name]].to_numpy(np.float64),
                          f"{s}_pred": p["pred"], f"{s}_spread": p["spread"],
                          f"{s}_xnum": x_num.numpy(), f"{s}_xcat": x_cat.numpy()})
    PARTS.mkdir(parents=True, exist_ok=True)
    tmp = PARTS / f"{_stem(name, seed, units)}.tmp.npz"
    np.savez(tmp, **parts)
    os.replace(tmp, PARTS / f"{_stem(name, seed, units)}.npz")
    return time.perf_counter() - start


def _inputs(d: dict, s: str) -> np.ndarray:
    x_num, x_cat = d[f"{s}_xnum"], d[f"{s}_xcat"]
    return np.column_stack([x_num.reshape(len(x_num), -1), x_cat.reshape(len(x_cat), -1),
                            d[f"{s}_pred"]])


def scales(d: dict) -> dict[str, dict[str, np.ndarray]]:
    """Each candidate's sigma on the validation and test rows."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.isotonic import IsotonicRegression
    from sklearn.model_selection import KFold
    from sklearn.neighbors import KNeighborsRegressor

    def boost():
        return HistGradientBoostingRegressor(max_iter=100, learning_rate=0.05,
                                             max_leaf_nodes=8, min_samples_leaf=20)

    pred_tr = d["train_pred"][:, 0]
    abs_tr = np.abs(d["train_y"][:, 0] - pred_tr)
    x_tr = _inputs(d, "train")
    up = bool(np.corrcoef(pred_tr, abs_tr)[0, 1] > 0)
    iso = IsotonicRegression(increasing=up, out_of_bounds="clip").fit(pred_tr, abs_tr)
    knn = KNeighborsRegressor(n_neighbors=min(50, len(x_tr) // 4)).fit(x_tr, abs_tr)
    hgb = boost().fit(x_tr, abs_tr)
    out = {
        "spread": {s: d[f"{s}_spread"][:, 0] for s in ("val", "test")},
        "iso_pred": {s: iso.predict(d[f"{s}_pred"][:, 0]) for s in ("val", "test")},
        "knn50": {s: knn.predict(_inputs(d, s)) for s in ("val", "test")},
        "hgb_abs": {s: hgb.predict(_inputs(d, s)) for s in ("val", "test")},
    }
    x_ho = np.vstack([_inputs(d, "val"), _inputs(d, "test")])
    abs_ho = np.abs(np.concatenate([d[f"{s}_y"][:, 0] - d[f"{s}_pred"][:, 0]
                                    for s in ("val", "test")]))
    sigma = np.zeros(len(abs_ho))
    for a, b in KFold(5, shuffle=True, random_state=0).split(x_ho):
        sigma[b] = boost().fit(x_ho[a], abs_ho[a]).predict(x_ho[b])
    n_val = len(d["val_y"])
    out["heldout_ceiling"] = {"val": sigma[:n_val], "test": sigma[n_val:]}
    return {k: {s: np.maximum(v[s], 1e-12) for s in v} for k, v in out.items()}


def score(d: dict) -> dict[str, tuple[float, float]]:
    """(test coverage, mean width / constant mean width) of each candidate's 90% intervals."""
    from tabresnet.calibrate import Calibration, interval_scores

    def run(sig: dict | None, mode: str | None) -> dict:
        cal = Calibration.fit_split(d["val_y"], d["val_pred"],
                                    None if sig is None else sig["val"][:, None], ["y"],
                                    mode=mode)
        lower, upper = cal.interval(d["test_pred"], None if sig is None else
                                    sig["test"][:, None], LEVEL)
        return interval_scores(d["test_y"], lower, upper)

    base = run(None, "constant")
    out = {"constant": (base["coverage"], 1.0)}
    for name, sig in scales(d).items():
        for label, mode in ((name, "adaptive"), (f"{name}@auto", None)):
            s = run(sig, mode)
            out[label] = (s["coverage"], s["mean_width"] / base["mean_width"])
    return out


def table(results: dict[str, list[dict]]) -> str:
    names = list(next(iter(results.values()))[0])
    tables = list(results)
    lines = [
        "| sigma | " + " | ".join(tables) + " | mean ratio |",
        "|---|" + "---:|" * (len(tables) + 1),
    ]
    for n in names:
        ratios = [float(np.mean([r[n][1] for r in results[t]])) for t in tables]
        covs = [float(np.mean([r[n][0] for r in results[t]])) for t in tables]
        cells = " | ".join(f"{a:.3f} ({100 * c:.1f}%)" for a, c in zip(ratios, covs))
        lines.append(f"| {n} | {cells} | {np.mean(ratios):.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", nargs="+", default=DEFAULT_DATASETS, choices=list(SUITE))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--jobs", type=int, default=2, help="fits at a time (processes)")
    p.add_argument("--from-parts", action="store_true", help="no fits: the saved parts only")
    p.add_argument("--units", choices=("suite", "raw"), default="suite",
                   help="raw: the log-target tables in their own units (the others are left out)")
    args = p.parse_args(argv)
    if args.units == "raw":
        args.datasets = [n for n in args.datasets if SUITE[n].log]
    todo = [(n, s) for n in args.datasets for s in args.seeds
            if not (PARTS / f"{_stem(n, s, args.units)}.npz").is_file()]
    if todo and not args.from_parts:
        with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            futures = {pool.submit(fit_one, n, s, args.units): (n, s) for n, s in todo}
            for fut in as_completed(futures):
                n, s = futures[fut]
                print(f"{n} seed {s}: {fut.result():.0f} s", flush=True)
    results: dict[str, list[dict]] = {}
    for n in args.datasets:
        for s in args.seeds:
            path = PARTS / f"{_stem(n, s, args.units)}.npz"
            if path.is_file():
                with np.load(path) as f:
                    results.setdefault(n, []).append(score(dict(f)))
    if not results:
        print("no fits saved yet")
        return 1
    from bench.intervals import _commit, machine_info

    seeds = {n: len(v) for n, v in results.items()}
    text = (
        f"Run of {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} (commit {_commit()}), "
        f"`python bench/interval_scales.py --units {args.units}`, on {machine_info()}; "
        f"seeds per table: {seeds}.\n\n"
        "90% split-conformal intervals on the test rows, calibrated on the validation rows. "
        "Each cell: mean width / constant mean width (mean over seeds), and the mean test "
        "coverage. Below 1.000 is narrower. `@auto`: tabresnet's choice of mode.\n\n"
        + table(results) + "\n"
    )
    OUT.with_name(OUT.name.format("" if args.units == "suite" else "_raw")).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
