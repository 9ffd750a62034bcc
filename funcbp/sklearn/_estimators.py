"""``MLPClassifier`` and ``MLPRegressor``: scikit-learn's targets, predictions and scores."""

from __future__ import annotations

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.metrics import accuracy_score, r2_score
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import column_or_1d
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import (
    _check_partial_fit_first_call,
    type_of_target,
    unique_labels,
)
from sklearn.utils.validation import check_is_fitted, validate_data

from funcbp.sklearn._base import BaseMLP, set_parameters


class MLPClassifier(ClassifierMixin, BaseMLP):
    """scikit-learn's ``MLPClassifier`` (its parameters, attributes and methods), trained by
    funcbp.

    Softmax outputs for several classes, one logistic output per label for two classes or
    a multi-label ``y`` ``[n_samples, n_labels]`` of 0 and 1; the log-loss summed over
    the labels, plus ``alpha / (2 n) ||W||^2`` for a batch of ``n`` samples (the weights'
    sum). ``activation`` also takes funcbp's names and ``funcbp.Activation`` values;
    ``engine``, ``dropout``, ``devices`` and ``dtype`` are those of ``funcbp.FitOptions``
    and ``funcbp.MLP``.
    """

    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch on ``X``, ``y`` (and ``sample_weight``), going on from the last.

        ``classes``: every class ``y`` may hold, needed on the first call.

        Returns:
          self.
        """
        if _check_partial_fit_first_call(self, classes):
            labels = y if type_of_target(y).startswith("multilabel") else classes
            self._label_binarizer = LabelBinarizer().fit(labels)
        return self._fit(X, y, sample_weight, incremental=True)

    partial_fit = available_if(lambda est: est._check_solver())(partial_fit)

    def _validate_input(self, X, y, incremental: bool, reset: bool):
        """``(X, Y)``: the inputs and the targets as 0/1 columns ``[n, n_outputs]``."""
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             dtype=(np.float64, np.float32), reset=reset)  # fmt: skip
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer().fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start and set(classes) != set(self.classes_):
                raise ValueError(
                    "warm_start can only be used where `y` has the same classes as in the "
                    f"previous call to fit. Previously got {self.classes_}, `y` has {classes}"
                )
            if len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has "
                                 f"{self.classes_}. 'y' has {classes}.")  # fmt: skip
        return X, self._label_binarizer.transform(y).astype(bool)

    def _out_activation(self) -> str:
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _targets(self, Y: np.ndarray) -> np.ndarray:
        """funcbp's targets: class indices ``[n]`` (softmax), else the 0/1 columns."""
        return np.argmax(Y, axis=1).astype(np.int32) if self.out_activation_ == "softmax" else Y

    def _score_outputs(self, outputs: np.ndarray, Y: np.ndarray, sample_weight) -> float:
        labels = self._label_binarizer.inverse_transform(Y)
        return accuracy_score(labels, self._labels(outputs), sample_weight=sample_weight)

    def _labels(self, outputs: np.ndarray) -> np.ndarray:
        """The classes (or labels) of probabilities ``[n, n_outputs]``."""
        return self._label_binarizer.inverse_transform(
            outputs.ravel() if self.n_outputs_ == 1 else outputs
        )

    def predict(self, X):
        """The class of each row of ``X`` ``[n_samples, n_features]`` (``[n_samples]``), or
        its labels ``[n_samples, n_labels]`` for a multi-label ``y``."""
        check_is_fitted(self)
        return self._labels(self._forward(self._checked(X)))

    def predict_proba(self, X):
        """Class probabilities ``[n_samples, n_classes]``, in ``classes_``' order (each
        label's for a multi-label ``y``)."""
        check_is_fitted(self)
        p = self._forward(self._checked(X))
        return np.hstack([1 - p, p]) if self.n_outputs_ == 1 else p

    def predict_log_proba(self, X):
        """``log(predict_proba(X))``."""
        return np.log(self.predict_proba(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, BaseMLP):
    """scikit-learn's ``MLPRegressor`` (its parameters, attributes and methods), trained by
    funcbp.

    Linear outputs and half the squared error (``loss="squared_error"``), or exponential
    outputs and half the Poisson deviance (``loss="poisson"``, ``y >= 0``), for one
    target or several (``y`` ``[n_samples, n_outputs]``), plus ``alpha / (2 n) ||W||^2``
    for a batch of ``n`` samples (the weights' sum). ``loss`` is keyword-only here, so
    ``MLPRegressor((50,))`` sets ``hidden_layer_sizes`` as before scikit-learn 1.7.
    Other parameters as ``MLPClassifier``'s.
    """

    _parameter_constraints: dict = {  # noqa: RUF012 (scikit-learn's convention)
        **BaseMLP._parameter_constraints,
        "loss": [StrOptions({"squared_error", "poisson"})],
    }

    def __init__(
        self, hidden_layer_sizes=(100,), activation="relu", *, loss="squared_error",
        solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
        learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True, random_state=None,
        tol=1e-4, verbose=False, warm_start=False, momentum=0.9, nesterovs_momentum=True,
        early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
        n_iter_no_change=10, max_fun=15000, engine="backprop", dropout=0.0, devices=None,
        dtype="float32",
    ):  # fmt: skip
        set_parameters(self, locals())

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch on ``X``, ``y`` (and ``sample_weight``), going on from the last.

        Returns:
          self.
        """
        return self._fit(X, y, sample_weight, incremental=True)

    partial_fit = available_if(lambda est: est._check_solver())(partial_fit)

    def _validate_input(self, X, y, incremental: bool, reset: bool):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             y_numeric=True, dtype=(np.float64, np.float32),
                             reset=reset)  # fmt: skip
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self.loss == "poisson" and np.any(y < 0):
            raise ValueError("Some value(s) of y are negative which is not allowed for "
                             "Poisson regression.")  # fmt: skip
        return X, y

    def _out_activation(self) -> str:
        return "exp" if self.loss == "poisson" else "identity"

    def _targets(self, Y: np.ndarray) -> np.ndarray:
        return Y

    def _score_outputs(self, outputs: np.ndarray, Y: np.ndarray, sample_weight) -> float:
        return r2_score(Y, outputs, sample_weight=sample_weight)

    def predict(self, X):
        """The prediction ``[n_samples]`` (``[n_samples, n_outputs]`` for several targets)
        for each row of ``X`` ``[n_samples, n_features]``."""
        check_is_fitted(self)
        out = self._forward(self._checked(X))
        return out.ravel() if out.shape[1] == 1 else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags
