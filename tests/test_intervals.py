"""Conformal prediction intervals (tabresnet.calibrate) and quantile regression.

Every fit here is seeded and deterministic; coverage is asserted on fixed
draws, never on timing.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import tabresnet
from tabresnet.artifact import FORMAT_VERSION, TabularModel, load
from tabresnet.calibrate import Calibration, check_level, interval_scores
from tabresnet.cli import main
from tabresnet.errors import ConfigError, ModelFileError, TabResNetWarning
from tabresnet.training.module import make_loss

SMALL = dict(num_blocks=[1], c_hidden=[16], ensemble_size=4, max_epochs=15, progress="none",
             report=False)


def hetero_frame(n: int, seed: int = 0) -> pd.DataFrame:
    """``y = 2a + noise`` whose scale grows with ``|b|``; a categorical column too."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.uniform(-2, 2, size=n)
    c = rng.choice(["x", "y", "z"], size=n)
    y = 2 * a + (c == "x") + (0.2 + np.abs(b)) * rng.normal(size=n)
    return pd.DataFrame({"a": a, "b": b, "c": c, "target": y})


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("iv") / "run"
    return tabresnet.fit(hetero_frame(1000), target="target", out=out, test_size=0.3, **SMALL)


# -- the arithmetic of calibrate.py -------------------------------------------------------
def test_split_rank_has_the_finite_sample_correction():
    scores = np.arange(1.0, 10.0)[:, None]  # 9 residuals 1..9
    cal = Calibration.fit_split(scores, np.zeros((9, 1)), None, ["y"])
    # ceil((9 + 1) * 0.8) = 8: the 8th smallest, not the 0.8 quantile of 9 numbers (7.4).
    lower, upper = cal.interval(np.zeros((1, 1)), None, 0.8)
    assert (upper[0, 0], lower[0, 0]) == (8.0, -8.0)
    assert cal.interval(np.zeros((1, 1)), None, 0.9)[1][0, 0] == 9.0
    with pytest.warns(TabResNetWarning, match="needs at least 19 calibration rows"):
        assert np.isinf(cal.interval(np.zeros((1, 1)), None, 0.95)[1]).all()
    eight = Calibration.fit_split(scores[:8], np.zeros((8, 1)), None, ["y"])
    with pytest.warns(TabResNetWarning, match="a 0.9 interval needs at least 9 calibration rows, "
                      "the model has 8"):  # 9 suffice (above), whatever 0.9 / 0.1 rounds to
        eight.interval(np.zeros((1, 1)), None, 0.9)


def test_split_coverage_is_close_to_nominal_on_fresh_draws():
    rng = np.random.default_rng(1)
    cal = Calibration.fit_split(rng.normal(size=(2000, 1)), np.zeros((2000, 1)), None, ["y"])
    y = rng.normal(size=(50_000, 1))
    for level in (0.5, 0.8, 0.9):
        lower, upper = cal.interval(np.zeros_like(y), None, level)
        assert abs(interval_scores(y, lower, upper)["coverage"] - level) < 0.015


def test_adaptive_is_narrower_where_the_spread_tracks_the_noise():
    rng = np.random.default_rng(2)

    def draw(n):
        scale = rng.uniform(0.1, 3.0, size=(n, 1))
        # A noisy difficulty estimate: the true scale times a random factor.
        return scale * rng.normal(size=(n, 1)), scale * rng.uniform(0.7, 1.3, size=(n, 1))

    y_cal, s_cal = draw(3000)
    cal = Calibration.fit_split(y_cal, np.zeros_like(y_cal), s_cal, ["y"])
    assert cal.default == "adaptive" and cal.modes == ["adaptive", "constant"]
    y, s = draw(20_000)
    res = {m: interval_scores(y, *cal.interval(np.zeros_like(y), s, 0.9, m)) for m in cal.modes}
    assert all(abs(r["coverage"] - 0.9) < 0.015 for r in res.values()), res
    assert res["adaptive"]["mean_width"] < 0.85 * res["constant"]["mean_width"], res


