"""ResNetRegressor as a scikit-learn citizen: parameters, inputs, composition, persistence.

scikit-learn's own estimator checks run in tests/test_estimator_checks.py.
"""

from __future__ import annotations

import inspect
import pickle
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import tabresnet
from tabresnet.defaults import flat_defaults, flat_fields
from tabresnet.errors import ConfigError, DataError, TabResNetWarning
from tabresnet.estimator import (
    EXCLUDED,
    MIN_VAL_ROWS,
    OVERRIDES,
    TUNED_EXCLUDED,
    ResNetRegressor,
    TunedResNetRegressor,
)

# Small and fast, yet enough steps to learn a near-linear target.
FAST = dict(max_epochs=10, batch_size=32, lr=1e-2, num_blocks=(1,), c_hidden=(8,))


def linear_data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    return X, X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=n)


# -- parameters -------------------------------------------------------------------


@pytest.mark.parametrize("cls", [ResNetRegressor, TunedResNetRegressor])
def test_init_is_held_to_the_defaults(cls):
    # The written-out __init__ must list every flat option of tabresnet.defaults
    # (less EXCLUDED) with its default (OVERRIDES aside; lists as tuples).
    defaults = flat_defaults()
    params = inspect.signature(cls).parameters
    skip = {**EXCLUDED, **(TUNED_EXCLUDED if cls is TunedResNetRegressor else {})}
    wanted = [name for name in flat_fields() if name not in skip]
    missing = [name for name in wanted if name not in params]
    assert not missing, (
        f"{cls.__name__}.__init__ lacks the option(s) {missing} of tabresnet.defaults; "
        "add them (keyword-only, with the default) and document them"
    )
    extra = [n for n in params if n in skip or (n not in defaults and cls is ResNetRegressor)]
    assert not extra, f"{cls.__name__}.__init__ has {extra}, which tabresnet.defaults lacks"
    for name in wanted:
        expected = OVERRIDES.get(name, defaults[name])
        expected = tuple(expected) if isinstance(expected, list) else expected
        value = params[name].default
        assert value == expected and type(value) is type(expected), (
            f"{cls.__name__}(..., {name}={value!r}) but tabresnet.defaults says {expected!r}"
        )


def test_signature_is_keyword_only_and_init_only_stores():
    sig = inspect.signature(ResNetRegressor)
    assert all(p.kind is p.KEYWORD_ONLY for p in sig.parameters.values())
    with pytest.raises(TypeError, match="no_such_option"):
        ResNetRegressor(no_such_option=1)
    with pytest.raises(TypeError):
        ResNetRegressor(5)
    # Invalid values are accepted by __init__ and refused by fit (sklearn's rule).
    est = ResNetRegressor(lr=-1.0, num_blocks=(1, 2), c_hidden=(8, 8))
    assert est.lr == -1.0 and vars(est).keys() == est.get_params().keys()
    with pytest.raises(ConfigError, match="lr must be positive"):
        est.fit(*linear_data(20))


def test_a_parameter_the_fit_ignores_is_named_in_a_warning_and_a_default_one_is_not():
    # scikit-learn's way (LogisticRegression's l1_ratio without elasticnet): warn, fit.
    tiny = dict(max_epochs=1, num_blocks=(1,), c_hidden=(8,))
    with pytest.warns(TabResNetWarning, match="huber_delta \\(it needs loss huber"):
        ResNetRegressor(huber_delta=2.0, **tiny).fit(*linear_data(20))
    with pytest.warns(TabResNetWarning, match="quantiles"):
        est = ResNetRegressor(quantiles=(0.2, 0.8), **tiny).fit(*linear_data(20))
    assert est.config_.train.loss == "mse"
    # every parameter is passed on; only those changed from the default count as given
    with warnings.catch_warnings():
        warnings.simplefilter("error", TabResNetWarning)
        ResNetRegressor(loss="mae", **tiny).fit(*linear_data(20))


@pytest.mark.parametrize("cls", [ResNetRegressor, TunedResNetRegressor])
def test_every_parameter_is_documented(cls):
    documented = set()
    for names in re.findall(r"\n    (\w+(?:, \w+)*) : ", cls.__doc__):
        documented.update(names.split(", "))
    assert set(cls().get_params()) <= documented


def test_lists_and_tuples_are_both_accepted():
    X, y = linear_data(40)
    a = ResNetRegressor(**{**FAST, "c_hidden": [8], "num_blocks": [1]}).fit(X, y)
    b = ResNetRegressor(**FAST).fit(X, y)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    assert a.config_.model.c_hidden == [8]


