"""Sample weights (issue 15, part 3): ``fit --weight COL``, ``fit(weight=...)``,
``ResNetRegressor.fit(sample_weight=...)``.

The weights enter the training loss, the early-stopping RMSE, the preprocessing
and the reported metrics. An integer weight w must train as the row repeated w
times: the preprocessing is fitted exactly alike, and with full batches (one step
per epoch over every row) the two losses are equal, so the models differ only by
floating-point order. Rows of weight 0 are left out.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from tabresnet import ResNetRegressor
from tabresnet.cli import main
from tabresnet.data import Preprocessor, Schema, check_weights
from tabresnet.defaults import DataConfig
from tabresnet.errors import DataError
from tabresnet.metrics import regression_metrics
from tabresnet.models.embeddings import quantile_bins
from tabresnet.training import fit

# Preprocessing that does not depend on how often a row occurs (quantiles and
# PLE bins do): the equivalence is then the training's alone.
FLAT = dict(numeric_transform="none", num_embedding="none")
SMALL = dict(num_blocks=[1], c_hidden=[32], dropout=0.0, progress="none", lr=3e-3)


def _table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    df["y"] = np.sin(2 * df.a) + df.b + 0.1 * rng.normal(size=n)
    return df


@pytest.fixture(scope="module")
def tables():
    rng = np.random.default_rng(0)
    train = _table(48, 0).assign(w=rng.integers(1, 4, 48))
    val = _table(30, 1).assign(w=1.0)
    grid = pd.DataFrame({"a": np.linspace(-2, 2, 50), "b": np.linspace(1, -1, 50)})
    return train, val, grid


@pytest.mark.parametrize(
    ("preprocessing", "bound"),
    # Measured gaps (max over the grid, 20 epochs): 2.2e-4 with FLAT (weighting itself
    # moves the predictions by 0.055, another seed by 0.28); 3.8e-3 with the default
    # quantiles and PLE bins (weighting: 0.105, another seed: 0.78). Float rounding
    # grows with the epochs: at 40 epochs the default gap is 0.042. Eight members (the
    # gaps were measured so; four drift apart faster: 0.028 at 20 epochs, weighting 0.31).
    [(FLAT, 0.005), ({}, 0.02)],
    ids=["flat-preprocessing", "default-preprocessing"],
)
def test_integer_weight_trains_as_repeated_rows(tables, preprocessing, bound):
    train, val, grid = tables
    repeated = train.loc[train.index.repeat(train.w)].drop(columns="w").reset_index(drop=True)
    # Full batches: batch_size above both tables' row counts, one step per epoch.
    opts = dict(max_epochs=20, patience=100, batch_size=1024, ensemble_size=8,
                **preprocessing, **SMALL)
    weighted = fit(train, "y", val_data=val, weight="w", **opts)
    rep = fit(repeated, "y", val_data=val.drop(columns="w"), **opts)
    plain = fit(train.drop(columns="w"), "y", val_data=val.drop(columns="w"), **opts)
    gap = np.abs(weighted.predict(grid) - rep.predict(grid)).max()
    effect = np.abs(plain.predict(grid) - rep.predict(grid)).max()  # what weighting changes
    assert gap < bound
    assert gap < effect / 10
    # The early-stopping score is the weighted one: the same validation rows, weight 1.
    assert weighted.history.val_rmse.to_numpy() == pytest.approx(
        rep.history.val_rmse.to_numpy(), rel=1e-2)


@pytest.mark.parametrize("transform", ["quantile", "standard", "none"])
def test_weighted_preprocessing_is_that_of_repeated_rows(transform):
    df = _table(40, 3)
    df.loc[[2, 5], "a"] = np.nan  # medians too
    w = np.random.default_rng(3).integers(1, 4, 40)
    repeated = df.loc[df.index.repeat(w)].reset_index(drop=True)
    schema = Schema(numeric=["a", "b"], targets=["y"])
    cfg = DataConfig(numeric_transform=transform)
    weighted = Preprocessor(schema, cfg).fit(df, sample_weight=w)
    plain = Preprocessor(schema, cfg).fit(repeated)
    np.testing.assert_array_equal(weighted.transform(df)[0], plain.transform(df)[0])
    np.testing.assert_array_equal(weighted.transform_target(df), plain.transform_target(df))
    x = torch.as_tensor(weighted.transform(df)[0])
    bins = quantile_bins(x, 8, weight=torch.as_tensor(w, dtype=torch.float64))
    for got, want in zip(bins, quantile_bins(x.repeat_interleave(torch.as_tensor(w), 0), 8)):
        assert torch.equal(got, want)


def test_weight_zero_rows_have_no_effect(tables):
    train, val, grid = tables
    rng = np.random.default_rng(5)
    junk = _table(20, 9).assign(y=lambda d: 100 * rng.normal(size=20), w=0)
    opts = dict(max_epochs=3, batch_size=16, **SMALL)
    with_junk = fit(pd.concat([train, junk], ignore_index=True), "y", weight="w", **opts)
    without = fit(train, "y", weight="w", **opts)
    np.testing.assert_allclose(with_junk.predict(grid), without.predict(grid), rtol=1e-6)
    assert with_junk.metrics["val"] == without.metrics["val"]


def test_weights_enter_the_reported_metrics(tables):
    train, val, _ = tables
    val = val.assign(w=np.arange(1.0, 31.0))
    run = fit(train, "y", val_data=val, weight="w", max_epochs=2, **SMALL)
    pred = run.predict(val)
    expected = regression_metrics(val[["y"]].to_numpy(), pred, sample_weight=val.w.to_numpy())
    unweighted = regression_metrics(val[["y"]].to_numpy(), pred)
    got = run.metrics["val"]
    assert got["rmse"] == pytest.approx(expected["rmse"])
    assert got["mae"] == pytest.approx(expected["mae"])
    assert got["r2"] == pytest.approx(expected["r2"])
    assert got["rmse"] != pytest.approx(unweighted["rmse"])
    assert got["weighted_by"] == "w"
    # The weight column is not a feature: prediction tables need not have it.
    assert run.model.schema.ignored == ["w"]
    assert run.predict(val.drop(columns="w")).shape == (30,)


def test_evaluate_weighs_a_table_with_the_weight_column(tables):
    train, val, _ = tables
    run = fit(train, "y", weight="w", max_epochs=2, **SMALL)
    val = val.assign(w=np.arange(1.0, 31.0))
    scored = run.model.evaluate(val)
    assert scored["weighted_by"] == "w"
    assert scored["rmse"] == pytest.approx(regression_metrics(
        val[["y"]].to_numpy(), run.predict(val), sample_weight=val.w.to_numpy())["rmse"])
    assert "weighted_by" not in run.model.evaluate(val.drop(columns="w"))


@pytest.mark.parametrize("targets", [["y"], ["y", "y2"]], ids=["one-target", "two-targets"])
def test_weighted_early_stopping_scores_a_quantile_models_point(tables, targets):
    """The weighted validation RMSE is that of the point quantile, as predict gives it."""
    train, val, _ = tables
    train, val = (t.assign(y2=t.a**2 + t.b) for t in (train, val))
    val = val.assign(w=np.arange(1.0, 31.0))
    run = fit(train, targets, val_data=val, weight="w", loss="quantile",
              quantiles=[0.1, 0.5, 0.9], max_epochs=3, **SMALL)
    pred = run.predict(val).reshape(len(val), -1)
    mse = np.average((pred - val[targets].to_numpy()) ** 2, axis=0, weights=val.w)
    # The epoch kept is the one with the lowest validation RMSE (over targets: the
    # mean of their RMSEs, as the reported metrics).
    assert run.history["val_rmse"].min() == pytest.approx(np.sqrt(mse).mean(), rel=1e-5)
    assert run.history["val_rmse"].min() == pytest.approx(run.metrics["val"]["rmse"], rel=1e-5)


def test_tune_with_weights_cross_validated(tables, tmp_path):
    from tabresnet.tuning import tune

    train, _, _ = tables
    result = tune(train, "y", trials=1, cv=2, weight="w", out=tmp_path / "tune",
                  max_epochs=2, **{k: v for k, v in SMALL.items() if k != "progress"})
    assert result.best_config.data.weight == "w"
    assert result.metrics["oof"]["weighted_by"] == "w"


def test_tune_takes_a_weight_per_row_as_fit_does(tables, tmp_path):
    from tabresnet.tuning import tune

    train, _, _ = tables
    kw = dict(trials=1, cv=2, max_epochs=2, **{k: v for k, v in SMALL.items() if k != "progress"})
    by_array = tune(train.drop(columns="w"), "y", weight=train.w.to_numpy(), **kw)
    by_name = tune(train, "y", weight="w", **kw)
    assert by_array.best_config.data.weight == "sample_weight"
    assert by_array.metrics["oof"]["rmse"] == pytest.approx(by_name.metrics["oof"]["rmse"])


def test_weight_array_and_bag(tables):
    train, _, _ = tables
    w = train.w.to_numpy()
    run = fit(train.drop(columns="w"), "y", weight=w, bag=2, max_epochs=2, **SMALL)
    assert run.config.data.weight == "sample_weight"
    assert run.metrics["oof"]["weighted_by"] == "sample_weight"
    with pytest.raises(DataError, match="weight has 3 values but the data has 48 rows"):
        fit(train, "y", weight=[1, 2, 3], max_epochs=1, **SMALL)


def test_estimator_sample_weight():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 2))
    y = X[:, 0] - X[:, 1]
    sw = rng.integers(0, 3, 80).astype(float)
    est = dict(max_epochs=3, num_blocks=(1,), c_hidden=(8,))
    weighted = ResNetRegressor(**est).fit(X, y, sample_weight=sw)
    kept = ResNetRegressor(**est).fit(X[sw > 0], y[sw > 0], sample_weight=sw[sw > 0])
    np.testing.assert_allclose(weighted.predict(X), kept.predict(X), rtol=1e-6)
    # Equal weights are no weights; the caller's array is left alone.
    ones = np.full(80, 3.0)
    same = ResNetRegressor(**est).fit(X, y, sample_weight=ones)
    np.testing.assert_array_equal(same.predict(X), ResNetRegressor(**est).fit(X, y).predict(X))
    assert (ones == 3.0).all()
    with pytest.raises(ValueError, match="all weights in sample_weight are zero"):
        ResNetRegressor(**est).fit(X, y, sample_weight=np.zeros(80))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([1.0, -1.0], "1 negative value"),
        ([1.0, np.nan], "missing or infinite"),
        ([1.0, np.inf], "missing or infinite"),
        (["a", "b"], "not numeric"),
        ([0, 0], "are zero"),
    ],
)
def test_check_weights_refuses(values, message):
    with pytest.raises(DataError, match=message):
        check_weights(values)


@pytest.mark.parametrize(
    ("column", "message"),
    [
        ("nope", "weight column 'nope' not found in the data"),
        ("neg", "weight column 'neg' has 1 negative value"),
        ("text", "weight column 'text' is not numeric"),
        ("zero", "all weights in weight column 'zero' are zero"),
        ("gaps", "weight column 'gaps' has 1 missing or infinite"),
        ("y", "'y' is a target column"),
    ],
)
def test_cli_bad_weight_column_is_one_line(column, message, tmp_path, capsys):
    df = _table(40, 0).assign(neg=1.0, text="x", zero=0.0, gaps=1.0)
    df.loc[3, "neg"] = -2.0
    df.loc[4, "gaps"] = np.nan
    path = tmp_path / "data.csv"
    df.to_csv(path, index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(["fit", str(path), "-t", "y", "--weight", column, "--out",
                     str(tmp_path / "run"), "--max-epochs", "1", "--progress", "none"])
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], lines
    assert not (tmp_path / "run").exists()


def test_cli_fit_weight_prints_weighted_metrics(tmp_path, capsys):
    df = _table(60, 0).assign(w=np.tile([1.0, 2.0], 30))
    path = tmp_path / "data.csv"
    df.to_csv(path, index=False)
    code = main(["fit", str(path), "-t", "y", "--weight", "w", "--out", str(tmp_path / "run"),
                 "--max-epochs", "2", "--num-blocks", "1", "--c-hidden", "8",
                 "--progress", "none", "--no-report"])
    assert code == 0
    out = capsys.readouterr().out
    assert "each row weighted by column w" in out
    assert "weight: w" in (tmp_path / "run" / "config.yaml").read_text()
