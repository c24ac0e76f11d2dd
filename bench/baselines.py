"""The competitors: one function each, split data in, ``Score(test_rmse, val_rmse, seconds)`` out.

    python bench/run_all.py --quick          # runs every function below

Every function takes a :class:`SplitData` (the raw train/validation/test frames
of one seed's split) and :class:`Settings`, and returns a :class:`Score`:
RMSE on the test and validation rows in the target's own units, and the wall
seconds from raw frames to test predictions (preprocessing, training, early
stopping, prediction). Everything is computed here from each model's
predictions with the same :func:`rmse`, so no competitor grades itself.

Inputs of the neural baselines (:class:`NumericEncoder`): numeric columns
median-imputed and quantile-transformed to a normal distribution, fitted on the
training rows (the recipe of Gorishniy et al. 2021, "Revisiting Deep Learning
Models for Tabular Data": ``n_quantiles = clip(n_train // 30, 10, 1000)`` and
Gaussian noise of 0.001 column standard deviations on the rows the transform is
fitted on, so that discrete columns do not collapse onto a few quantiles);
categorical columns one-hot encoded (missing is a category of its own, unseen
categories are all-zero);
the target standardised with the training mean and standard deviation.
The gradient-boosted trees take the raw frames: LightGBM and scikit-learn's
HistGradientBoostingRegressor read pandas ``category`` columns natively.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import math
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

__all__ = [
    "COMPETITORS",
    "NumericEncoder",
    "Score",
    "Settings",
    "SplitData",
    "Unavailable",
    "rmse",
]


class Unavailable(RuntimeError):
    """A competitor whose library or API is missing; the runner records it as skipped."""


class Score(NamedTuple):
    test_rmse: float
    val_rmse: float
    seconds: float
    info: dict


@dataclass
class SplitData:
    """One seed's split of one table: raw frames, target Series in its own units."""

    name: str
    target: str
    seed: int
    X_train: pd.DataFrame
    y_train: pd.Series
    X_val: pd.DataFrame
    y_val: pd.Series
    X_test: pd.DataFrame
    y_test: pd.Series

    @classmethod
    def from_indices(cls, X, y, name, seed, train, val, test) -> SplitData:
        def rows(idx):
            return X.iloc[idx].reset_index(drop=True), y.iloc[idx].reset_index(drop=True)

        return cls(name, str(y.name), seed, *rows(train), *rows(val), *rows(test))

    def frame(self, part: str) -> pd.DataFrame:
        """Features and target of ``part`` ("train", "val", "test") as one frame."""
        X, y = getattr(self, f"X_{part}"), getattr(self, f"y_{part}")
        return X.assign(**{self.target: y.to_numpy()})


@dataclass
class Settings:
    """Budgets shared by the competitors (``quick`` shrinks them for a smoke run)."""

    threads: int = 1
    # Early stopping on validation RMSE for every neural net: patience 16 is the
    # rtdl paper's and tabresnet's default.
    patience: int = 16
    batch_size: int = 256
    # Caps so diamonds (34k training rows) fits the hour; early stopping ends
    # most runs long before.
    max_epochs: int = 200
    max_seconds: float = 300.0
    # LightGBM with early stopping: more rounds at a lower rate, stop after 100
    # rounds without improvement on the validation rows.
    lgbm_rounds: int = 10_000
    lgbm_lr: float = 0.05
    lgbm_stopping: int = 100
    # Seconds of tabresnet.tune per dataset and seed: no trial starts after it;
    # one still running at tune_hard_factor x budget is stopped. The final
    # retraining of the best configuration comes on top.
    tune_budget: float = 60.0
    tune_hard_factor: float = 2.0
    # A trial count instead of the time budget (no timeout, no hard deadline):
    # the smoke test's run then does the same work however loaded the machine is.
    tune_trials: int | None = None
    quick: bool = False