# -- fitting and predicting ----------------------------------------------------------


def test_fit_predict_learns_and_sets_attributes():
    X, y = linear_data(200)
    est = ResNetRegressor(**{**FAST, "max_epochs": 20}).fit(X, y)
    assert est.score(X, y) > 0.8
    assert est.n_features_in_ == 3 and not hasattr(est, "feature_names_in_")
    assert est.n_outputs_ == 1 and est.predict(X).shape == (200,)
    assert est.n_epochs_ == len(est.history_) == 20
    assert 0 <= est.best_epoch_ < est.n_epochs_
    assert est.best_val_rmse_ == pytest.approx(est.history_["val_rmse"].min())
    assert isinstance(est.model_, tabresnet.artifact.TabularModel)
    assert est.model_.schema.targets == ["y"]


def test_same_seed_same_model_other_seed_other_model():
    X, y = linear_data(60)
    a = ResNetRegressor(**FAST, seed=3).fit(X, y).predict(X)
    b = ResNetRegressor(**FAST, seed=3).fit(X, y).predict(X)
    c = ResNetRegressor(**FAST, seed=4).fit(X, y).predict(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_dataframe_with_categorical_and_missing_values():
    rng = np.random.default_rng(1)
    n = 150
    X = pd.DataFrame(
        {
            "size": rng.uniform(30, 120, n),
            "rooms": rng.integers(1, 5, n).astype(float),
            "city": pd.Categorical(rng.choice(["Oslo", "Rome", "Lima"], n)),
            "kind": rng.choice(["flat", "house", None], n),
        },
        index=np.arange(1000, 1000 + n),  # not a RangeIndex: rows are matched by position
    )
    X.loc[X.index[::7], "size"] = np.nan
    y = pd.Series(np.nan_to_num(X["size"].to_numpy(), nan=75.0) / 10, name="price")
    y = y + (X["city"] == "Oslo").to_numpy() * 3
    est = ResNetRegressor(**FAST).fit(X, y)
    assert list(est.feature_names_in_) == ["size", "rooms", "city", "kind"]
    assert est.model_.schema.categorical == ["city", "kind"]
    assert est.model_.schema.targets == ["price"]  # the Series' name
    pred = est.predict(X)
    assert pred.shape == (n,) and np.isfinite(pred).all()
    # Columns in another order are refused, as by every sklearn estimator.
    with pytest.raises(ValueError, match="feature names"):
        est.predict(X[["rooms", "size", "city", "kind"]])
    # Unseen categories and all-missing rows still predict.
    odd = pd.DataFrame({"size": [np.nan], "rooms": [np.nan], "city": ["Nuuk"], "kind": [None]})
    assert np.isfinite(est.predict(odd)).all()


def test_object_array_with_strings_is_a_table():
    rng = np.random.default_rng(2)
    num = rng.normal(size=80)
    cat = rng.choice(["a", "b"], 80)
    X = np.empty((80, 2), dtype=object)
    X[:, 0], X[:, 1] = num, cat
    y = num + (cat == "a")
    est = ResNetRegressor(**FAST).fit(X, y)
    assert est.model_.schema.numeric == ["x0"] and est.model_.schema.categorical == ["x1"]
    assert est.predict(X[:5]).shape == (5,)


def test_infinity_is_refused_for_arrays_and_dataframes():
    X, y = linear_data(30)
    X[3, 1] = np.inf
    for data in (X, pd.DataFrame(X, columns=["a", "b", "c"])):
        with pytest.raises(ValueError, match="infinity"):
            ResNetRegressor(**FAST).fit(data, y)


@pytest.mark.parametrize("shape", [(60, 3), (60, 1)])
def test_two_dimensional_y_gives_two_dimensional_predictions(shape):
    X, y = linear_data(60)
    Y = np.column_stack([y * (j + 1) for j in range(shape[1])])
    est = ResNetRegressor(**FAST).fit(X, Y)
    assert est.predict(X).shape == shape and est.n_outputs_ == shape[1]
    names = pd.DataFrame(Y, columns=[f"t{j}" for j in range(shape[1])])
    assert est.fit(X, names).model_.schema.targets == list(names.columns)


def test_few_rows_train_and_validate_on_the_same_rows():
    X, y = linear_data(10)  # 10 * 0.16 rounds to 2 validation rows < MIN_VAL_ROWS
    assert round(10 * 0.16) < MIN_VAL_ROWS
    est = ResNetRegressor(**FAST).fit(X, y)
    assert est.model_.metrics["val"]["n"] == 10
    assert np.isfinite(est.predict(X)).all()
    with pytest.raises(ValueError, match="1 sample"):
        est.fit(X[:1], y[:1])


def test_constant_target_is_predicted():
    X, _ = linear_data(40)
    est = ResNetRegressor(**FAST).fit(X, np.full(40, 7.0))
    np.testing.assert_allclose(est.predict(X), 7.0, atol=1e-3)


def test_feature_and_target_names_never_collide():
    X = pd.DataFrame({"y": np.arange(20.0), "x0": np.arange(20.0) % 3})
    est = ResNetRegressor(**FAST).fit(X, np.arange(20.0))
    assert est.model_.schema.feature_columns == ["y", "x0"]
    assert est.model_.schema.targets == ["_y"]


# -- composition ----------------------------------------------------------------------


def test_clone_pipeline_and_transformed_target():
    X, y = linear_data(80)
    est = ResNetRegressor(**FAST, dropout=0.0)
    twin = clone(est)
    assert twin.get_params() == est.get_params() and not hasattr(twin, "model_")
    pipe = make_pipeline(StandardScaler(), est).fit(X, y)
    assert pipe.predict(X).shape == (80,)
    ttr = TransformedTargetRegressor(regressor=est, func=np.log, inverse_func=np.exp)
    ttr.fit(X, np.abs(y) + 1)
    assert ttr.predict(X).shape == (80,)


def test_column_transformer_pipeline_on_dataframe():
    rng = np.random.default_rng(3)
    X = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60)})
    pre = ColumnTransformer([("scale", StandardScaler(), ["a"])], remainder="passthrough")
    pipe = make_pipeline(pre, ResNetRegressor(**FAST)).fit(X, X.a - X.b)
    assert pipe.predict(X).shape == (60,)


