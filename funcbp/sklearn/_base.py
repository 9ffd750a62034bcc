"""What ``MLPClassifier`` and ``MLPRegressor`` share: parameters, fitting, the forward pass.

``fit`` checks the parameters and data as scikit-learn does (its own validation, its
messages), makes the network (``_spec``), the solver (``_solvers``) and a
``funcbp.train.TrainState`` (fresh, from ``coefs_`` with ``warm_start``, or the last
one's optimizer state with ``partial_fit``), trains (``_training``) and keeps the
parameters as ``coefs_`` / ``intercepts_`` (NumPy, which ``predict`` reads).

Rows of sample weight 0 are left out before training (as if removed; scikit-learn
keeps them in its batches) and equal weights train unweighted (the same loss).
"""

from __future__ import annotations

import numbers
import warnings

import jax
import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, is_classifier
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.validation import _check_sample_weight, validate_data

from funcbp import activations, rules
from funcbp._jax.compile_clock import CompileClock
from funcbp.backprop import BackwardRule
from funcbp.predict import Predictor
from funcbp.sklearn import _solvers, _spec, _training
from funcbp.train import ENGINES, FitOptions, TrainState, init_state, rule_of

DTYPES = ("float32", "float64", "bfloat16")


class BaseMLP(BaseEstimator):
    """scikit-learn's multi-layer perceptron parameters, trained by funcbp."""

    _parameter_constraints: dict = {  # noqa: RUF012 (scikit-learn's convention)
        "hidden_layer_sizes": ["array-like", Interval(numbers.Integral, 1, None, closed="left")],
        "activation": [StrOptions({*_spec.ACTIVATIONS, *activations.NAMES}),
                       activations.Activation],
        "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
        "alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(numbers.Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(numbers.Real, 0, None, closed="neither")],
        "power_t": [Interval(numbers.Real, 0, None, closed="left")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(numbers.Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="left")],
        "beta_1": [Interval(numbers.Real, 0, 1, closed="left")],
        "beta_2": [Interval(numbers.Real, 0, 1, closed="left")],
        "epsilon": [Interval(numbers.Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left"),
                             Options(numbers.Real, {np.inf})],
        "max_fun": [Interval(numbers.Integral, 1, None, closed="left")],
        "engine": [StrOptions({*ENGINES, *rules.NAMES}), BackwardRule, rules.LearningRule],
        "dropout": [Interval(numbers.Real, 0, 1, closed="left"), tuple, list],
        "devices": [None, tuple, list],
        "dtype": [StrOptions(set(DTYPES))],
    }  # fmt: skip

    def __init__(
        self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
        batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
        max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False,
        warm_start=False, momentum=0.9, nesterovs_momentum=True, early_stopping=False,
        validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10,
        max_fun=15000, engine="backprop", dropout=0.0, devices=None, dtype="float32",
    ):  # fmt: skip
        set_parameters(self, locals())

    def fit(self, X, y, sample_weight=None):
        """Trains the network on ``X`` ``[n_samples, n_features]`` and targets ``y``
        (``[n_samples]``, or ``[n_samples, n_outputs]``), weighing the rows by
        ``sample_weight`` ``[n_samples]``; a fresh start unless ``warm_start``.

        Returns:
          self.
        """
        return self._fit(X, y, sample_weight, incremental=False)

    def _check_solver(self) -> bool:
        if self.solver == "lbfgs":
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. "
                                 f"{self.solver} is not stochastic.")  # fmt: skip
        return True

    def _fit(self, X, y, sample_weight, incremental: bool):
        self._validate_params()
        hidden = _hidden_sizes(self.hidden_layer_sizes)
        first = not hasattr(self, "coefs_") or not (self.warm_start or incremental)
        X, Y = self._validate_input(X, y, incremental, reset=first)
        X = X.toarray() if sparse.issparse(X) else X
        w = None if sample_weight is None else _check_sample_weight(
            sample_weight, X, dtype=X.dtype, ensure_non_negative=True)  # fmt: skip
        Y = Y.reshape(len(Y), -1)
        if first:
            self._initialize(Y.shape[1], len(hidden))
        rng = check_random_state(self.random_state)
        key = jax.random.key(rng.randint(np.iinfo(np.int32).max))
        (x, Y, w), score = self._split(X, Y, w, rng, incremental)
        run = self._run(x, Y, w, hidden, incremental)
        clock = CompileClock()  # from here: what this fit compiles
        state = self._start(run, key, first, incremental)
        if self.solver == "lbfgs":
            state = _training.train_lbfgs(self, run, state, clock)
        else:
            state = _training.train_stochastic(self, run, state, score, clock, incremental)
        self.coefs_ = [np.array(layer["w"]) for layer in state.params]
        self.intercepts_ = [np.array(layer["b"]) for layer in state.params]
        self._state = jax.device_get(state)  # partial_fit goes on from its optimizer state
        return self

    def _run(self, x, Y, w, hidden: tuple[int, ...], incremental: bool) -> _training.Run:
        """The network, solver, data and options of training on ``x``, ``Y`` (0/1 or real
        columns ``[n, n_outputs]``) weighted by ``w``."""
        x, Y, w, mean_weight = _weighted_rows(x, Y, w)
        n, lbfgs = len(x), self.solver == "lbfgs"
        batch = n if lbfgs else self._batch_size(n)
        if not self.shuffle and batch < n:
            raise ValueError("shuffle=False: funcbp draws a new order of the rows for every "
                             "epoch of mini-batches; use shuffle=True, or a batch_size of at "
                             "least n_samples (full batch, in order)")  # fmt: skip
        l2 = self.alpha / (batch * mean_weight)  # scikit-learn's: alpha / a batch's sum(w)
        net = _spec.network((x.shape[1], *hidden, Y.shape[1]), self.activation,
                            self.out_activation_, l2, self.dropout)  # fmt: skip
        options = FitOptions(
            epochs=1 if incremental else self.max_iter,
            batch_size=None if batch == n else batch,
            engine=self.engine,
            dtype=self.dtype,
            epochs_per_call=_training.epochs_per_call(self, n),
            devices=None if self.devices is None else tuple(self.devices),
        )
        if lbfgs:
            solver = _solvers.lbfgs(self.tol, self.max_fun)
        else:
            solver = _solvers.stochastic(self.solver, self.nesterovs_momentum, self.dtype)
        return _training.Run(net, solver, (x.astype(options.dtype), self._targets(Y), w), options)

    def _initialize(self, n_outputs: int, n_hidden: int) -> None:
        """The fitted attributes of a fresh start."""
        self.n_iter_, self.t_ = 0, 0
        self.n_outputs_, self.n_layers_ = n_outputs, n_hidden + 2
        self.out_activation_ = self._out_activation()
        self.loss_curve_ = []
        if self.solver != "lbfgs":
            self._no_improvement_count, self._best_params = 0, None
            self.best_loss_ = None if self.early_stopping else np.inf
            self.validation_scores_ = [] if self.early_stopping else None
            self.best_validation_score_ = -np.inf if self.early_stopping else None

    def _split(self, X, Y, w, rng, incremental: bool):
        """``((x, Y, w), score)``: the training rows, and with ``early_stopping`` the
        validation score of parameters (``None`` without), as scikit-learn splits them."""
        if not self.early_stopping or self.solver == "lbfgs":
            return (X, Y, w), None
        if incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        stratify = Y if is_classifier(self) and Y.shape[1] == 1 else None
        arrays = (X, Y) if w is None else (X, Y, w)
        parts = train_test_split(*arrays, random_state=rng, test_size=self.validation_fraction,
                                 stratify=stratify)  # fmt: skip
        (x, x_val), (Y, Y_val) = parts[0:2], parts[2:4]
        w, w_val = parts[4:6] if w is not None else (None, None)
        if len(x_val) < 2:
            raise ValueError("The validation set is too small. Increase 'validation_fraction' "
                             "or the size of your dataset.")  # fmt: skip

        def score(params) -> float:
            outputs = self._forward(x_val, params)
            if not np.isfinite(outputs).all():
                return np.nan
            return self._score_outputs(outputs, Y_val, w_val)

        return (x, Y, w), score

    def _batch_size(self, n: int) -> int:
        if self.batch_size == "auto":
            return min(200, n)
        if self.batch_size > n:
            warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going "
                          "to be clipped", stacklevel=4)  # fmt: skip
        return min(self.batch_size, n)

    def _start(self, run: _training.Run, key, first: bool, incremental: bool) -> TrainState:
        """The state training starts from: a fresh one, or ``partial_fit``'s last; with
        ``coefs_`` / ``intercepts_`` as its parameters when they are kept."""
        if incremental and not first:
            state = self._state
        else:
            rule = rule_of(run.options.engine)
            state = init_state(run.net, run.solver, key, run.options.dtype, rule)
            if self.solver != "lbfgs":
                numbers = _solvers.hyperparameters(self.solver, self.get_params())
                state = _solvers.with_hyperparameters(state, **numbers)
        if first:
            return state
        dtype = run.options.dtype
        params = [{"w": np.asarray(w, dtype), "b": np.asarray(b, dtype)}
                  for w, b in zip(self.coefs_, self.intercepts_, strict=True)]  # fmt: skip
        return state._replace(params=params)

    def _forward(self, X, params=None) -> np.ndarray:
        """The outputs ``[n, n_outputs]`` for checked inputs ``X`` (class probabilities
        or predictions), in ``X``'s dtype, by ``params`` (default: ``coefs_`` and
        ``intercepts_``)."""
        if params is None:
            params = [{"w": w, "b": b} for w, b in zip(self.coefs_, self.intercepts_,
                                                       strict=True)]  # fmt: skip
        sizes = (params[0]["w"].shape[0], *(layer["w"].shape[1] for layer in params))
        net = _spec.network(sizes, self.activation, self.out_activation_, training=False)
        predictor = Predictor(net, params, None)
        rows = np.zeros((_bucket(len(X)), X.shape[1]), X.dtype)
        rows[: len(X)] = X
        if self.out_activation_ in ("softmax", "logistic"):
            out = predictor.predict_proba(rows)  # [1 - p, p] for one logit
            out = out[:, 1:] if out.shape[1] == 2 and self.n_outputs_ == 1 else out
        else:
            out = predictor.outputs(rows)
            out = np.exp(out) if self.out_activation_ == "exp" else out
        return out[: len(X)].astype(X.dtype)

    def _checked(self, X):
        """``X`` checked against the fitted network (dense)."""
        X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False,
                          dtype=(np.float64, np.float32))  # fmt: skip
        return X.toarray() if sparse.issparse(X) else X

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # taken as dense arrays
        return tags


