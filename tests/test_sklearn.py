"""funcbp.sklearn: scikit-learn's estimator checks, and the behaviours its MLP tests pin down."""

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score  # noqa: E402
from sklearn.neural_network import MLPClassifier as SklearnClassifier  # noqa: E402
from sklearn.neural_network import MLPRegressor as SklearnRegressor  # noqa: E402
from sklearn.neural_network._base import LOSS_FUNCTIONS  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import LabelBinarizer, StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import funcbp  # noqa: E402
from funcbp.sklearn import MLPClassifier, MLPRegressor, _training  # noqa: E402

from ._xla_compiles import XlaCompiles  # noqa: E402

# Small fits stop at max_iter, as they do in scikit-learn's own tests of its MLP.
no_convergence_warning = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

FLOAT32_ROUNDING = (
    "funcbp trains in float32 (dtype='float32'): the weighted mean over the rows and the "
    "mean over repeated rows round differently, by about an ulp, and 200 Adam steps carry "
    "that to ~1e-7 in the predictions, the check's tolerance; in float64 the weights agree "
    "to 1e-9 (test_sample_weights_equal_repeated_rows)"
)


def expected_failed_checks(estimator):
    return {
        "check_sample_weight_equivalence_on_dense_data": FLOAT32_ROUNDING,
        "check_sample_weight_equivalence_on_sparse_data": FLOAT32_ROUNDING,
    }


@no_convergence_warning
@parametrize_with_checks(
    [MLPClassifier(), MLPRegressor()], expected_failed_checks=expected_failed_checks
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


RNG = np.random.RandomState(0)
X = RNG.normal(size=(64, 6))
CLASSES = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)  # 0, 1, 2
LABELS = np.stack([X[:, 0] > 0, X[:, 1] > 0, X[:, 2] > 0.5], axis=1).astype(int)
TARGETS = np.stack([X[:, 0] + X[:, 1] ** 2, X[:, 2] - X[:, 3]], axis=1)


@no_convergence_warning
def test_a_larger_alpha_gives_smaller_weights():
    sums = []
    for alpha in (0.0, 1.0):
        net = MLPClassifier((10,), alpha=alpha, random_state=1).fit(X, CLASSES)
        sums.append([np.abs(w).sum() for w in net.coefs_])
    assert (np.array(sums[0]) > np.array(sums[1])).all()


@no_convergence_warning
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_partial_fit_equals_fit_for_sgd(momentum):
    settings = dict(solver="sgd", momentum=momentum, learning_rate_init=0.01, max_iter=20,
                    tol=0.0, batch_size=16, random_state=1, dtype="float64")  # fmt: skip
    fitted = MLPClassifier((10,), **settings).fit(X, CLASSES)
    partial = MLPClassifier((10,), **settings)
    for _ in range(20):
        partial.partial_fit(X, CLASSES, classes=[0, 1, 2])
    # partial_fit's epochs go on from the last one's state, its shuffling key included
    np.testing.assert_allclose(partial.loss_curve_, fitted.loss_curve_, rtol=1e-12)
    np.testing.assert_allclose(partial.predict_proba(X), fitted.predict_proba(X), rtol=1e-10)
    assert partial.n_iter_ == 1 and partial.t_ == fitted.t_ == 20 * len(X)


@no_convergence_warning
@pytest.mark.parametrize("learning_rate", ["constant", "adaptive"])
def test_calls_of_several_epochs_train_as_one_epoch_at_a_time(learning_rate, monkeypatch):
    # A stop, or an adaptive rate's fall, inside a call: the call is replayed up to it.
    settings = dict(solver="sgd", learning_rate=learning_rate, learning_rate_init=0.05,
                    n_iter_no_change=3, tol=1e-2, max_iter=60, random_state=0)  # fmt: skip
    several = MLPClassifier((10,), **settings).fit(X, CLASSES)
    monkeypatch.setattr(_training, "MAX_EPOCHS_PER_CALL", 1)
    one = MLPClassifier((10,), **settings).fit(X, CLASSES)
    assert several.n_iter_ == one.n_iter_ and several.loss_curve_ == one.loss_curve_
    for a, b in zip(several.coefs_, one.coefs_, strict=True):
        np.testing.assert_array_equal(a, b)
    rates = [float(net._state.opt_state.hyperparams["learning_rate"]) for net in (several, one)]
    assert rates[0] == rates[1]
    assert one.n_iter_ < 60 if learning_rate == "constant" else rates[0] < 0.05 / 5