def test_cross_val_score_and_grid_search():
    X, y = linear_data(90)
    scores = cross_val_score(ResNetRegressor(**FAST), X, y, cv=2)
    assert scores.shape == (2,) and np.isfinite(scores).all()
    grid = GridSearchCV(ResNetRegressor(**FAST), {"dropout": np.array([0.0, 0.2])}, cv=2)
    grid.fit(X, y)
    assert grid.best_params_["dropout"] in (0.0, 0.2)
    # numpy scalars from the grid reach the model file as plain numbers
    assert type(grid.best_estimator_.config_.model.dropout) is float
    assert grid.best_estimator_.predict(X).shape == (90,)


# -- persistence ----------------------------------------------------------------------


def test_save_and_load_predict_the_same_numbers(tmp_path):
    X, y = linear_data(60)
    est = ResNetRegressor(**FAST).fit(X, y)
    path = est.save(tmp_path / "model")
    assert path.name == "model.json"
    loaded = tabresnet.load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))

    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    est2 = ResNetRegressor(**FAST).fit(frame, y)
    loaded2 = tabresnet.load(est2.save(tmp_path / "frame"))
    np.testing.assert_array_equal(loaded2.predict(frame[["c", "a", "b"]]), est2.predict(frame))


def test_pickle_round_trip():
    X, y = linear_data(40)
    est = ResNetRegressor(**FAST).fit(X, y)
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.predict(X), est.predict(X))


def test_unfitted_estimator_refuses_predict_and_save(tmp_path):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        ResNetRegressor().predict(np.zeros((2, 3)))
    with pytest.raises(NotFittedError):
        ResNetRegressor().save(tmp_path)


# -- TunedResNetRegressor ---------------------------------------------------------------

SPACE = {"lr": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True}}


def test_tuning_defaults_are_tunes_own():
    from tabresnet.tuning import tune

    tune_defaults = {k: p.default for k, p in inspect.signature(tune).parameters.items()}
    own = inspect.signature(TunedResNetRegressor).parameters
    renamed = {"n_trials": "trials", "search_space": "space"}
    for name in ("n_trials", "timeout", "search_space", "sampler", "pruner"):
        assert own[name].default == tune_defaults[renamed.get(name, name)], name
    # The estimator keeps the validation split by default.
    assert own["cv"].default is None and tune_defaults["cv"] == "auto"