def set_parameters(estimator: BaseEstimator, given: dict) -> None:
    """Keeps an ``__init__``'s arguments (its ``locals()``) as they are, as scikit-learn's
    estimators do."""
    for name, value in given.items():
        if name not in ("self", "__class__"):
            setattr(estimator, name, value)


def _hidden_sizes(sizes) -> tuple[int, ...]:
    sizes = tuple(sizes) if np.iterable(sizes) else (sizes,)
    if any(size <= 0 for size in sizes):
        raise ValueError(f"hidden_layer_sizes must be > 0, got {list(sizes)}.")
    return tuple(int(size) for size in sizes)


def _weighted_rows(x, Y, w):
    """``(x, Y, w, mean weight)`` without the rows of weight 0, ``w`` ``None`` where every
    weight is equal (their mean still scales ``alpha``)."""
    if w is None:
        return x, Y, None, 1.0
    if not w.any():
        raise ValueError("sample_weight: every weight is 0; at least one must be positive")
    kept = w > 0
    x, Y, w = (x, Y, w) if kept.all() else (x[kept], Y[kept], w[kept])
    mean = float(np.mean(w))
    return x, Y, None if np.all(w == w[0]) else w, mean


def _bucket(n: int) -> int:
    """Rows to predict ``n`` rows in: a power of two (at least 16, at most 2**16 beyond
    ``n``), so that few input shapes are compiled, and each row is computed alike in any
    of them (the same vectorised kernel, none of a remainder's)."""
    return max(16, 1 << (n - 1).bit_length()) if n <= 2**16 else -(-n // 2**16) * 2**16