@no_convergence_warning
def test_warm_start_goes_on_from_coefs_and_refuses_new_classes():
    net = MLPClassifier((10,), warm_start=True, max_iter=5, batch_size=64, random_state=0)
    first = net.fit(X, CLASSES).loss_curve_.copy()
    net.fit(X, CLASSES)
    assert len(net.loss_curve_) == 10 and net.n_iter_ == 5
    assert net.loss_curve_[5] < first[-1]  # the loss where the first fit left off
    with pytest.raises(ValueError, match="warm_start can only be used where `y` has the same"):
        net.fit(X, np.minimum(CLASSES, 1))
    cold = MLPClassifier((10,), max_iter=5, batch_size=64, random_state=0)
    assert cold.fit(X, CLASSES).fit(X, CLASSES).loss_curve_ == first


def test_early_stopping_keeps_the_best_validation_score():
    digits_x, digits_y = load_digits(return_X_y=True)
    net = MLPClassifier((32,), early_stopping=True, random_state=0, tol=1e-3)
    net.fit(digits_x[:500] / 16, digits_y[:500])
    scores = net.validation_scores_
    assert len(scores) == net.n_iter_ < net.max_iter
    assert max(scores) == net.best_validation_score_
    assert net.best_validation_score_ + net.tol > max(scores[-2:])
    assert net.best_loss_ is None
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping=True"):
        MLPClassifier(early_stopping=True).partial_fit(X, CLASSES, classes=[0, 1, 2])


@no_convergence_warning
@pytest.mark.parametrize("y", [CLASSES, CLASSES == 1], ids=["multiclass", "binary"])
def test_predict_proba_rows_sum_to_one_and_match_predict_log_proba(y):
    net = MLPClassifier((10,), max_iter=20, random_state=0).fit(X, y)
    proba = net.predict_proba(X)
    assert proba.shape == (len(X), len(net.classes_))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(np.log(proba), net.predict_log_proba(X))
    np.testing.assert_array_equal(net.predict(X), net.classes_[proba.argmax(axis=1)])


@no_convergence_warning
def test_multi_label_classification_and_multi_output_regression():
    classifier = MLPClassifier((16,), max_iter=300, random_state=0).fit(X, LABELS)
    assert classifier.out_activation_ == "logistic" and classifier.n_outputs_ == 3
    assert classifier.predict(X).shape == classifier.predict_proba(X).shape == LABELS.shape
    assert classifier.score(X, LABELS) > 0.8  # every label of a row right
    regressor = MLPRegressor((16,), max_iter=300, random_state=0).fit(X, TARGETS)
    assert regressor.predict(X).shape == TARGETS.shape and regressor.score(X, TARGETS) > 0.6


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_convergence_warning_at_max_iter(solver):
    message = "Maximum iterations \\(3\\)" if solver == "adam" else "lbfgs failed to converge"
    with pytest.warns(ConvergenceWarning, match=message):
        MLPClassifier((10,), solver=solver, max_iter=3, random_state=0).fit(X, CLASSES)