def test_cv_plus_with_identical_members_is_split_conformal():
    rng = np.random.default_rng(3)
    ys = [rng.normal(size=(40, 1)) for _ in range(3)]
    folds = Calibration.fit_folds(ys, [np.zeros((40, 1))] * 3, None, ["y"])
    split = Calibration.fit_split(np.concatenate(ys), np.zeros((120, 1)), None, ["y"])
    mu = rng.normal(size=(5, 1))
    lo_cv, hi_cv = folds.interval_cv(np.repeat(mu[:, None], 3, axis=1), None, 0.9)
    lo, hi = split.interval(mu, None, 0.9)
    np.testing.assert_allclose(hi_cv, hi)
    # CV+'s lower end is the floor(alpha (n + 1))-th smallest of mu - R: the same rank here.
    np.testing.assert_allclose(lo_cv, lo)


def test_cv_plus_covers_with_disagreeing_members():
    rng = np.random.default_rng(4)
    shifts = np.array([-0.2, 0.0, 0.3])  # each member's bias
    ys, mus = [], []
    for s in shifts:
        y = rng.normal(size=(300, 1))
        ys.append(y)
        mus.append(np.full_like(y, s))
    cal = Calibration.fit_folds(ys, mus, None, ["y"])
    y = rng.normal(size=(20_000, 1))
    members = np.broadcast_to(shifts[None, :, None], (len(y), 3, 1))
    lower, upper = cal.interval_cv(members, None, 0.9)
    assert 0.88 <= interval_scores(y, lower, upper)["coverage"] <= 0.93


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.1, "abc", None, True, float("nan")])
def test_bad_levels_are_refused(bad):
    with pytest.raises(ConfigError, match="interval level must be a number between 0 and 1"):
        check_level(bad)


def test_calibration_dict_round_trips_and_refuses_damage():
    rng = np.random.default_rng(5)
    y, s = rng.normal(size=(50, 2)), rng.uniform(0.5, 1.5, size=(50, 2))
    cal = Calibration.fit_split(y, np.zeros_like(y), s, ["u", "v"])
    back = Calibration.from_dict(json.loads(json.dumps(cal.to_dict())))
    for name in ("constant", "adaptive", "beta"):
        np.testing.assert_array_equal(getattr(back, name), getattr(cal, name))
    assert (back.kind, back.default, back.targets) == (cal.kind, cal.default, ["u", "v"])
    bad = cal.to_dict()
    bad["scores"]["constant"][0] = bad["scores"]["constant"][0][:-1]
    with pytest.raises(ModelFileError, match="corrupted interval calibration"):
        Calibration.from_dict(bad)
    with pytest.raises(ModelFileError, match="kind"):
        Calibration.from_dict({**cal.to_dict(), "kind": "magic"})


# -- a fitted model -----------------------------------------------------------------------
def test_fit_calibrates_and_test_coverage_is_near_nominal(run):
    iv = run.metrics["intervals"]
    assert iv["calibration_rows"] == len(run.model.calibration.constant) > 100
    assert iv["mode"] in ("adaptive", "constant") and iv["level"] == 0.9
    for mode in ("adaptive", "constant"):  # 300 test rows: a wide band; see the next test
        assert 0.8 <= iv[f"test_{mode}"]["coverage"] <= 0.97, iv
    test = pd.read_csv(run.dir / "predictions_test.csv")
    assert {"y_lower", "y_upper"} <= set(test.columns)
    assert (test.y_lower <= test.y_pred).all() and (test.y_pred <= test.y_upper).all()


def test_coverage_of_a_fitted_model_on_fresh_rows_is_near_nominal(run):
    model = TabularModel(run.model.network, run.model.config, run.model.schema,
                         run.model.preprocessor).calibrate(hetero_frame(1500, seed=21))
    fresh = hetero_frame(6000, seed=22)
    for mode in ("adaptive", "constant"):
        for level in (0.8, 0.9):
            _, lower, upper = model.predict(fresh, interval=level, mode=mode)
            got = interval_scores(fresh.target.to_numpy(), lower, upper)["coverage"]
            assert abs(got - level) < 0.025, (mode, level, got)


