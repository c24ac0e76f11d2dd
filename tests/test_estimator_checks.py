"""scikit-learn's own estimator checks on both estimators, with small, fast settings.

Every check passes but one, marked as expected to fail (scikit-learn's public
``expected_failed_checks``): ``check_sample_weight_equivalence_on_dense_data``
fits 15 rows with integer weights and the same rows repeated (about 30) and
asks for the same predictions to ``rtol=1e-7``. A network cannot meet that:
the repeated table has a different row count, so it gets a validation split
for early stopping where the 15 rows train and validate on all rows
(``MIN_VAL_ROWS``), and its rows are shuffled into other batches (the
preprocessing, by contrast, is fitted weighted exactly as on repeated rows).
The equivalence the weights do give, with full batches and the same
validation rows, is tested in ``tests/test_weights.py``. The
settings learn the checks' near-linear data well enough for
``check_regressors_train`` (R² > 0.5 on its 200 rows), so the ``poor_score``
tag is not needed either.
"""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from tabresnet.estimator import ResNetRegressor, TunedResNetRegressor

FAST = dict(max_epochs=10, batch_size=32, lr=1e-2, num_blocks=(1,), c_hidden=(8,))
# One trial over one cheap option: the checks test the estimator, not the search.
SPACE = {"dropout": {"type": "float", "low": 0.0, "high": 0.2}}


EXPECTED_FAILURES = {
    "check_sample_weight_equivalence_on_dense_data": (
        "weighted and repeated rows train alike only within training noise: the repeated "
        "table has its own validation split and batches (see the module docstring)"
    ),
}


@parametrize_with_checks(
    [ResNetRegressor(**FAST), TunedResNetRegressor(n_trials=1, search_space=SPACE, **FAST)],
    expected_failed_checks=lambda estimator: EXPECTED_FAILURES,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