@no_convergence_warning
@pytest.mark.parametrize("estimator", [MLPClassifier, MLPRegressor])
def test_sample_weights_equal_repeated_rows(estimator):
    weights = RNG.randint(0, 4, size=len(X))
    y = CLASSES if estimator is MLPClassifier else TARGETS[:, 0]
    settings = dict(hidden_layer_sizes=(10,), max_iter=50, random_state=0, dtype="float64")
    weighted = estimator(**settings).fit(X, y, sample_weight=weights)
    repeated = estimator(**settings).fit(X.repeat(weights, axis=0), y.repeat(weights))
    for a, b in zip(weighted.coefs_, repeated.coefs_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(weighted.loss_curve_, repeated.loss_curve_, rtol=1e-12)


def _sklearn_loss(reference, x, y, sample_weight=None):
    """scikit-learn's loss of its fitted ``reference`` on ``x``, ``y``, by its own functions."""
    out = reference._forward_pass_fast(x)
    name = reference.loss
    if name == "log_loss":
        y = y if y.ndim == 2 else LabelBinarizer().fit(reference.classes_).transform(y)
        name = "binary_log_loss" if reference.out_activation_ == "logistic" else name
    value = LOSS_FUNCTIONS[name](y.reshape(len(y), -1), out, sample_weight)
    total = len(x) if sample_weight is None else sample_weight.sum()
    return value + 0.5 * reference.alpha * sum((w**2).sum() for w in reference.coefs_) / total


@no_convergence_warning
@pytest.mark.parametrize(
    ("ours", "theirs", "y"),
    [
        (MLPClassifier(), SklearnClassifier(), CLASSES),
        (MLPClassifier(), SklearnClassifier(), CLASSES == 2),
        (MLPClassifier(), SklearnClassifier(), LABELS),
        (MLPRegressor(), SklearnRegressor(), TARGETS),
        (MLPRegressor(loss="poisson"), SklearnRegressor(loss="poisson"), np.exp(TARGETS[:, 0])),
    ],
    ids=["multiclass", "binary", "multi-label", "squared_error", "poisson"],
)
def test_losses_are_scikit_learns(ours, theirs, y):
    weights = RNG.uniform(0.5, 2.0, size=len(X))
    settings = dict(hidden_layer_sizes=(8,), alpha=0.1, max_iter=5, random_state=0)
    reference = theirs.set_params(**settings).fit(X, y)
    ours.set_params(**{**settings, "warm_start": True, "max_iter": 1, "dtype": "float64"})
    ours.fit(X, y)
    ours.coefs_, ours.intercepts_ = reference.coefs_, reference.intercepts_
    # A full batch: the epoch's loss is the loss at the parameters it starts from.
    ours.fit(X, y, sample_weight=weights)
    expected = _sklearn_loss(reference, X, y, weights)
    np.testing.assert_allclose(ours.loss_curve_[-1], expected, rtol=1e-9)


@no_convergence_warning
def test_grid_search_reuses_the_compiled_epoch_across_folds_and_numbers():
    estimator = MLPClassifier((10,), max_iter=5, random_state=0)
    estimator.fit(X[:48], CLASSES[:48]).score(X[48:], CLASSES[48:])  # compiles these shapes
    grid = {"learning_rate_init": [1e-3, 1e-2], "beta_1": [0.8, 0.9]}
    search = GridSearchCV(estimator, grid, cv=KFold(4), refit=False)
    with XlaCompiles() as compiles:
        search.fit(X, CLASSES)
    assert compiles.count == 0
    assert len(search.cv_results_["mean_test_score"]) == 4


@no_convergence_warning
def test_works_in_a_pipeline_and_cross_val_score():
    classifier = MLPClassifier((10,), learning_rate_init=0.01, random_state=0)
    scores = cross_val_score(make_pipeline(StandardScaler(), classifier), X, CLASSES, cv=KFold(4))
    assert scores.shape == (4,) and scores.mean() > 0.6


@no_convergence_warning
def test_verbose_output_shows_the_compile_time(capsys):
    MLPClassifier((10,), max_iter=2, verbose=True, random_state=0).fit(X, CLASSES)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Compile time: ") and out[0].endswith(" s")
    assert out[1].startswith("Iteration 1, loss = ")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (dict(alpha=-1.0), "'alpha' parameter of MLPClassifier must be a float in the range"),
        (dict(solver="newton"), "'solver' parameter of MLPClassifier must be a str among"),
        (dict(activation="swish"), "'activation' parameter of MLPClassifier must be"),
        (dict(dtype="int8"), "'dtype' parameter of MLPClassifier must be a str among"),
        (dict(hidden_layer_sizes=(10, 0)), "hidden_layer_sizes must be > 0"),
        (dict(shuffle=False, batch_size=16), "shuffle=False: funcbp draws a new order"),
        (dict(dropout=1.5), "'dropout' parameter of MLPClassifier must be"),
    ],
)
def test_a_bad_parameter_is_named_before_anything_is_compiled(settings, message):
    with XlaCompiles() as compiles, pytest.raises(ValueError, match=message):
        MLPClassifier(**settings).fit(X, CLASSES)
    assert compiles.count == 0


def test_lbfgs_stops_by_itself_and_offers_no_partial_fit():
    net = MLPClassifier((10,), solver="lbfgs", random_state=0).fit(X, CLASSES)
    assert net.n_iter_ == len(net.loss_curve_) < net.max_iter and net.score(X, CLASSES) == 1.0
    assert net.loss_ < net.loss_curve_[-1] < net.loss_curve_[0]
    assert not hasattr(net, "partial_fit")


@no_convergence_warning
def test_funcbp_activations_dropout_and_engines():
    softsign = funcbp.Activation(
        "softsign", lambda z: z / (1 + abs(z)), lambda z, a: 1 / (1 + abs(z)) ** 2
    )
    for activation, engine in ((softsign, "backprop"), ("gelu", "autodiff")):
        net = MLPClassifier((16,), activation=activation, engine=engine, dropout=0.1,
                            learning_rate_init=0.01, random_state=0)  # fmt: skip
        assert net.fit(X, CLASSES).score(X, CLASSES) > 0.8


def test_a_diverging_fit_is_refused():
    net = MLPRegressor((10,), solver="sgd", learning_rate_init=10.0, random_state=0)
    with pytest.raises(ValueError, match="Solver produced non-finite parameter weights"):
        net.fit(X, TARGETS[:, 0] * 1e6)