def test_predict_interval_contract(run):
    df = hetero_frame(50, seed=9)
    model = run.model
    pred, lower, upper = model.predict(df, interval=0.9)
    np.testing.assert_array_equal(pred, model.predict(df))
    assert pred.shape == lower.shape == upper.shape == (50,)
    assert (lower < pred).all() and (pred < upper).all()
    lo8, hi8 = model.predict(df, interval=0.8)[1:]
    assert (hi8 - lo8 <= upper - lower + 1e-12).all()  # a lower level is never wider
    # Constant mode: one width for all rows; adaptive: widths vary with the spread.
    _, lo_c, hi_c = model.predict(df, interval=0.9, mode="constant")
    assert np.ptp(hi_c - lo_c) < 1e-9
    _, lo_a, hi_a = model.predict(df, interval=0.9, mode="adaptive")
    assert np.ptp(hi_a - lo_a) > 0
    frame = model.predict_frame(df, interval=0.9)
    assert list(frame.columns) == ["target_pred", "target_lower", "target_upper"]
    np.testing.assert_array_equal(frame.target_lower, lower)
    with pytest.raises(ConfigError, match="interval mode must be one of"):
        model.predict(df, interval=0.9, mode="wide")


def test_calibration_round_trips_the_model_file(run, tmp_path):
    loaded = load(run.dir)
    meta = json.loads((run.dir / "model.json").read_text())
    assert meta["format_version"] == 3 and meta["calibration"]["kind"] == "split"
    assert all(isinstance(v, float) for v in meta["calibration"]["scores"]["constant"][0])
    df = hetero_frame(30, seed=8)
    for level in (0.8, 0.9):
        for a, b in zip(loaded.predict(df, interval=level), run.model.predict(df, interval=level)):
            np.testing.assert_array_equal(a, b)


def test_model_without_calibration_says_so(run, tmp_path):
    run.model.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    del meta["calibration"]  # as written before intervals existed
    (tmp_path / "m" / "model.json").write_text(json.dumps(meta))
    old = load(tmp_path / "m")
    df = hetero_frame(10, seed=7)
    assert old.predict(df).shape == (10,)
    with pytest.raises(ConfigError, match=r"no interval calibration.*model.calibrate\(data\)"):
        old.predict(df, interval=0.9)
    # calibrate() on held-out rows adds one.
    old.calibrate(hetero_frame(200, seed=6))
    assert old.calibration.n == 200 and old.predict(df, interval=0.9)[1].shape == (10,)


def test_damaged_calibration_is_a_model_file_error(run, tmp_path):
    run.model.save(tmp_path / "m")
    path = tmp_path / "m" / "model.json"
    meta = json.loads(path.read_text())
    meta["calibration"]["scores"]["constant"] = [["x"]]
    path.write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="corrupted interval calibration"):
        load(path)


def test_cli_predict_interval_columns_and_bad_levels(run, tmp_path, capsys):
    data = tmp_path / "new.csv"
    hetero_frame(40, seed=3).to_csv(data, index=False)
    out = tmp_path / "p.csv"
    assert main(["predict", str(run.dir), str(data), "--interval", "0.9", "-o", str(out)]) == 0
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["target_pred", "target_lower", "target_upper"]
    assert (frame.target_lower <= frame.target_pred).all()
    assert (frame.target_pred <= frame.target_upper).all()
    assert main(["predict", str(run.dir), str(data), "--interval", "0.8",
                 "--interval-mode", "constant", "-o", str(out)]) == 0
    width = pd.read_csv(out).eval("target_upper - target_lower")
    assert width.max() - width.min() < 1e-6
    capsys.readouterr()
    for bad in ("1.5", "0", "ninety"):
        with pytest.raises(SystemExit) as exit_:  # a usage error: argparse exits
            main(["predict", str(run.dir), str(data), "--interval", bad])
        assert exit_.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:") and "between 0 and 1" in err[0]