def rmse(y_true, y_pred) -> float:
    y_true = np.asarray(y_true, dtype=float).reshape(-1)
    y_pred = np.asarray(y_pred, dtype=float).reshape(-1)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"shapes differ: {y_true.shape} vs {y_pred.shape}")
    return float(np.sqrt(np.mean((y_true - y_pred) ** 2)))


# -- shared preprocessing for the neural baselines ------------------------------------------
class NumericEncoder:
    """Raw frame -> float32 matrix: quantile-normal numerics, one-hot categoricals.

    Fitted on the training rows only. ``fit_target``/``transform_target``/
    ``inverse_target`` standardise the target.
    """

    def __init__(self, seed: int = 0, noise: float = 1e-3):
        self.seed = seed
        self.noise = noise

    def fit(self, X: pd.DataFrame) -> NumericEncoder:
        from sklearn.preprocessing import OneHotEncoder, QuantileTransformer

        self.cat_ = [c for c in X.columns if _is_categorical(X[c])]
        self.num_ = [c for c in X.columns if c not in self.cat_]
        self.quantile_ = self.onehot_ = None
        if self.num_:
            xn = X[self.num_].to_numpy(dtype=float)
            self.median_ = np.nan_to_num(np.nanmedian(xn, axis=0))
            xn = np.where(np.isnan(xn), self.median_, xn)
            rng = np.random.default_rng(self.seed)
            std = xn.std(axis=0, keepdims=True)
            xn = xn + self.noise * std * rng.standard_normal(xn.shape)
            n_q = int(np.clip(len(X) // 30, 10, 1000))
            self.quantile_ = QuantileTransformer(
                n_quantiles=n_q, output_distribution="normal", subsample=10**9,
                random_state=self.seed,
            ).fit(xn)
        if self.cat_:
            self.onehot_ = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
            self.onehot_.fit(_cat_strings(X[self.cat_]))
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        parts = []
        if self.quantile_ is not None:
            xn = X[self.num_].to_numpy(dtype=float)
            xn = np.where(np.isnan(xn), self.median_, xn)
            parts.append(self.quantile_.transform(xn))
        if self.onehot_ is not None:
            parts.append(self.onehot_.transform(_cat_strings(X[self.cat_])))
        return np.concatenate(parts, axis=1).astype(np.float32)

    def fit_target(self, y) -> NumericEncoder:
        y = np.asarray(y, dtype=float)
        self.y_mean_, self.y_std_ = float(y.mean()), float(y.std()) or 1.0
        return self

    def transform_target(self, y) -> np.ndarray:
        return ((np.asarray(y, dtype=float) - self.y_mean_) / self.y_std_).astype(np.float32)

    def inverse_target(self, z) -> np.ndarray:
        return np.asarray(z, dtype=float).reshape(-1) * self.y_std_ + self.y_mean_


def _is_categorical(s: pd.Series) -> bool:
    return isinstance(s.dtype, pd.CategoricalDtype) or s.dtype == object or s.dtype == bool


def _cat_strings(X: pd.DataFrame) -> np.ndarray:
    # Missing becomes the category "<NA>"; strings keep the encoder's input uniform.
    return X.astype(object).where(X.notna(), "<NA>").astype(str).to_numpy()


def _encoded(data: SplitData) -> tuple[NumericEncoder, list[np.ndarray], list[np.ndarray]]:
    enc = NumericEncoder(seed=data.seed).fit(data.X_train).fit_target(data.y_train)
    xs = [enc.transform(X) for X in (data.X_train, data.X_val, data.X_test)]
    ys = [enc.transform_target(y) for y in (data.y_train, data.y_val, data.y_test)]
    return enc, xs, ys


# -- a plain minibatch loop for the torch baselines -----------------------------------------
def train_torch(
    net,
    optimizer,
    enc: NumericEncoder,
    xs: list[np.ndarray],
    ys: list[np.ndarray],
    data: SplitData,
    settings: Settings,
) -> dict[str, Any]:
    """MSE on the standardised target, shuffled minibatches, early stopping on val RMSE.

    The weights of the best validation epoch are restored before the test
    predictions. A final minibatch of one row is skipped (BatchNorm cannot
    train on it). Returns predictions in target units and the epoch counts.
    """
    import torch

    x_tr, x_va, x_te = (torch.as_tensor(x) for x in xs)
    y_tr = torch.as_tensor(ys[0]).reshape(-1, 1)
    gen = torch.Generator().manual_seed(data.seed)
    loss_fn = torch.nn.MSELoss()

    def predict(x):
        net.eval()
        with torch.no_grad():
            out = torch.cat([net(x[i : i + 4096]) for i in range(0, len(x), 4096)])
        return enc.inverse_target(out.numpy())

    best, best_state, best_epoch, epoch = math.inf, None, 0, 0
    start = time.perf_counter()
    for epoch in range(1, settings.max_epochs + 1):
        net.train()
        perm = torch.randperm(len(x_tr), generator=gen)
        for i in range(0, len(perm), settings.batch_size):
            idx = perm[i : i + settings.batch_size]
            if len(idx) < 2:
                continue
            optimizer.zero_grad()
            loss = loss_fn(net(x_tr[idx]), y_tr[idx])
            loss.backward()
            optimizer.step()
        val = rmse(data.y_val, predict(x_va))
        if val < best:
            best, best_epoch = val, epoch
            best_state = copy.deepcopy(net.state_dict())
        if epoch - best_epoch >= settings.patience:
            break
        if time.perf_counter() - start > settings.max_seconds:
            break
    if best_state is not None:
        net.load_state_dict(best_state)
    return {
        "val_pred": predict(x_va),
        "test_pred": predict(x_te),
        "epochs": epoch,
        "best_epoch": best_epoch,
    }


def _score(data: SplitData, val_pred, test_pred, start: float, **info) -> Score:
    return Score(
        test_rmse=rmse(data.y_test, test_pred),
        val_rmse=rmse(data.y_val, val_pred),
        seconds=time.perf_counter() - start,
        info=info,
    )


# -- the competitors -------------------------------------------------------------------------
def lightgbm_default(data: SplitData, settings: Settings) -> Score:
    """LightGBM with its defaults (100 rounds at learning rate 0.1, 31 leaves)."""
    lgb = _require("lightgbm")
    start = time.perf_counter()
    model = lgb.LGBMRegressor(random_state=data.seed, n_jobs=settings.threads, verbose=-1)
    model.fit(data.X_train, data.y_train)
    return _score(data, model.predict(data.X_val), model.predict(data.X_test), start)


def _lightgbm(rounds: int, data: SplitData, settings: Settings):
    """The yardstick's LightGBM regressor with ``rounds`` rounds at most."""
    return _require("lightgbm").LGBMRegressor(
        n_estimators=rounds,
        learning_rate=settings.lgbm_lr,
        random_state=data.seed,
        n_jobs=settings.threads,
        verbose=-1,
    )


def lightgbm_early_stopping(data: SplitData, settings: Settings) -> Score:
    """LightGBM at learning rate 0.05, stopped after 100 rounds without val improvement."""
    lgb = _require("lightgbm")
    start = time.perf_counter()
    rounds = 300 if settings.quick else settings.lgbm_rounds
    model = _lightgbm(rounds, data, settings)
    # LightGBM 4.7 renamed eval_set to eval_X/eval_y; older 4.x know only eval_set.
    if "eval_X" in inspect.signature(model.fit).parameters:
        evals = {"eval_X": (data.X_val,), "eval_y": (data.y_val,)}
    else:
        evals = {"eval_set": [(data.X_val, data.y_val)]}
    model.fit(
        data.X_train,
        data.y_train,
        callbacks=[lgb.early_stopping(settings.lgbm_stopping, verbose=False)],
        **evals,
    )
    return _score(
        data, model.predict(data.X_val), model.predict(data.X_test), start,
        rounds=int(model.best_iteration_ or rounds),
    )


def lightgbm_refit(data: SplitData, settings: Settings) -> Score:
    """``lightgbm_early_stopping``, then refit on the training and validation rows together.

    The refit runs the early-stopped round count scaled by the rows
    (``rounds * (n_train + n_val) / n_train``), the usual way to spend the
    validation rows on the final boosted model; it is the yardstick's fair
    counterpart to tabresnet's ``refit``. Its validation RMSE is the
    early-stopped model's (the refit trains on those rows).
    """
    start = time.perf_counter()
    first = lightgbm_early_stopping(data, settings)
    rows = len(data.y_train) + len(data.y_val)
    rounds = max(1, round(first.info["rounds"] * rows / len(data.y_train)))
    model = _lightgbm(rounds, data, settings)
    model.fit(pd.concat([data.X_train, data.X_val], ignore_index=True),
              pd.concat([data.y_train, data.y_val], ignore_index=True))
    return Score(
        test_rmse=rmse(data.y_test, model.predict(data.X_test)),
        val_rmse=first.val_rmse,
        seconds=time.perf_counter() - start,
        info={"rounds": rounds, "early_stopped_rounds": first.info["rounds"]},
    )


def hist_gradient_boosting(data: SplitData, settings: Settings) -> Score:
    """scikit-learn's HistGradientBoostingRegressor with its defaults.

    The defaults include categorical support from the ``category`` dtype and
    early stopping on an internal 10% of the training rows when there are more
    than 10,000 of them (diamonds).
    """
    from sklearn.ensemble import HistGradientBoostingRegressor

    start = time.perf_counter()
    model = HistGradientBoostingRegressor(random_state=data.seed)
    model.fit(data.X_train, data.y_train)
    return _score(
        data, model.predict(data.X_val), model.predict(data.X_test), start,
        rounds=int(model.n_iter_),
    )


def sklearn_mlp(data: SplitData, settings: Settings) -> Score:
    """scikit-learn's MLPRegressor (defaults: one hidden layer of 100, Adam 1e-3).

    Inputs and target as for every neural baseline; ``early_stopping=True``
    (it holds out 10% of the training rows, patience 10), since its default
    of 200 fixed epochs would ignore the validation set altogether.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor

    start = time.perf_counter()
    enc, xs, ys = _encoded(data)
    model = MLPRegressor(
        early_stopping=True,
        max_iter=10 if settings.quick else 200,
        random_state=data.seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(xs[0], ys[0])
    return _score(
        data,
        enc.inverse_target(model.predict(xs[1])),
        enc.inverse_target(model.predict(xs[2])),
        start,
        epochs=int(model.n_iter_),
    )


# The rtdl ResNet's fixed configuration: inside the paper's search space
# (n_blocks 1-8, d_block 64-512, d_hidden factor 1-4, dropouts 0-0.5, lr
# 1e-5..1e-2 log, weight decay 0 or 1e-6..1e-3). Not tuned per dataset.
RTDL_CONFIG = {
    "n_blocks": 2,
    "d_block": 192,
    "d_hidden_multiplier": 2.0,
    "dropout1": 0.15,
    "dropout2": 0.0,
}
RTDL_LR, RTDL_WEIGHT_DECAY = 1e-3, 1e-5


def rtdl_resnet(data: SplitData, settings: Settings) -> Score:
    """The ResNet of ``rtdl-revisiting-models`` with the paper's training recipe.

    Quantile-normal numerics, one-hot categoricals, standardised target,
    AdamW, minibatches of 256, early stopping with patience 16 on validation
    RMSE, best weights restored. Architecture and optimiser: ``RTDL_CONFIG``,
    ``RTDL_LR``, ``RTDL_WEIGHT_DECAY``.
    """
    rtdl = _require("rtdl_revisiting_models", "pip install rtdl-revisiting-models")
    import torch

    start = time.perf_counter()
    enc, xs, ys = _encoded(data)
    torch.manual_seed(data.seed)
    net = rtdl.ResNet(d_in=xs[0].shape[1], d_out=1, **RTDL_CONFIG)
    opt = torch.optim.AdamW(net.parameters(), lr=RTDL_LR, weight_decay=RTDL_WEIGHT_DECAY)
    out = train_torch(net, opt, enc, xs, ys, data, settings)
    return _score(
        data, out["val_pred"], out["test_pred"], start,
        epochs=out["epochs"], best_epoch=out["best_epoch"],
    )


def chapter_resnet(data: SplitData, settings: Settings) -> Score:
    """The chapter's ResNet ([3,3,3] x 64, post-activation blocks, its Kaiming init).

    The chapter's loop (Adam at 1e-3 on MSE) with three changes, all shared
    with the other neural baselines: minibatches of 256 instead of the full
    batch, early stopping with patience 16 on validation RMSE (best weights
    restored) instead of a fixed epoch count, and quantile-normal inputs with a
    standardised target.
    """
    import torch

    from bench.chapter_resnet import ResNet

    start = time.perf_counter()
    enc, xs, ys = _encoded(data)
    torch.manual_seed(data.seed)
    net = ResNet(input_dim=xs[0].shape[1], output_dim=1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    out = train_torch(net, opt, enc, xs, ys, data, settings)
    return _score(
        data, out["val_pred"], out["test_pred"], start,
        epochs=out["epochs"], best_epoch=out["best_epoch"],
    )


# -- tabresnet ---------------------------------------------------------------------------------
def _tabresnet(api: str):
    try:
        import tabresnet
    except ImportError as exc:  # pragma: no cover - the package is installed editable
        raise Unavailable("tabresnet is not importable") from exc
    try:  # the package resolves its API lazily: a half-written layer raises ImportError
        getattr(tabresnet, api)
    except (AttributeError, ImportError) as exc:
        raise Unavailable(f"tabresnet.{api} is not available yet ({exc})") from exc
    return tabresnet


def _accepted(func: Callable, kwargs: dict) -> dict:
    """The subset of ``kwargs`` that ``func`` accepts (all of them if it takes ``**kw``)."""
    params = inspect.signature(func).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return kwargs
    return {k: v for k, v in kwargs.items() if k in params}


def _predict(model, frame: pd.DataFrame) -> np.ndarray:
    pred = model.predict(frame)
    if isinstance(pred, pd.DataFrame):
        pred = pred.iloc[:, 0]
    return np.asarray(pred, dtype=float).reshape(len(frame), -1)[:, 0]


def _quiet_overrides(data: SplitData, settings: Settings) -> dict:
    over = {"seed": data.seed, "progress": "none", "logger": "none",
            "num_threads": settings.threads}
    if settings.quick:
        over["max_epochs"] = 5
    return over


def tabresnet_default(data: SplitData, settings: Settings) -> Score:
    """``tabresnet.fit`` with its defaults on the benchmark's split (no run directory written)."""
    tabresnet = _tabresnet("fit")
    start = time.perf_counter()
    run = tabresnet.fit(
        data.frame("train"), data.target,
        val_data=data.frame("val"), test_data=data.frame("test"),
        **_quiet_overrides(data, settings),
    )
    val_pred = _predict(run.model, data.X_val)
    test_pred = _predict(run.model, data.X_test)
    info = {}
    history = getattr(run, "history", None)
    if history is not None:
        info["epochs"] = int(len(history))
    return _score(data, val_pred, test_pred, start, **info)


def tabresnet_tuned(data: SplitData, settings: Settings) -> Score:
    """``tabresnet.tune`` with ``timeout=settings.tune_budget``, then its refitted best model.

    tune's defaults otherwise (TPE sampler, median pruner, its default search
    space with fit's configuration as the first trial, ``cv="auto"`` (a bag of
    4 fold networks on tables of at most 10,000 rows, else the best trial's own
    network), an in-memory study). Its timeout stops a running
    trial too, but only once some trial has completed, and the first trial on
    diamonds can take minutes; so a trial still running at
    ``tune_hard_factor x budget`` is stopped as by Ctrl-C, which tune handles
    (the trial is recorded as failed and the best finished one retrained; a
    retraining still running then ends at its best epoch so far). The wall
    time reported covers everything, the final retraining included.
    """
    tabresnet = _tabresnet("tune")
    start = time.perf_counter()
    by_count = settings.tune_trials is not None
    kwargs = _accepted(
        tabresnet.tune,
        {"timeout": None if by_count else settings.tune_budget,
         "trials": settings.tune_trials if by_count else 10_000, "report": False,
         "val_data": data.frame("val"), "test_data": data.frame("test")},
    )
    deadline = None if by_count else settings.tune_budget * settings.tune_hard_factor
    with _hard_deadline(deadline) as fired:
        try:
            result = tabresnet.tune(
                data.frame("train"), data.target, **kwargs, **_quiet_overrides(data, settings)
            )
        except KeyboardInterrupt:
            if not fired():
                raise
            raise RuntimeError(
                "no trial finished within "
                f"{settings.tune_budget * settings.tune_hard_factor:.0f} s"
            ) from None
    model = _model_of(result)
    info = {"stopped_at_hard_deadline": fired()}
    n_trials = getattr(result, "n_trials", None)
    if isinstance(n_trials, int):
        info["trials"] = n_trials
    return _score(data, _predict(model, data.X_val), _predict(model, data.X_test), start, **info)


@contextlib.contextmanager
def _hard_deadline(seconds: float | None):
    """Send this process SIGINT after ``seconds``: tune's handler turns it into a clean stop.

    SIGINT, not SIGTERM: Lightning also handles SIGTERM during training and
    answers it with ``SystemExit``, which would end the benchmark. A timer's
    SIGINT that arrives while tune's handler is not installed (before it
    starts, between trial and retraining) is ignored by a handler of ours; a
    real Ctrl-C still interrupts. Main thread only; elsewhere (or with
    ``seconds=None``) a no-op.
    Yields a function telling whether the signal was sent.
    """
    if seconds is None or threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    sent = threading.Event()

    def fire():
        sent.set()
        os.kill(os.getpid(), signal.SIGINT)

    def handler(signum, frame):
        if not sent.is_set():
            raise KeyboardInterrupt

    old = signal.signal(signal.SIGINT, handler)
    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    try:
        yield sent.is_set
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, old)


def _model_of(result):
    """The predicting model inside whatever ``tune`` returns (a Run or a tuning result)."""
    for path in ("model", "best_run.model", "run.model"):
        obj = result
        for attr in path.split("."):
            obj = getattr(obj, attr, None)
        if obj is not None and hasattr(obj, "predict"):
            return obj
    if hasattr(result, "predict"):
        return result
    raise Unavailable(f"cannot find a model in tabresnet.tune's result ({type(result).__name__})")


def _require(module: str, hint: str = ""):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise Unavailable(f"{module} is not installed{'; ' + hint if hint else ''}") from exc


# Display name -> function, in the tables' order.
COMPETITORS: dict[str, Callable[[SplitData, Settings], Score]] = {
    "tabresnet (defaults)": tabresnet_default,
    "tabresnet (tuned)": tabresnet_tuned,
    "LightGBM (defaults)": lightgbm_default,
    "LightGBM (early stopping)": lightgbm_early_stopping,
    "sklearn HistGradientBoosting": hist_gradient_boosting,
    "sklearn MLPRegressor": sklearn_mlp,
    "rtdl ResNet": rtdl_resnet,
    "chapter ResNet": chapter_resnet,
}
