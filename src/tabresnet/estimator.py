"""scikit-learn estimators: :class:`ResNetRegressor` and :class:`TunedResNetRegressor`.

Use them like any scikit-learn regressor (``Pipeline``, ``cross_val_score``,
``GridSearchCV``, ``clone``)::

    from tabresnet import ResNetRegressor
    model = ResNetRegressor(max_epochs=100, c_hidden=(64, 64)).fit(X_train, y_train)
    model.score(X_test, y_test)          # R²
    model.save("model_dir")              # the CLI's model file; tabresnet.load reads it

Every constructor argument is a flat option of :mod:`tabresnet.defaults` (the
one source of defaults) with that module's default, written out as
scikit-learn does; ``tests/test_estimator.py`` holds the two lists together.

>>> import numpy as np
>>> from tabresnet import ResNetRegressor
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(200, 3))
>>> y = X @ [1.0, -2.0, 0.5]
>>> est = ResNetRegressor(max_epochs=20, num_blocks=(1,), c_hidden=(16,), lr=3e-3)
>>> est.fit(X, y).predict(X[:4]).shape
(4,)
>>> est.score(X, y) > 0.5
True
"""

from __future__ import annotations

import numbers
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import (
    check_array,
    check_consistent_length,
    check_is_fitted,
    validate_data,
)

from .data import check_weights, clean_weight
from .defaults import RunConfig, flat_fields, ignored_options
from .errors import ConfigError, DataError, TabResNetWarning

__all__ = [
    "EXCLUDED",
    "MIN_VAL_ROWS",
    "OVERRIDES",
    "TUNED_EXCLUDED",
    "ResNetRegressor",
    "TunedResNetRegressor",
]

#: Flat options of :mod:`tabresnet.defaults` an estimator does not take, and why.
EXCLUDED: dict[str, str] = {
    "test_size": "an estimator trains on every row it is given (less the validation "
    "split); hold test rows out yourself, e.g. with train_test_split",
    "cv_folds": "cross-validate an estimator with sklearn's cross_val_score",
    "logger": "fit writes no run directory, so there is nothing to log into",
    "weight": "pass the weights to fit as sample_weight (scikit-learn's convention)",
}

#: Options :class:`TunedResNetRegressor` does not take besides :data:`EXCLUDED`, and why.
TUNED_EXCLUDED: dict[str, str] = {
    "bag": "tune keeps the best configuration's fold networks as a bag through cv=K",
    "refit": "tune retrains its best configuration with early stopping; to refit it on "
    "every row, pass best_params_ to ResNetRegressor(refit=True)",
}

#: Defaults that differ from the command line's, and why.
OVERRIDES: dict[str, Any] = {
    # A library call prints nothing unless asked: GridSearchCV fits hundreds of models.
    "progress": "none",
}

#: Below this many validation rows the training rows double as the
#: validation set (see :meth:`ResNetRegressor.fit`).
MIN_VAL_ROWS = 5


def _store(estimator: BaseEstimator, arguments: dict[str, Any]) -> None:
    """``__init__`` only stores its arguments (scikit-learn's rule)."""
    for name, value in arguments.items():
        if name not in ("self", "__class__"):
            setattr(estimator, name, value)


# -- input handling ----------------------------------------------------------------


def _plain(value: Any) -> Any:
    """Tuples as lists and numpy scalars (from a GridSearchCV grid) as Python numbers."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value


def _is_table(X: Any) -> bool:
    """DataFrames, and object arrays holding strings, keep per-column types."""
    if isinstance(X, pd.DataFrame):
        return True
    return (
        isinstance(X, np.ndarray)
        and X.dtype == object
        and X.ndim == 2
        and any(isinstance(v, str) for v in X.ravel())
    )


def _check_table(X: Any, name: str) -> pd.DataFrame:
    """Shape and value checks of the table path (validate_data's, for mixed columns)."""
    if X.ndim != 2:  # pragma: no cover - _is_table only passes 2-D input
        raise ValueError(f"Expected a 2-D table, got shape {X.shape}")
    if X.shape[1] == 0:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={X.shape}) while a minimum of 1 is "
            f"required by {name}."
        )
    frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(X).infer_objects()
    numeric = frame.select_dtypes(include="number")
    if numeric.shape[1]:
        values = numeric.to_numpy(dtype=np.float64, na_value=np.nan)
        if np.isinf(values).any():
            # Same rule as the array path (validate_data's "allow-nan").
            raise ValueError("Input X contains infinity or a value too large for dtype('float64').")
    return frame


