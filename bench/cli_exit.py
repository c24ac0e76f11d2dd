"""Seconds per ``tabresnet`` command: the command with and without the quick exit.

    python bench/cli_exit.py               # predict and evaluate, 5 alternations each
    python bench/cli_exit.py --reps 1      # smoke run

The ``tabresnet`` command (:func:`tabresnet.cli.entry`) runs :func:`tabresnet.cli.main`
and then freezes the garbage collector, so that Python's shutdown does not walk every
object torch and Lightning made at import. This times whole processes, one calling
``main`` and one calling ``entry`` with the same arguments, alternating ``--reps``
times so that machine noise falls on both, on a model fitted here on the diabetes
table. Results: ``bench/results/cli_exit.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def seconds(function: str, args: list[str]) -> float:
    """Wall seconds of one process running ``tabresnet.cli.<function>(args)``."""
    code = f"import sys; from tabresnet.cli import {function}; sys.exit({function}({args!r}))"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5, help="alternations per command (default 5)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "cli_exit.json"))
    args = ap.parse_args()
    from sklearn.datasets import load_diabetes

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "diabetes.csv"
        load_diabetes(as_frame=True).frame.to_csv(data, index=False)
        model = Path(tmp) / "run"
        subprocess.run([sys.executable, "-m", "tabresnet.cli", "fit", str(data), "--target",
                        "target", "--out", str(model), "--no-report", "--max-epochs", "2",
                        "--progress", "none"], check=True, capture_output=True)
        commands = {"predict": ["predict", str(model), str(data)],
                    "evaluate": ["evaluate", str(model), str(data)]}
        results = []
        for name, command in commands.items():
            plain, quick = [], []
            for _ in range(args.reps):
                plain.append(seconds("main", command))
                quick.append(seconds("entry", command))
            p, q = statistics.median(plain), statistics.median(quick)
            row = {"command": name, "main_s": round(p, 2), "entry_s": round(q, 2),
                   "ratio": round(q / p, 3)}
            results.append(row)
            print(json.dumps(row), flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    out = {"date": time.strftime("%Y-%m-%dT%H:%M%z"), "commit": commit,
           "machine": platform.processor() or platform.machine(),
           "command": " ".join(["python", *sys.argv]), "reps": args.reps, "results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print("\n| command | main() s | entry() s | entry / main |")
    print("|---|---:|---:|---:|")
    for r in results:
        print(f"| {r['command']} | {r['main_s']:.2f} | {r['entry_s']:.2f} | {r['ratio']:.2f} |")


if __name__ == "__main__":
    main()
