"""scikit-learn's own estimator checks on both estimators, with small, fast settings.

Every check passes; none is marked as expected to fail. The settings learn the
checks' near-linear data well enough for ``check_regressors_train`` (R² > 0.5
on its 200 rows), so the ``poor_score`` tag is not needed either.
"""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from tabresnet.estimator import ResNetRegressor, TunedResNetRegressor

FAST = dict(max_epochs=10, batch_size=32, lr=1e-2, num_blocks=(1,), c_hidden=(8,))
# Two trials over one cheap option: the checks test the estimator, not the search.
SPACE = {"dropout": {"type": "float", "low": 0.0, "high": 0.2}}


@parametrize_with_checks(
    [ResNetRegressor(**FAST), TunedResNetRegressor(n_trials=2, search_space=SPACE, **FAST)],
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