class _ResNetBase(RegressorMixin, BaseEstimator):
    """What both estimators share: parameters -> RunConfig, input checks, predict, save."""

    def _run_config(self) -> RunConfig:
        from .training import resolve_config

        fields = flat_fields()
        values = {k: _plain(v) for k, v in self.get_params().items() if k in fields}
        cfg = resolve_config(None, values)
        # An inactive parameter is ignored, as scikit-learn's own estimators do
        # (with a warning, as LogisticRegression's l1_ratio without elasticnet),
        # so that a grid over both still runs; fit() and the CLI refuse it.
        listed = ignored_options(cfg, values)
        if listed:
            warnings.warn(f"parameter(s) this fit ignores: {listed}", TabResNetWarning,
                          stacklevel=4)
        return cfg

    def _columns(self) -> list[str]:
        """The names the model sees: ``feature_names_in_`` or ``x0, x1, ...``."""
        names = getattr(self, "feature_names_in_", None)
        if names is not None:
            return [str(n) for n in names]
        return [f"x{i}" for i in range(self.n_features_in_)]

    def _frame(self, X: Any, y: Any = None, fitting: bool = False) -> Any:
        """Validate ``X`` (and ``y`` when fitting) into a DataFrame with :meth:`_columns`."""
        name = type(self).__name__
        if _is_table(X):
            if fitting:
                X, y = validate_data(self, X, y, reset=True, skip_check_array=True)
            else:
                X = validate_data(self, X, reset=False, skip_check_array=True)
            table = _check_table(X, name)
            if fitting and len(table) < 2:
                raise ValueError(
                    f"{name} needs at least 2 samples to train, however: n_samples = {len(table)}"
                )
            if not fitting and len(table) == 0:
                raise ValueError("Found array with 0 sample(s) while a minimum of 1 is required.")
            frame = table.set_axis(self._columns(), axis=1)
        else:
            kw = {"dtype": np.float64, "ensure_all_finite": "allow-nan"}
            if fitting:
                X, y = validate_data(
                    self,
                    X,
                    y,
                    reset=True,
                    multi_output=True,
                    y_numeric=True,
                    ensure_min_samples=2,
                    **kw,
                )
            else:
                X = validate_data(self, X, reset=False, **kw)
            frame = pd.DataFrame(X, columns=self._columns(), copy=False)
        if not fitting:
            return frame
        # NaN and inf in y raise here, as in sklearn's own regressors.
        y = check_array(y, ensure_2d=False, dtype=np.float64, input_name="y", estimator=self)
        if y.ndim not in (1, 2):  # pragma: no cover - check_array refuses > 2 dimensions
            raise ValueError(f"y must be 1-D or 2-D, however: shape {y.shape}")
        check_consistent_length(frame, y)
        return frame, y

    def _fit_data(self, X: Any, y: Any) -> tuple[pd.DataFrame, list[str], RunConfig]:
        """Check the parameters and the data; the training table and its target names."""
        cfg = self._run_config()
        y_in = y
        frame, y = self._frame(X, y, fitting=True)
        self._y_ndim = y.ndim
        y2 = y.reshape(len(y), -1)
        self.n_outputs_ = int(y2.shape[1])
        targets = _target_names(y_in, self.n_outputs_, frame.columns)
        frame = frame.assign(**{t: y2[:, j] for j, t in enumerate(targets)})
        return frame, targets, cfg

    def _weighted(
        self, frame: pd.DataFrame, sample_weight: Any, cfg: RunConfig
    ) -> tuple[pd.DataFrame, RunConfig]:
        """The table with the weights as a column (rows of weight 0 left out) and its config.

        Equal weights change nothing (the loss normalises them), so they train
        exactly as no weights do.
        """
        if sample_weight is None:
            return frame, cfg
        if isinstance(sample_weight, numbers.Number):  # one for every row, as scikit-learn allows
            check_weights(np.atleast_1d(np.asarray(sample_weight, dtype=np.float64)),
                          "sample_weight")
            return frame, cfg
        sw = check_array(sample_weight, ensure_2d=False, dtype=np.float64,
                         ensure_all_finite=False, input_name="sample_weight")
        if sw.ndim != 1:
            raise ValueError(f"sample_weight must be 1-D, however: shape {sw.shape}")
        check_consistent_length(frame, sw)
        sw = check_weights(sw, "sample_weight")
        if np.all(sw == sw[0]):
            return frame, cfg
        from .training.prepare import free_column

        name = free_column(frame.columns, "sample_weight")  # never a feature's or target's
        frame = clean_weight(frame.assign(**{name: sw}), name)
        if len(frame) < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 samples of positive weight to train, "
                f"however: {len(frame)}"
            )
        return frame, cfg.replace(weight=name)

    def _split(self, n: int, cfg: RunConfig) -> tuple[np.ndarray, np.ndarray]:
        """Training and validation row positions (validation: for early stopping only)."""
        from .data import split_indices

        try:
            train, val, _ = split_indices(n, cfg.data.val_size, 0.0, cfg.seed)
        except DataError:
            val = np.empty(0, dtype=np.int64)
        if len(val) < MIN_VAL_ROWS:
            # NOTE: with a handful of rows a held-out set is noise and leaves too few
            # rows to learn from; train on all rows and let early stopping watch the
            # training RMSE (in practice: train for max_epochs).
            train = val = np.arange(n, dtype=np.int64)
        return train, val

    def predict(self, X: Any) -> np.ndarray:
        """Predict the target(s) of the rows of ``X``.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            The columns seen in :meth:`fit`, in the same order.

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_outputs)
            1-D when ``fit`` got a 1-D ``y``, else 2-D; float64.
        """
        check_is_fitted(self)
        frame = self._frame(X)
        pred = np.asarray(self.model_.predict(frame), dtype=np.float64)
        return pred.reshape(len(frame), -1) if self._y_ndim == 2 else pred.reshape(-1)

    def predict_interval(self, X: Any, level: float = 0.9, mode: str | None = None) -> np.ndarray:
        """Conformal prediction intervals for the rows of ``X``.

        :meth:`fit` calibrates the model on its validation rows (split
        conformal, Lei et al. 2018) or, with ``bag``, on its out-of-fold rows
        (CV+, Barber et al. 2021); :meth:`calibrate` recalibrates on rows you
        held out. :meth:`predict` is unchanged (scikit-learn's contract).

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
        level : float, default=0.9
            The share of new rows' true values the intervals should hold, in (0, 1).
        mode : {"adaptive", "constant"} or None, default=None
            Widths that follow the spread of the ensemble's members, or one
            width for every row; None: the calibration's choice.

        Returns
        -------
        ndarray of shape (n_samples, 2) or (n_samples, 2, n_outputs)
            Lower and upper bounds (as MAPIE lays them out), float64; the
            second form when ``fit`` got a 2-D ``y``.
        """
        check_is_fitted(self)
        if self.model_.calibration is None:
            raise ConfigError(
                f"no interval calibration: with fewer than {MIN_VAL_ROWS} validation rows "
                "fit trained on every row and kept none to calibrate on; call "
                "est.calibrate(X_held_out, y_held_out) first"
            )
        frame = self._frame(X)
        _, lower, upper = self.model_.predict_interval(frame, level, mode=mode)
        out = np.stack([lower.reshape(len(frame), -1), upper.reshape(len(frame), -1)], axis=1)
        return out if self._y_ndim == 2 else out[:, :, 0]

    def calibrate(self, X: Any, y: Any, mode: str | None = None) -> _ResNetBase:
        """Recalibrate the intervals on held-out rows (split conformal); returns ``self``.

        Rows the model never saw make the coverage guarantee of
        :meth:`predict_interval` exact (Lei et al. 2018). ``mode`` as there:
        the default mode to keep, None to choose the narrower.
        """
        check_is_fitted(self)
        frame = self._frame(X)
        y2 = check_array(y, ensure_2d=False, dtype=np.float64, input_name="y", estimator=self)
        check_consistent_length(frame, y2)
        y2 = y2.reshape(len(y2), -1)
        targets = self.model_.targets
        if y2.shape[1] != len(targets):
            raise ValueError(f"y has {y2.shape[1]} column(s), the model {len(targets)} target(s)")
        self.model_.calibrate(frame.assign(**{t: y2[:, j] for j, t in enumerate(targets)}),
                              mode=mode)
        return self

    def predict_quantiles(self, X: Any) -> np.ndarray:
        """The quantiles of a ``loss="quantile"`` model, sorted (no crossing).

        Returns
        -------
        ndarray of shape (n_samples, n_quantiles) or (n_samples, n_outputs, n_quantiles)
        """
        check_is_fitted(self)
        frame = self._frame(X)
        q = np.asarray(self.model_.predict_quantiles(frame), dtype=np.float64)
        return q.reshape(len(frame), -1, q.shape[-1]) if self._y_ndim == 2 else q.reshape(
            len(frame), q.shape[-1])

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the fitted model as the command line's model file.

        Parameters
        ----------
        path : path
            A directory; ``model.json`` and ``model.safetensors`` go into it.
        overwrite : bool, default=False
            Replace a model the directory holds already (refused otherwise).

        Returns
        -------
        Path
            The ``model.json`` path; :func:`tabresnet.load` reads it back as a
            :class:`~tabresnet.artifact.TabularModel` that predicts the same numbers
            from the same columns (1-D for one target).
        """
        check_is_fitted(self)
        return self.model_.save(path, overwrite=overwrite)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # Missing numbers are imputed (median + an indicator column).
        tags.input_tags.allow_nan = True
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags


def _target_names(y: Any, n_outputs: int, features: pd.Index) -> list[str]:
    """Target column names: a Series' or DataFrame's own, else ``y`` / ``y0, y1, ...``."""
    names: list[str] | None = None
    if isinstance(y, pd.Series) and isinstance(y.name, str) and n_outputs == 1:
        names = [y.name]
    elif isinstance(y, pd.DataFrame) and all(isinstance(c, str) for c in y.columns):
        names = list(y.columns) if len(set(y.columns)) == n_outputs else None
    if names is None:
        names = ["y"] if n_outputs == 1 else [f"y{j}" for j in range(n_outputs)]
    taken = set(map(str, features))
    out = []
    for name in names:
        while name in taken:  # a feature has the name: never overwrite it
            name = f"_{name}"
        taken.add(name)
        out.append(name)
    return out


class ResNetRegressor(_ResNetBase):
    """A residual network for tabular regression, as a scikit-learn estimator.

    Numeric columns are quantile-normalised after median imputation (with a
    missing-value indicator), categorical columns are one-hot encoded or
    embedded, the target is standardised; a validation split of the training
    rows picks the best epoch (early stopping). All of it is fitted in
    :meth:`fit`, on the training rows only.

    Every argument is keyword-only and is the flat option of the same name in
    :mod:`tabresnet.defaults`, with the same default, except ``progress``
    (``"none"``: a library call prints nothing). Lists are given as tuples.

    Parameters
    ----------
    arch : {"resnet", "resnet_regression", "preact_resnet_regression"}, default="resnet"
        The grouped ResNet or one of the chapter's single-width networks.
    block : {"PreActResNetBlock", "ResNetBlock"}, default="PreActResNetBlock"
        The residual block: pre-activation or the original post-activation one.
    num_blocks : tuple of int, default=(2,)
        Blocks per group.
    c_hidden : tuple of int, default=(128,)
        Width of each group.
    activation : str, default="relu"
        Activation by name (see ``tabresnet.models.ACTIVATIONS``).
    norm : {"batch", "layer", "none"} or None, default=None
        None: the block's own (BatchNorm for ResNetBlock, LayerNorm for PreActResNetBlock).
    dropout : float, default=0.0
        Residual dropout in every block.
    shortcut : {"projection", "zero_pad"}, default="projection"
        Shortcut where the width changes.
    zero_init : bool, default=False
        Zero each block's branch at construction.
    init : {"zero_residual", "torch", "kaiming_in", "chapter"}, default="zero_residual"
        Weight initialisation.
    embedding_dim : int, default=8
        Width of each high-cardinality categorical embedding.
    num_embedding : {"ple", "plr", "none"}, default="ple"
        Embedding of each numeric column (Gorishniy et al. 2022): piecewise-linear
        on training-quantile bins, or periodic.
    num_embedding_dim : int, default=8
        Embedding size per numeric column.
    n_bins : int, default=48
        PLE bins per column.
    n_frequencies : int, default=48
        PLR frequencies per column.
    frequency_scale : float, default=0.1
        PLR initial frequency scale.
    ensemble_size : int, default=4
        Members trained together in one network (TabM); 1 is a plain network.
    ensemble : {"mini", "batch", "packed"}, default="mini"
        Shared blocks with an adapter on the first layer (TabM-mini), on every
        Linear (BatchEnsemble), or independent members.
    categorical, numeric, ignore : tuple of str, default=()
        Override the inferred role of these columns.
    int_as_categorical : int, default=0
        Integer columns with at most this many distinct values are categorical.
    numeric_transform : {"quantile", "standard", "none"}, default="quantile"
        Scaling of numeric columns after median imputation.
    n_quantiles : int, default=1000
        Quantiles of the quantile-normal transform.
    onehot_max_cardinality : int, default=16
        Categoricals up to this many categories are one-hot encoded, others embedded.
    target_transform : {"standard", "none"}, default="standard"
        Standardise the target for training.
    val_size : float, default=0.16
        Share of the training rows held out to choose the epoch (early stopping);
        with fewer than ``MIN_VAL_ROWS`` such rows the training rows are used instead.
    bag : int, default=0
        Train K networks on K folds and average them when K > 1 (every row trains
        K - 1 of them); the estimator then keeps no separate validation split.
    max_epochs : int, default=300
        Upper bound; early stopping usually ends training sooner.
    batch_size : int, default=0
        Rows per optimisation step; 0 picks it by the number of training rows.
    optimizer : {"adamw", "adam", "sgd"}, default="adamw"
    lr : float, default=0.002
        Learning rate.
    weight_decay : float, default=0.0003
        Decoupled weight decay (AdamW) or L2 penalty (Adam, SGD).
    loss : {"mse", "mae", "huber", "quantile"}, default="mse"
        ``"quantile"``: quantile regression (pinball loss) of ``quantiles``;
        :meth:`predict` gives the level nearest 0.5, :meth:`predict_quantiles` all.
    huber_delta : float, default=1.0
        Threshold of the Huber loss, in standardised target units.
    quantiles : tuple of float, default=(0.1, 0.5, 0.9)
        Levels learned by ``loss="quantile"`` (sorted at prediction: no crossing).
    scheduler : {"none", "cosine", "plateau"}, default="none"
    gradient_clip : float, default=0.0
        Clip the gradient norm to this value; 0 disables clipping.
    patience : int, default=0
        Epochs without validation-RMSE improvement before stopping; 0 picks it
        by the number of training rows (16 from 3,000 to 10,000 rows, else 8).
    accelerator, devices, strategy : str, default="auto"
        Passed to ``lightning.Trainer``.
    precision : str, default="32-true"
        Passed to ``lightning.Trainer``.
    num_nodes : int, default=1
        Machines of a data-parallel run (``lightning.Trainer``'s ``num_nodes``).
    num_threads : int, default=0
        Torch intra-op threads; 0 picks half the cores, at most 4.
    progress : {"none", "auto", "rich"}, default="none"
        A library call prints nothing unless asked.
    deterministic : bool, default=True
        Ask torch for deterministic algorithms.
    ema_decay : float, default=0.0
        Keep a moving average of the weights with this per-step decay; 0: off.
    refit : bool, default=False
        After early stopping, train the network again on the training and
        validation rows together for the early-stopped epoch count, and keep
        that one (not with ``bag``; about twice the fitting time). With too few
        rows to hold any out, every row trains the first network already.
    seed : int, default=0
        One seed for the validation split, initialisation and batch order.

    Attributes
    ----------
    model_ : TabularModel
        The trained network with its column schema and preprocessing; predicts
        from raw columns.
    config_ : RunConfig
        The resolved configuration of the run.
    history_ : DataFrame
        One row per epoch: ``epoch, train_loss, val_loss, val_rmse``.
    n_epochs_ : int
        Epochs trained.
    best_epoch_ : int
        The epoch (from 0) whose weights were kept.
    best_val_rmse_ : float
        Validation RMSE of that epoch, in target units (a bag's: out-of-fold).
    oof_prediction_ : ndarray of shape (n_samples,) or (n_samples, n_outputs)
        With ``bag`` > 1 only: each training row predicted by the member that
        did not train on it, the out-of-fold predictions to stack on (as a
        random forest's ``oob_prediction_``); NaN for rows of weight 0.
    n_features_in_ : int
        Number of columns seen in :meth:`fit`.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names seen in :meth:`fit`, if they were all strings.
    n_outputs_ : int
        Number of targets.

    See Also
    --------
    TunedResNetRegressor : searches the hyperparameters with Optuna inside ``fit``.
    tabresnet.fit : the same training from a table, writing a run directory.

    Notes
    -----
    ``X`` may be a numeric array (NaN allowed, infinity refused), a DataFrame
    whose columns are numbers, strings, categories or booleans (each column's
    dtype decides its role, see :func:`tabresnet.data.infer_schema`), or an
    object array holding strings. The same ``seed`` gives the same model.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"size": rng.uniform(30, 120, 150),
    ...                   "city": rng.choice(["Oslo", "Rome", None], 150)})
    >>> y = X["size"] * 0.05 + (X["city"] == "Oslo")
    >>> est = ResNetRegressor(max_epochs=5, num_blocks=(1,), c_hidden=(8,)).fit(X, y)
    >>> est.predict(X.head(2)).shape, est.n_features_in_, list(est.feature_names_in_)
    ((2,), 2, ['size', 'city'])
    >>> est.n_epochs_
    5
    """

    def __init__(
        self,
        *,
        arch: str = "resnet",
        block: str = "PreActResNetBlock",
        num_blocks: tuple[int, ...] = (2,),
        c_hidden: tuple[int, ...] = (128,),
        activation: str = "relu",
        norm: str | None = None,
        dropout: float = 0.0,
        shortcut: str = "projection",
        zero_init: bool = False,
        init: str = "zero_residual",
        embedding_dim: int = 8,
        num_embedding: str = "ple",
        num_embedding_dim: int = 8,
        n_bins: int = 48,
        n_frequencies: int = 48,
        frequency_scale: float = 0.1,
        ensemble_size: int = 4,
        ensemble: str = "mini",
        categorical: tuple[str, ...] = (),
        numeric: tuple[str, ...] = (),
        ignore: tuple[str, ...] = (),
        int_as_categorical: int = 0,
        numeric_transform: str = "quantile",
        n_quantiles: int = 1000,
        onehot_max_cardinality: int = 16,
        target_transform: str = "standard",
        val_size: float = 0.16,
        bag: int = 0,
        max_epochs: int = 300,
        batch_size: int = 0,
        optimizer: str = "adamw",
        lr: float = 2e-3,
        weight_decay: float = 3e-4,
        loss: str = "mse",
        huber_delta: float = 1.0,
        quantiles: tuple[float, ...] = (0.1, 0.5, 0.9),
        scheduler: str = "none",
        gradient_clip: float = 0.0,
        patience: int = 0,
        accelerator: str = "auto",
        devices: str = "auto",
        strategy: str = "auto",
        precision: str = "32-true",
        num_nodes: int = 1,
        num_threads: int = 0,
        progress: str = "none",
        deterministic: bool = True,
        ema_decay: float = 0.0,
        refit: bool = False,
        seed: int = 0,
    ) -> None:
        _store(self, locals())

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> ResNetRegressor:
        """Train on ``X``, ``y``; a ``val_size`` share of the rows picks the epoch.

        With fewer than :data:`MIN_VAL_ROWS` validation rows the training rows
        are the validation rows as well.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            At least 2 rows.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Finite numbers.
        sample_weight : array-like of shape (n_samples,), optional
            Row weights, finite and >= 0, not all 0. They weigh the training
            loss (an integer weight w acts as the row repeated w times, in
            expectation over the batches), the early-stopping RMSE and
            ``best_val_rmse_``; rows of weight 0 are left out. The validation
            rows are drawn from the rows of positive weight.

        Returns
        -------
        self

        Examples
        --------
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(100, 2))
        >>> y = X[:, 0] + 10 * (X[:, 1] > 1.5)             # a few far-off rows...
        >>> w = np.where(X[:, 1] > 1.5, 0.0, 1.0)          # ...weighted out
        >>> est = ResNetRegressor(max_epochs=3, num_blocks=(1,), c_hidden=(8,))
        >>> est.fit(X, y, sample_weight=w).config_.data.weight
        'sample_weight'
        """
        from .artifact import TabularModel
        from .training import evaluate_splits, prepare, train_network
        from .training.bag import calibrate_bag, make_folds, train_bag
        from .training.fit import calibrate_split, refit_all_rows
        from .training.loop import check_trained

        frame, targets, cfg = self._fit_data(X, y)
        n_rows = len(frame)
        frame, cfg = self._weighted(frame, sample_weight, cfg)
        self.__dict__.pop("oof_prediction_", None)  # a bag's only: none from an earlier fit
        if cfg.data.bag > 1:  # as tabresnet.fit does, whatever the rows
            folds = make_folds(frame, targets, cfg, cv=cfg.data.bag, shared=True, option="bag")
            bag = train_bag(folds, cfg)
            check_trained(bag.results, cfg)
            results, history = bag.results, bag.history
            model = TabularModel(bag.network, cfg, folds[0].schema, folds[0].preprocessor)
            model.metrics = {**bag.metrics, "training": bag.training_summary()}
            model.calibration = calibrate_bag(model, folds)
            best_val_rmse = float(bag.metrics["oof"]["rmse"])
            # The bag numbers the rows it was given: those of positive weight.
            given = np.arange(n_rows) if len(frame) == n_rows else \
                np.flatnonzero(np.asarray(sample_weight, dtype=np.float64) > 0)
            oof = np.full((n_rows, len(targets)), np.nan)
            oof[given[bag.oof["row"].to_numpy()]] = bag.oof.filter(like="y_pred").to_numpy()
            self.oof_prediction_ = oof[:, 0] if len(targets) == 1 else oof
        else:
            train, val = self._split(len(frame), cfg)
            prepared = prepare(frame, targets, cfg, train_index=train, val_index=val)
            result = train_network(prepared, cfg)
            check_trained([result], cfg)
            results, history = [result], result.history
            model = TabularModel(result.network, cfg, prepared.schema, prepared.preprocessor)
            metrics = evaluate_splits(model, prepared)
            metrics["training"] = result.training_summary()
            held_out = not np.array_equal(train, val)
            if held_out:  # no held-out rows: predict_interval says so
                model.calibration = calibrate_split(model, prepared.val)
            if cfg.train.refit and held_out:  # (without, every row trained it already)
                model, _, metrics["training"]["refit"] = refit_all_rows(model, prepared, result)
            model.metrics = metrics
            best_val_rmse = float(result.best_val_rmse)
        if any(r.diverged for r in results):
            warnings.warn(
                "the training loss became NaN or infinite; lower lr or set gradient_clip",
                ConvergenceWarning,
                stacklevel=2,
            )
        self.model_ = model
        self.config_ = cfg
        self.history_ = history
        self.n_epochs_ = int(max(len(r.history) for r in results))
        self.best_epoch_ = int(results[0].best_epoch)
        self.best_val_rmse_ = best_val_rmse
        return self



# -- tuning ------------------------------------------------------------------------

class TunedResNetRegressor(_ResNetBase):
    """A :class:`ResNetRegressor` whose hyperparameters Optuna searches inside ``fit``.

    ``fit`` splits a validation set off the training rows (as
    :class:`ResNetRegressor` does), runs :func:`tabresnet.tuning.tune` with
    every trial scored by its validation RMSE, and keeps the best
    configuration retrained on the same split. Nothing is written to disk.

    Parameters
    ----------
    n_trials : int, default=20
        Number of finished (complete or pruned) trials.
    timeout : float, str or None, default=None
        The search's time limit (``90``, ``"30m"``, ``"1h"``): no trial starts
        after it and a running one is stopped, once one trial has completed.
    search_space : dict, str, path, SearchSpace or None, default=None
        The options to search, in the format of ``default_space.yaml`` (see
        :class:`tabresnet.tuning.SearchSpace`): a dict such as
        ``{"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}``,
        YAML text or a YAML file. ``None``: the shipped default space.
    sampler : {"tpe", "gp", "random", "cmaes", "qmc"} or optuna sampler, default="tpe"
        Seeded with ``seed``.
    pruner : {"median", "hyperband", "successive-halving", "none"} or optuna pruner, \
default="median"
        Stops unpromising trials early.
    cv : int, "auto" or None, default=None
        Score each trial by ``cv``-fold cross-validation on all rows given to
        ``fit`` instead of the validation split (None, 0 or 1: the split;
        ``"auto"``: as :func:`tabresnet.tune` decides by the table's size); the
        model is then the bag of the best configuration's ``cv`` fold networks,
        averaged (see :func:`tabresnet.tune`).
    pack : int, "auto" or None, default=None
        Train ``pack`` configurations at a time as one packed network, each a
        trial told to the study when its own early stopping or the pruner ends
        it (``tabresnet.tune(..., pack=P)``; ``"auto"`` sizes it by the rows
        and the ``timeout``). None: one trial at a time. The block kind, norm,
        activation, embeddings, optimiser kind, batch size and loss are then
        the ones given here, not searched.
    pack_ensemble : bool, default=True
        With ``pack``: keep the greedy ensemble selection (Caruana et al.,
        2004) of the finished trials, weighted, scored on the validation rows
        (out-of-fold with ``cv``); False keeps the single best trial.
    arch, block, num_blocks, c_hidden, activation, norm, dropout, shortcut, zero_init, init, embedding_dim, num_embedding, num_embedding_dim, n_bins, n_frequencies, frequency_scale, ensemble_size, ensemble, categorical, numeric, ignore, int_as_categorical, numeric_transform, n_quantiles, onehot_max_cardinality, target_transform, val_size, max_epochs, batch_size, optimizer, lr, weight_decay, loss, huber_delta, quantiles, scheduler, gradient_clip, patience, accelerator, devices, strategy, precision, num_nodes, num_threads, progress, deterministic, ema_decay, seed : as for ResNetRegressor
        The run-config options, with the same defaults.

    Options the search space lists take the sampled values; the others keep
    the values given here.

    Attributes
    ----------
    model_ : TabularModel
        The best configuration, retrained.
    config_ : RunConfig
        Its complete configuration.
    best_params_ : dict
        The searched options of the best trial (flat names); pass them to
        :class:`ResNetRegressor` to train the same configuration.
    best_value_ : float
        The best trial's validation RMSE in target units, lower is better (not
        a higher-is-better ``best_score_`` as in ``GridSearchCV``).
    trials_ : DataFrame
        One row per trial (``study.trials_dataframe()``). The study itself is
        not kept: an estimator must pickle, and a study may hold a database
        connection.
    n_features_in_ : int
        Number of columns seen in :meth:`fit`.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names seen in :meth:`fit`, if they were all strings.
    n_outputs_ : int
        Number of targets.

    See Also
    --------
    ResNetRegressor : one configuration, no search.
    tabresnet.tune : the same search from a table, writing a run directory.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(120, 2))
    >>> y = X[:, 0] - 2 * X[:, 1]
    >>> est = TunedResNetRegressor(
    ...     n_trials=2, search_space={"lr": {"type": "float", "low": 1e-3, "high": 1e-2}},
    ...     max_epochs=3, num_blocks=(1,), c_hidden=(8,)).fit(X, y)
    >>> sorted(est.best_params_), len(est.trials_), est.predict(X[:3]).shape
    (['lr'], 2, (3,))
    """

    def __init__(
        self,
        *,
        n_trials: int = 20,
        timeout: float | str | None = None,
        search_space: Any = None,
        sampler: Any = "tpe",
        pruner: Any = "median",
        # Not tune's "auto": an estimator often runs inside sklearn's own
        # cross-validation, and K-fold scoring would multiply its cost by K.
        cv: int | str | None = None,
        pack: int | str | None = None,
        pack_ensemble: bool = True,
        arch: str = "resnet",
        block: str = "PreActResNetBlock",
        num_blocks: tuple[int, ...] = (2,),
        c_hidden: tuple[int, ...] = (128,),
        activation: str = "relu",
        norm: str | None = None,
        dropout: float = 0.0,
        shortcut: str = "projection",
        zero_init: bool = False,
        init: str = "zero_residual",
        embedding_dim: int = 8,
        num_embedding: str = "ple",
        num_embedding_dim: int = 8,
        n_bins: int = 48,
        n_frequencies: int = 48,
        frequency_scale: float = 0.1,
        ensemble_size: int = 4,
        ensemble: str = "mini",
        categorical: tuple[str, ...] = (),
        numeric: tuple[str, ...] = (),
        ignore: tuple[str, ...] = (),
        int_as_categorical: int = 0,
        numeric_transform: str = "quantile",
        n_quantiles: int = 1000,
        onehot_max_cardinality: int = 16,
        target_transform: str = "standard",
        val_size: float = 0.16,
        max_epochs: int = 300,
        batch_size: int = 0,
        optimizer: str = "adamw",
        lr: float = 2e-3,
        weight_decay: float = 3e-4,
        loss: str = "mse",
        huber_delta: float = 1.0,
        quantiles: tuple[float, ...] = (0.1, 0.5, 0.9),
        scheduler: str = "none",
        gradient_clip: float = 0.0,
        patience: int = 0,
        accelerator: str = "auto",
        devices: str = "auto",
        strategy: str = "auto",
        precision: str = "32-true",
        num_nodes: int = 1,
        num_threads: int = 0,
        progress: str = "none",
        deterministic: bool = True,
        ema_decay: float = 0.0,
        seed: int = 0,
    ) -> None:
        _store(self, locals())

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> TunedResNetRegressor:
        """Search the hyperparameters on ``X``, ``y`` and keep the best model.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            At least 2 rows.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Finite numbers.
        sample_weight : array-like of shape (n_samples,), optional
            Row weights, as for :meth:`ResNetRegressor.fit`; every trial's
            loss and validation RMSE are weighted.

        Returns
        -------
        self
        """
        from .tuning import tune

        frame, targets, cfg = self._fit_data(X, y)
        frame, cfg = self._weighted(frame, sample_weight, cfg)
        train, val = self._split(len(frame), cfg)
        val_frame = frame.iloc[val]
        space = self.search_space
        if isinstance(space, dict):
            import yaml

            space = yaml.safe_dump(space, sort_keys=False)
        result = tune(
            frame.iloc[train],
            targets,
            cfg,
            trials=self.n_trials,
            timeout=self.timeout,
            space=space,
            sampler=self.sampler,
            pruner=self.pruner,
            cv=self.cv,
            **({"pack": self.pack, "pack_ensemble": bool(self.pack_ensemble)} if self.pack else {}),
            val_data=val_frame,
            # NOTE: the estimator makes no test split; the validation rows stand
            # in for one, so that tune cuts none off the training rows.
            test_data=val_frame,
            progress=self.progress,
        )
        self.model_ = result.model
        if len(val) and not np.array_equal(train, val):
            # The validation rows were never trained on (they chose the trial and the
            # epoch): split-conformal intervals for predict_interval.
            self.model_.calibrate(val_frame)
        self.config_ = result.best_config
        self.best_params_ = dict(result.best_params)
        self.best_value_ = float(result.best_value)
        self.trials_ = result.study.trials_dataframe()
        return self

