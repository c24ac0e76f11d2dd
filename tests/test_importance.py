"""Permutation feature importance (issue 15, part 4): ``tabresnet.importance``,
``tabresnet importance MODEL DATA``, ``importance.json`` in a run and its report section.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

import tabresnet
from tabresnet.cli import main
from tabresnet.errors import ConfigError, DataError
from tabresnet.report import write_report
from tabresnet.training import fit

SMALL = dict(num_blocks=[1], c_hidden=[16], progress="none", max_epochs=40, lr=3e-3)


def _table(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "signal": rng.normal(size=n),
        "noise": rng.normal(size=n),
        "city": rng.choice(["Oslo", "Rome", "Lima"], n),  # one-hot
        "shop": rng.choice([f"s{i}" for i in range(40)], n),  # embedded, no effect
    })
    df["y"] = 2 * df.signal + 1.5 * (df.city == "Oslo") + 0.1 * rng.normal(size=n)
    return df


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("imp") / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = fit(_table(), "y", out=out, test_size=0.25, **SMALL)
    return run


def test_informative_columns_rank_above_noise(run_dir):
    table = tabresnet.importance(run_dir.model, _table(300, seed=1), repeats=4)
    # Source columns only: the one-hot block of city and shop's embedding count as one each.
    assert sorted(table.feature) == ["city", "noise", "shop", "signal"]
    rank = {f: i for i, f in enumerate(table.feature)}
    assert rank["signal"] < rank["noise"] and rank["city"] < rank["noise"]
    assert rank["city"] < rank["shop"]
    imp = table.set_index("feature")["importance"]
    assert imp["signal"] > 10 * abs(imp["noise"])
    assert (table["std"] >= 0).all() and table.attrs["repeats"] == 4
    assert table.attrs["baseline"] == pytest.approx(
        run_dir.model.evaluate(_table(300, seed=1))["rmse"])
    assert list(table.importance) == sorted(table.importance, reverse=True)


def test_run_keeps_importance_on_test_rows_and_reports_it(run_dir):
    record = json.loads((run_dir.dir / "importance.json").read_text())
    assert record["scored_on"] == "test" and record["n"] == 100 and record["repeats"] == 5
    assert record["features"][0]["feature"] in {"signal", "city"}
    html = write_report(run_dir.dir).read_text()
    assert 'id="importance"' in html
    section = html.split('id="importance"', 1)[1].split("</section>", 1)[0]
    assert "<img" in section and "100 test rows" in section


def test_without_test_rows_importance_is_on_validation_rows(tmp_path):
    run = fit(_table(120), "y", out=tmp_path / "run", max_epochs=2, num_blocks=[1],
              c_hidden=[8], progress="none")
    record = json.loads((run.dir / "importance.json").read_text())
    assert record["scored_on"] == "val" and record["n"] == 19  # 16 % of 120 rows


def test_a_bag_without_test_rows_is_scored_out_of_fold(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = fit(_table(300), "y", out=tmp_path / "run", bag=3, **SMALL)
    record = json.loads((run.dir / "importance.json").read_text())
    # Every row the bag trained on, each by the member that left it out.
    assert record["scored_on"] == "oof" and record["n"] == 300
    assert record["baseline"] == pytest.approx(run.metrics["oof"]["rmse"], rel=1e-4)
    imp = {f["feature"]: f["importance"] for f in record["features"]}
    assert imp["signal"] > 10 * abs(imp["noise"]) and imp["city"] > abs(imp["shop"])
    section = write_report(run.dir).read_text().split('id="importance"', 1)[1]
    assert "300 out-of-fold rows (each bag member on the fold it did not train on)" in section


def test_out_of_fold_importance_needs_one_table_per_member(run_dir):
    with pytest.raises(ConfigError, match="need a bag and one table per member: 1 member"):
        tabresnet.feature_importance.importance_out_of_fold(run_dir.model, [_table(50)])


def test_importance_from_an_estimator_with_y():
    df = _table(200)
    est = tabresnet.ResNetRegressor(max_epochs=10, num_blocks=(1,), c_hidden=(8,))
    est.fit(df.drop(columns="y"), df.y)
    table = tabresnet.importance(est, df.drop(columns="y"), df.y.to_numpy(), repeats=2,
                                 scoring="r2", max_rows=50)
    assert table.attrs["rows"] == 50 and table.attrs["scoring"] == "r2"
    assert len(table) == 4


def test_bad_arguments(run_dir):
    df = _table(50)
    with pytest.raises(ConfigError, match="repeats must be at least 1"):
        tabresnet.importance(run_dir.model, df, repeats=0)
    with pytest.raises(ConfigError, match="unknown scoring 'mse'; valid names are: rmse"):
        tabresnet.importance(run_dir.model, df, scoring="mse")
    with pytest.raises(DataError, match="target column.*'y' not in the data"):
        tabresnet.importance(run_dir.model, df.drop(columns="y"))
    with pytest.raises(DataError, match="missing column.*'noise'"):
        tabresnet.importance(run_dir.model, df.drop(columns="noise"))


def test_cli_importance_table_and_csv(run_dir, tmp_path, capsys):
    data = tmp_path / "rows.csv"
    _table(80, seed=2).to_csv(data, index=False)
    assert main(["importance", str(run_dir.dir), str(data), "--repeats", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("permutation importance on 80 rows, 2 shuffles per column")
    assert out[1].split() == ["column", "role", "importance", "std"]
    assert {line.split()[0] for line in out[2:]} == {"signal", "noise", "city", "shop"}
    csv = tmp_path / "imp.csv"
    assert main(["importance", str(run_dir.dir), str(data), "-o", str(csv)]) == 0
    table = pd.read_csv(csv)
    assert list(table.columns) == ["feature", "role", "importance", "std"] and len(table) == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scoring", "r2"], None),
        (["--max-rows", "1"], "max_rows must be at least 2"),
    ],
)
def test_cli_importance_errors_are_one_line(run_dir, tmp_path, capsys, args, message):
    data = tmp_path / "rows.csv"
    _table(40, seed=3).drop(columns="y").to_csv(data, index=False)
    code = main(["importance", str(run_dir.dir), str(data), *args])
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:")
    assert (message or "target column(s) 'y' not in the data") in lines[0]


def test_cli_importance_missing_model_is_one_line(tmp_path, capsys):
    data = tmp_path / "rows.csv"
    _table(10).to_csv(data, index=False)
    assert main(["importance", str(tmp_path / "nope"), str(data)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:")