def test_tuned_fit_pipeline_save_and_load(tmp_path):
    X, y = linear_data(80)
    est = TunedResNetRegressor(n_trials=3, search_space=SPACE, sampler="random", **FAST)
    pipe = make_pipeline(StandardScaler(), est).fit(X, y)
    tuned = pipe[-1]
    assert list(tuned.best_params_) == ["lr"] and len(tuned.trials_) == 3
    assert tuned.best_value_ == pytest.approx(tuned.trials_["value"].min())
    assert tuned.config_.train.lr == tuned.best_params_["lr"]
    assert tuned.config_.model.c_hidden == [8]  # the fixed options stay fixed
    Xs = pipe[0].transform(X)
    pred = pipe.predict(X)
    np.testing.assert_array_equal(tabresnet.load(tuned.save(tmp_path / "m")).predict(Xs), pred)
    # Same seed, same search and model; YAML text is accepted as the space.
    again = clone(est).set_params(
        search_space="lr: {type: float, low: 1.0e-3, high: 3.0e-2, log: true}"
    )
    np.testing.assert_array_equal(again.fit(Xs, y).predict(Xs), pred)


@pytest.mark.parametrize("selection", [True, False])
def test_tuned_with_pack_trains_its_trials_packed(tmp_path, selection):
    X, y = linear_data(80)
    est = TunedResNetRegressor(n_trials=3, search_space=SPACE, sampler="random", pack=2,
                               pack_ensemble=selection, **FAST).fit(X, y)
    assert len(est.trials_) == 3
    assert set(est.trials_["user_attrs_pack"]) == {2}  # every trial was a packed member
    tuning = est.model_.metrics["tuning"]
    assert tuning["pack"] == 2
    assert (len(tuning["ensemble"]) >= 1) if selection else (len(tuning["ensemble"]) == 1)
    assert est.best_value_ == pytest.approx(est.trials_["value"].min())
    pred = est.predict(X)
    np.testing.assert_allclose(tabresnet.load(est.save(tmp_path / "m")).predict(X), pred,
                               rtol=1e-6)
    assert np.isfinite(est.predict_interval(X, 0.9)).all()


def test_tuned_with_cv_keeps_the_bag_of_fold_networks(tmp_path):
    X, y = linear_data(80)
    est = TunedResNetRegressor(n_trials=1, search_space=SPACE, cv=2, **FAST).fit(X, y)
    assert est.model_.n_members == 2
    assert est.trials_["user_attrs_enqueued"].iloc[0] == "defaults"
    pred = est.predict(X)
    assert pred.shape == (80,) and np.isfinite(pred).all()
    np.testing.assert_allclose(tabresnet.load(est.save(tmp_path / "m")).predict(X), pred,
                               rtol=1e-6)


def test_a_bag_on_few_rows_is_still_a_bag_or_says_why_not():
    X, y = linear_data(n=32)  # fewer than 5 validation rows per fold: a bag all the same
    est = ResNetRegressor(bag=10, **FAST).fit(X, y)
    assert est.oof_prediction_.shape == (32,) and len(est.model_.network.members) == 10
    with pytest.raises(DataError, match="too few rows for 10-fold .* lower bag$"):
        ResNetRegressor(bag=10, **FAST).fit(X[:8], y[:8])


def test_a_bags_out_of_fold_predictions_line_up_with_the_rows_of_X():
    X, y = linear_data(n=120)
    w = np.ones(len(y))
    w[[3, 50]] = 0.0  # weighted out: not trained on, so no out-of-fold prediction
    est = ResNetRegressor(bag=3, **FAST).fit(X, y, sample_weight=w)
    oof = est.oof_prediction_
    assert oof.shape == (120,) and np.flatnonzero(np.isnan(oof)).tolist() == [3, 50]
    kept = ~np.isnan(oof)
    rmse = np.sqrt(np.mean((oof[kept] - y[kept]) ** 2))
    assert rmse == pytest.approx(est.best_val_rmse_)  # the bag's out-of-fold score
    # Out of fold, not the bag's own prediction of rows it trained on.
    assert not np.allclose(oof[kept], est.predict(X)[kept], rtol=1e-3)
    est.set_params(bag=0).fit(X, y)
    assert not hasattr(est, "oof_prediction_")  # no stale attribute from the bag's fit


def test_predict_interval_without_held_out_rows_says_how_to_calibrate():
    X, y = linear_data(n=20)  # 16% of 20: 3 validation rows, fewer than MIN_VAL_ROWS
    est = ResNetRegressor(**FAST).fit(X, y)
    with pytest.raises(ConfigError, match=r"fewer than 5 validation rows .*est\.calibrate"):
        est.predict_interval(X)
    est.calibrate(*linear_data(n=40, seed=1))
    assert est.predict_interval(X).shape == (20, 2)


def test_a_scalar_sample_weight_weighs_every_row_alike():
    X, y = linear_data(n=60)
    plain = ResNetRegressor(**FAST).fit(X, y).predict(X)
    np.testing.assert_array_equal(ResNetRegressor(**FAST).fit(X, y, sample_weight=2.0).predict(X),
                                  plain)
