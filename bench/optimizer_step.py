"""Milliseconds per training step: torch's AdamW looping over the parameters vs its fused kernel.

    python bench/optimizer_step.py                       # the suite's tables up to 6,259 rows
    python bench/optimizer_step.py --tables concrete --steps 10 --reps 1   # smoke run

``fit`` asks torch for the fused AdamW (``torch.optim.AdamW(..., fused=True)``):
one kernel updates every parameter, where the default implementation on a CPU
runs a dozen small tensor operations per parameter tensor in Python. The update
is the same formula. For each table this times the same steps (forward,
backward, zero_grad, optimiser step) of the default network on the same
batches (the default batch size for the table, eight members each with its own
rows) with each optimiser, alternating ``--reps`` times in one process, and
reports the medians and their ratio. Results: ``bench/results/optimizer_step.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(ROOT))

from bench.suite import load_table  # noqa: E402
from tabresnet.data import TensorBatches  # noqa: E402
from tabresnet.defaults import RunConfig, auto_batch_size  # noqa: E402
from tabresnet.training import prepare  # noqa: E402
from tabresnet.training.loop import build_network  # noqa: E402

TABLES = ["diabetes", "housing", "sacramento", "concrete", "bwages", "ames", "nmes1988",
          "computers"]


def time_steps(net: torch.nn.Module, batches: list, fused: bool) -> float:
    """Median milliseconds of one step over ``batches``."""
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4, weight_decay=3e-4, fused=fused)
    times = []
    for x_num, x_cat, y in batches:
        start = time.perf_counter()
        loss = F.mse_loss(net.members(x_num, x_cat), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:]) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", nargs="+", default=TABLES)
    ap.add_argument("--steps", type=int, default=40, help="steps per timing (default 40)")
    ap.add_argument("--reps", type=int, default=5, help="alternations per table (default 5)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "optimizer_step.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = RunConfig()
    results = []
    for name in args.tables:
        X, y = load_table(name)
        frame = X.assign(**{y.name: y.values})
        prepared = prepare(frame, [y.name], cfg)
        net = build_network(cfg, prepared)
        batch = auto_batch_size(len(prepared.train))
        split = prepared.train
        served = TensorBatches((split.x_num, split.x_cat, split.y), batch_size=batch,
                               shuffle=True, seed=0, members=cfg.model.ensemble_size)
        batches = []
        while len(batches) < args.steps:
            batches += list(served)
        batches = batches[: args.steps]
        plain, fused = [], []
        for _ in range(args.reps):  # alternate: machine noise falls on both
            plain.append(time_steps(net, batches, fused=False))
            fused.append(time_steps(net, batches, fused=True))
        p, f = statistics.median(plain), statistics.median(fused)
        row = {"table": name, "train_rows": len(split), "batch_size": batch,
               "parameter_tensors": len(list(net.parameters())),
               "plain_ms": round(p, 2), "fused_ms": round(f, 2), "ratio": round(f / p, 3)}
        results.append(row)
        print(json.dumps(row), flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    out = {"date": time.strftime("%Y-%m-%dT%H:%M%z"), "commit": commit,
           "machine": f"{platform.processor() or platform.machine()}, {args.threads} thread(s)",
           "torch": torch.__version__, "command": " ".join(["python", *sys.argv]),
           "results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print("\n| table | train rows | batch | default AdamW ms/step | fused ms/step | fused / default |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['table']} | {r['train_rows']:,} | {r['batch_size']} | {r['plain_ms']:.2f} "
              f"| {r['fused_ms']:.2f} | {r['ratio']:.2f} |")


if __name__ == "__main__":
    main()