def test_cli_interval_on_an_uncalibrated_model_is_one_line(run, tmp_path, capsys):
    run.model.save(tmp_path / "m")
    path = tmp_path / "m" / "model.json"
    meta = json.loads(path.read_text())
    del meta["calibration"]
    path.write_text(json.dumps(meta))
    data = tmp_path / "new.csv"
    hetero_frame(5, seed=3).to_csv(data, index=False)
    assert main(["predict", str(tmp_path / "m"), str(data), "--interval", "0.9"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: this model has no interval calibration")


def test_report_shows_coverage_and_the_picture(run):
    from tabresnet.report import build_html

    html = build_html(run.dir)
    start = html.index('id="intervals"')
    section = html[start:html.index("</section>", start)]
    assert "Prediction intervals" in html and "test coverage" in section
    assert "test coverage of 90% intervals" in html  # a card at the top
    assert "data:image/png;base64," in section


def test_bag_is_calibrated_by_cv_plus(tmp_path):
    df = hetero_frame(400, seed=1)
    run = tabresnet.fit(df, target="target", out=tmp_path / "bag", test_size=0.25, bag=3,
                        **{**SMALL, "max_epochs": 6})
    cal = run.model.calibration
    assert cal.kind == "cv+" and len(cal.fold_sizes) == 3 and cal.n == 300
    loaded = load(tmp_path / "bag")
    new = hetero_frame(20, seed=5)
    pred, lower, upper = loaded.predict(new, interval=0.9)
    assert (lower < pred).all() and (pred < upper).all()
    for a, b in zip((pred, lower, upper), run.model.predict(new, interval=0.9)):
        np.testing.assert_array_equal(a, b)
    assert 0.8 <= run.metrics["intervals"]["test_constant"]["coverage"] <= 1.0


# -- estimator and MAPIE ------------------------------------------------------------------
def _estimator_data():
    df = hetero_frame(700, seed=11)
    X, y = df[["a", "b"]].to_numpy(), df["target"].to_numpy()
    return (X[:400], y[:400]), (X[400:500], y[400:500]), (X[500:], y[500:])


def test_estimator_predict_interval_matches_mapie_split_conformal():
    from mapie.regression import SplitConformalRegressor

    (X_tr, y_tr), (X_cal, y_cal), (X_te, y_te) = _estimator_data()
    est = tabresnet.ResNetRegressor(num_blocks=(1,), c_hidden=(16,), ensemble_size=2,
                                    max_epochs=8).fit(X_tr, y_tr)
    mapie = SplitConformalRegressor(est, confidence_level=[0.8, 0.9], prefit=True)
    mapie.conformalize(X_cal, y_cal)
    mapie_pred, mapie_bounds = mapie.predict_interval(X_te)
    est.calibrate(X_cal, y_cal)
    np.testing.assert_allclose(est.predict(X_te), mapie_pred, rtol=1e-12)
    for j, level in enumerate((0.8, 0.9)):
        ours = est.predict_interval(X_te, level=level, mode="constant")
        assert ours.shape == (len(X_te), 2)
        np.testing.assert_allclose(ours, mapie_bounds[:, :, j], rtol=1e-9, atol=1e-9)


def test_estimator_predict_keeps_the_sklearn_contract_and_bags():
    (X_tr, y_tr), _, (X_te, _) = _estimator_data()
    est = tabresnet.ResNetRegressor(num_blocks=(1,), c_hidden=(8,), ensemble_size=2,
                                    max_epochs=3, bag=2).fit(X_tr, y_tr)
    assert est.predict(X_te).shape == (len(X_te),)
    bounds = est.predict_interval(X_te, level=0.9)
    assert bounds.shape == (len(X_te), 2) and (bounds[:, 0] < bounds[:, 1]).all()
    assert est.model_.calibration.kind == "cv+"


# -- quantile regression ------------------------------------------------------------------
def test_pinball_loss_matches_its_definition():
    rng = np.random.default_rng(0)
    pred, y = rng.normal(size=(6, 2, 3)), rng.normal(size=(6, 2, 1))  # (B, k, T*Q), T=1, Q=3
    taus = np.array([0.1, 0.5, 0.9])
    diff = y - pred
    want = np.maximum(taus * diff, (taus - 1) * diff).mean()
    got = make_loss("quantile", quantiles=[0.9, 0.1, 0.5])(torch.tensor(pred), torch.tensor(y))
    assert float(got) == pytest.approx(want, rel=1e-12)


def test_quantile_outputs_are_sorted_even_where_the_network_crosses(run):
    q_model = TabularModel(run.model.network, run.model.config.replace(
        loss="quantile", quantiles=[0.1, 0.5, 0.9]), run.model.schema, run.model.preprocessor)
    out = q_model._units(np.array([[3.0, -1.0, 2.0]]))  # crossing raw outputs
    assert np.all(np.diff(out[0, 0]) > 0)


def test_quantile_regression_fit_predict_and_model_file(tmp_path, capsys):
    data = tmp_path / "d.csv"
    hetero_frame(500, seed=2).to_csv(data, index=False)
    out = tmp_path / "q"
    assert main(["fit", str(data), "--target", "target", "--out", str(out), "--no-report",
                 "--loss", "quantile", "--quantiles", "0.1", "0.5", "0.9", "--num-blocks", "1",
                 "--c-hidden", "16", "--ensemble-size", "2", "--max-epochs", "10",
                 "--progress", "none"]) == 0
    meta = json.loads((out / "model.json").read_text())
    assert meta["format_version"] == FORMAT_VERSION == 4 and meta["network"]["output_dim"] == 3
    model = load(out)
    assert model.quantiles == [0.1, 0.5, 0.9]
    df = hetero_frame(60, seed=4)
    frame = model.predict_frame(df)
    assert list(frame.columns) == ["target_pred", "target_q0.1", "target_q0.5", "target_q0.9"]
    q = frame[["target_q0.1", "target_q0.5", "target_q0.9"]].to_numpy()
    assert (np.diff(q, axis=1) >= 0).all()
    np.testing.assert_array_equal(frame.target_pred, frame["target_q0.5"])
    np.testing.assert_array_equal(model.predict_quantiles(df), q)
    # The point metrics score the median; the band is wider than nothing.
    assert model.evaluate(df)["rmse"] < df.target.std() * 1.5
    assert (q[:, 2] - q[:, 0]).mean() > 0.1
    # Intervals work on a quantile model too (conformal around its median).
    assert main(["predict", str(out), str(data), "--interval", "0.9",
                 "-o", str(tmp_path / "p.csv")]) == 0
    cols = pd.read_csv(tmp_path / "p.csv").columns
    assert list(cols) == ["target_pred", "target_q0.1", "target_q0.5", "target_q0.9",
                          "target_lower", "target_upper"]


def test_quantile_config_is_checked():
    from tabresnet.defaults import RunConfig

    with pytest.raises(ValueError, match="quantiles must be distinct numbers in \\(0, 1\\)"):
        RunConfig().replace(loss="quantile", quantiles=[0.1, 1.2])
    with pytest.raises(ValueError, match="needs at least one level"):
        RunConfig().replace(loss="quantile", quantiles=[])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert RunConfig().replace(loss="quantile").train.quantiles == [0.1, 0.5, 0.9]


def test_point_model_has_no_quantiles(run):
    with pytest.raises(ConfigError, match="predicts a point, not quantiles"):
        run.model.predict_quantiles(hetero_frame(3))


def test_the_estimator_docs_mapie_block_runs():
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "estimator.md").read_text()
    section = doc.split("## Prediction intervals and quantiles", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    namespace: dict = {}
    exec(compile(code, "docs/estimator.md", "exec"), namespace)  # noqa: S102 - our own docs
    assert namespace["ours"].shape == (100, 2)


def test_infinite_intervals_are_called_so_not_full_coverage(tmp_path, capsys):
    from tabresnet.cli import main
    from tabresnet.report import write_report

    path = tmp_path / "small.csv"
    hetero_frame(40, seed=3).to_csv(path, index=False)  # 5 calibration rows: 90% is infinite
    out = tmp_path / "run"
    assert main(["fit", str(path), "-t", "target", "--test-size", "0.3", "--out", str(out),
                 "--max-epochs", "2", "--progress", "none", "--no-report"]) == 0
    printed = capsys.readouterr().out
    assert "90% intervals (" in printed and "infinite, too few calibration rows" in printed
    assert "test coverage" not in printed
    html = write_report(out).read_text(encoding="utf-8")
    assert "infinite bounds: too few calibration rows" in html and "ValueError" not in html
