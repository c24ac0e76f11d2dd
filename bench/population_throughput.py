"""What packing gains per unit of work: member-epochs per second, packed vs one at a time.

    nice -n 10 python bench/population_throughput.py            # diabetes + computers, a few minutes
    python bench/population_throughput.py --tables diabetes --members 8 --epochs 3

For each table (the development suite's; seed 0's 64/16/20 split) the *same* P
configurations, sampled at random from the space both tunes search (the
default space less the options a pack shares, members of one network each),
are trained for a fixed number of epochs with no early stopping, through the
real code paths:

* **packed**: one :class:`~tabresnet.training.population.PopulationTrainer`
  holding all P members, ``run_epoch`` E times (members added and built
  included, as a study pays them);
* **one at a time**: :func:`tabresnet.training.train_network` on each
  configuration in turn (``fit``'s and sequential ``tune``'s training: the
  Lightning Trainer, its data path and its per-epoch validation).

The two runs are interleaved (packed, sequential, sequential, packed, ... for
``--repeats`` rounds) so that the machine's load from other jobs weighs on both
alike. Reported: member-epochs per second of each (P * E / seconds), and their
ratio. This is training only; ``bench/population.py`` measures whole studies
(sampling, storage, early stopping, the first wave's latency).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from bench.baselines import SplitData  # noqa: E402
from bench.datasets import split  # noqa: E402
from bench.population import machine, member_space_yaml  # noqa: E402
from bench.suite import SUITE, load_table  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "population_throughput.json"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tables", nargs="+", default=["diabetes", "computers"], choices=list(SUITE))
    p.add_argument("--members", type=int, default=16, help="P, configurations (default 16)")
    p.add_argument("--epochs", type=int, default=5, help="epochs each (default 5)")
    p.add_argument("--repeats", type=int, default=1,
                   help="rounds of (packed, sequential), order alternating (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=RESULTS)
    return p.parse_args(argv)


def sample_configs(base, n: int, seed: int) -> list:
    """``n`` configurations of the member space, sampled at random (Optuna's RandomSampler)."""
    import optuna

    from tabresnet.tuning.population import member_space
    from tabresnet.tuning.space import SearchSpace

    space, _ = member_space(SearchSpace.from_yaml(member_space_yaml()))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        config, _ = space.sample(study.ask(), base)
        out.append(config)
    return out


def packed(prepared, base, configs, epochs: int) -> float:
    from tabresnet.training.population import PopulationTrainer

    start = time.perf_counter()
    trainer = PopulationTrainer(prepared, base, len(configs))
    for c in configs:
        trainer.add(c)
    for _ in range(epochs):
        trainer.run_epoch()
    seconds = time.perf_counter() - start
    assert all(m.epochs == epochs for m in trainer.members)
    return seconds


def sequential(prepared, configs, epochs: int) -> float:
    from tabresnet.training import train_network

    start = time.perf_counter()
    for c in configs:
        result = train_network(prepared, c)
        assert len(result.history) == epochs, (len(result.history), epochs)
    return time.perf_counter() - start


def one_table(name: str, args: argparse.Namespace) -> dict:
    from tabresnet.defaults import RunConfig
    from tabresnet.training import prepare

    X, y = load_table(name)
    data = SplitData.from_indices(X, y, name, args.seed, *split(len(X), args.seed))
    # No early stopping: every member trains exactly --epochs epochs.
    base = RunConfig().replace(ensemble_size=1, progress="none", logger="none",
                               max_epochs=args.epochs, patience=args.epochs + 1,
                               seed=args.seed)
    prepared = prepare(data.frame("train"), data.target, base, val_data=data.frame("val"))
    configs = sample_configs(base, args.members, args.seed)
    widths = sorted(c.model.c_hidden[0] for c in configs)
    work = args.members * args.epochs
    times: dict[str, list[float]] = {"packed": [], "sequential": []}
    for r in range(args.repeats):
        order = ("packed", "sequential") if r % 2 == 0 else ("sequential", "packed")
        for label in order:
            if label == "packed":
                s = packed(prepared, base, configs, args.epochs)
            else:
                s = sequential(prepared, configs, args.epochs)
            times[label].append(s)
            print(f"{name} round {r}: {label} {s:.1f} s ({work / s:.1f} member-epochs/s)",
                  flush=True)
    row = {"table": name, "train_rows": len(prepared.train), "members": args.members,
           "epochs": args.epochs, "batch_size": configs[0].train.batch_size or "auto",
           "widths": widths, "blocks": sorted(c.model.num_blocks[0] for c in configs)}
    for label, ts in times.items():
        row[label] = {"seconds": [round(t, 2) for t in ts],
                      "member_epochs_per_s": round(work * len(ts) / sum(ts), 2)}
    row["ratio"] = round(row["packed"]["member_epochs_per_s"]
                         / row["sequential"]["member_epochs_per_s"], 2)
    return row


def main(argv=None) -> dict:
    args = parse_args(argv)
    report = {"machine": machine(), "rows": []}
    for name in args.tables:
        row = one_table(name, args)
        report["rows"].append(row)
        print(f"{name}: packed {row['packed']['member_epochs_per_s']} vs sequential "
              f"{row['sequential']['member_epochs_per_s']} member-epochs/s: "
              f"{row['ratio']}x", flush=True)
    try:
        report["machine"]["load_at_end"] = round(os.getloadavg()[0], 1)
    except OSError:
        pass
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
