"""The full-batch solvers (``funcbp.optim.make("lbfgs" | "levenberg_marquardt" |
"newton_cg")``) through ``fit``: exact on least squares, the engines agreeing, optax's
rising line-search step rejected, scikit-learn's expectations of its ``lbfgs``
solver, one compiled program, counted evaluations, and the runs they refuse."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import funcbp
from funcbp import optim
from funcbp.data import load as builtin

from ._xla_compiles import XlaCompiles, assert_refused_before_compiling

SOLVERS = ["levenberg_marquardt", "newton_cg"]
EXACT = {"tol": 0.0, "loss_tol": 0.0}  # stop on no criterion: run the epochs asked for


def _least_squares():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 4))
    y = x @ rng.normal(size=(4, 2)) + 0.3 + 0.1 * rng.normal(size=(30, 2))
    with_bias = np.hstack([x, np.ones((30, 1))])
    return x, y, np.linalg.lstsq(with_bias, y, rcond=None)[0]  # [[W], [b]]


LINEAR = funcbp.MLP(sizes=(4, 2), output_activation="identity", cost="mse")


@pytest.mark.parametrize(("name", "options"), [
    ("levenberg_marquardt", {}),
    ("levenberg_marquardt", {"solve": "cg"}),
    ("newton_cg", {}),
    ("newton_cg", {"curvature": "hessian"}),
])  # fmt: skip
@pytest.mark.filterwarnings("ignore::funcbp.train.SolverWarning")  # at the minimum: no step
def test_least_squares_reach_the_closed_form_in_a_handful_of_iterations(name, options):
    """A one-layer network with MSE is least squares: a quadratic whose Gauss-Newton
    matrix is its Hessian, so a damped Newton step converges fast as the damping falls
    (and the conjugate gradient's forcing tolerance with the gradient). 1e-8 in float64
    within 6 iterations (the solution is O(1)); LM's dense solve is there in 2."""
    x, y, solution = _least_squares()
    solver = optim.make(name, **EXACT, **options)
    state, history = funcbp.fit(LINEAR, solver, (x, y), batch_size=None, epochs=6,
                                dtype=jnp.float64)  # fmt: skip
    got = np.vstack([state.params[0]["w"], state.params[0]["b"][None]])
    np.testing.assert_allclose(got, solution, rtol=0, atol=1e-8)
    assert all(n >= 2 for n in history["function_evaluations"])  # the gradient's and a trial
    assert set(history["gradient_evaluations"]) == {1}


def test_at_the_minimum_levenberg_marquardt_stops_on_its_damping_keeping_the_best():
    x, y, solution = _least_squares()
    with pytest.warns(
        funcbp.train.SolverWarning,
        match=r"optimizer 'levenberg_marquardt' "
        r"stopped at iteration \d+ \(damping\): the damping passed max_damping",
    ):
        state, history = funcbp.fit(LINEAR, optim.make("levenberg_marquardt", **EXACT), (x, y),
                                    batch_size=None, epochs=50, dtype=jnp.float64)  # fmt: skip
    assert history["stop_reason"] == "damping" and len(history["epoch"]) < 50
    got = np.vstack([state.params[0]["w"], state.params[0]["b"][None]])
    np.testing.assert_allclose(got, solution, rtol=0, atol=1e-10)
    assert np.all(np.diff(history["train_loss"]) <= 0)  # no step that raises the loss


@pytest.mark.parametrize("name", [*SOLVERS, "lbfgs"])
def test_the_hand_derived_and_autodiff_engines_take_the_same_steps(name):
    """Gradients equal to rounding give the same iterates: 1e-10 after 6 iterations."""
    data = builtin("iris")
    net = funcbp.MLP(sizes=(4, 6, 3), activation="tanh", cost="softmax_cross_entropy", l2=1e-3)
    runs = [funcbp.fit(net, optim.make(name, **EXACT), (data.x, data.y), batch_size=None,
                       epochs=6, engine=engine, dtype=jnp.float64)[1]
            for engine in ("backprop", "autodiff")]  # fmt: skip
    np.testing.assert_allclose(runs[0]["train_loss"], runs[1]["train_loss"], rtol=1e-10)
    assert runs[0]["function_evaluations"] == runs[1]["function_evaluations"]


def _bumpy(p):
    """A bumpy quadratic on which optax's zoom line search, given one step, ends higher."""
    t = p[0]["w"]
    return jnp.sum(10 * t**2 + jnp.cos(7 * t))


def test_lbfgs_never_takes_the_step_optaxs_line_search_ends_higher_on():
    """optax issue 1201: with one line-search step, optax's own L-BFGS raises the loss
    at its 4th update; funcbp's rejects that step, restarts, and stops when the restart's
    step is rejected too, the loss never having risen."""
    start = [{"w": jnp.array([1.0, -0.3, 2.0]), "b": jnp.zeros(1)}]
    raw = optax.lbfgs(linesearch=optax.scale_by_zoom_linesearch(1, initial_guess_strategy="one"))

    @jax.jit
    def raw_step(params, state):
        loss, grad = jax.value_and_grad(_bumpy)(params)
        updates, state = raw.update(grad, state, params, value=loss, grad=grad, value_fn=_bumpy)
        return optax.apply_updates(params, updates), state, loss

    params, state, losses = start, raw.init(start), []
    for _ in range(5):
        params, state, loss = raw_step(params, state)
        losses.append(float(loss))
    assert max(np.diff(losses)) > 0  # the failure this guards against happens here

    objective = optim.Objective(None, 1, _bumpy, jax.value_and_grad(_bumpy), None, None, None)
    solver = optim.make("lbfgs", max_linesearch_steps=1)
    params, state, losses = start, solver.init(start), []
    update = jax.jit(lambda p, s: solver.update(objective, p, s))
    while not int(state.stop):
        params, state, info = update(params, state)
        losses.append(float(info["loss"]))
    assert np.all(np.diff(losses) <= 0)
    assert optim.stop_reason(state)[0] == "line_search" and len(losses) == 5
    assert losses[-1] == pytest.approx(float(_bumpy(params)), abs=0)  # the best, kept


def _digits_subset(classes: int):
    """scikit-learn's MLP tests' classification data: the first 200 digits of ``classes``
    classes, min-max scaled, 150 rows to train on."""
    data = builtin("digits")
    keep = data.y < classes
    x, y = data.x[keep][:200], data.y[keep][:200]
    x = (x - x.min(axis=0)) / np.maximum(x.max(axis=0) - x.min(axis=0), 1e-12)
    return x[:150], y[:150]


@pytest.mark.slow
@pytest.mark.parametrize("activation", ["identity", "sigmoid", "tanh", "relu"])
@pytest.mark.parametrize("classes", [2, 3])
def test_lbfgs_meets_scikit_learns_expectations_of_its_lbfgs_on_digits(activation, classes):
    """scikit-learn's ``test_lbfgs_classification``: 50 hidden units, at most 150
    iterations, training accuracy above 0.95."""
    x, y = _digits_subset(classes)
    net = funcbp.MLP(sizes=(64, 50, classes), activation=activation,
                     cost="softmax_cross_entropy")  # fmt: skip
    state, history = funcbp.fit(net, optim.make("lbfgs"), (x, y), batch_size=None, epochs=150,
                                key=jax.random.key(1))  # fmt: skip
    accuracy = np.mean(np.argmax(net.apply(state.params, x), axis=1) == y)
    assert accuracy > 0.95, (accuracy, history.get("stop_reason"))


@pytest.mark.slow
@pytest.mark.parametrize("activation", ["identity", "sigmoid", "tanh", "relu"])
def test_lbfgs_meets_scikit_learns_expectations_on_a_regression(activation):
    """scikit-learn's ``test_lbfgs_regression``: ``make_regression`` (200 x 10), the
    target standardised, 50 hidden units, R^2 above 0.95."""
    datasets = pytest.importorskip("sklearn.datasets")
    x, y = datasets.make_regression(n_samples=200, n_features=10, random_state=7)
    y = ((y - y.mean()) / y.std())[:, None]
    net = funcbp.MLP(sizes=(10, 50, 1), activation=activation, cost="mse")
    state, _ = funcbp.fit(net, optim.make("lbfgs"), (x, y), batch_size=None, epochs=200,
                          key=jax.random.key(1))  # fmt: skip
    residual = np.sum((np.asarray(net.apply(state.params, x)) - y) ** 2)
    assert 1 - residual / np.sum((y - y.mean()) ** 2) > 0.95


def test_one_compiled_program_serves_every_block_and_the_next_fit():
    data = builtin("iris")
    net = funcbp.MLP(sizes=(4, 8, 3), activation="tanh", cost="softmax_cross_entropy")
    solver = optim.make("levenberg_marquardt", **EXACT)
    kwargs = {"batch_size": None, "epochs": 6, "epochs_per_call": 2, "key": jax.random.key(0)}
    first, history = funcbp.fit(net, solver, (data.x, data.y), **kwargs)
    compiles = XlaCompiles()
    with compiles:
        again, _ = funcbp.fit(net, solver, (data.x, data.y), **kwargs)
    assert compiles.count == 0  # three blocks, two fits: nothing compiled anew
    np.testing.assert_array_equal(first.params[0]["w"], again.params[0]["w"])
    assert set(history) >= {"function_evaluations", "gradient_evaluations", "damping", "trials"}
    assert int(first.opt_state.evaluations) == sum(history["function_evaluations"])


def test_sample_weights_of_two_are_a_repeated_row():
    """The weighted mean's objective is the repeated data's: the same iterates."""
    data = builtin("iris")
    x, y = data.x[:40], data.y[:40]
    w = np.ones(40)
    w[:5] = 2.0
    net = funcbp.MLP(sizes=(4, 5, 3), activation="tanh", cost="softmax_cross_entropy")
    solver = optim.make("newton_cg", **EXACT)
    kwargs = {"batch_size": None, "epochs": 4, "dtype": jnp.float64}
    weighted = funcbp.fit(net, solver, (x, y, w), **kwargs)[1]["train_loss"]
    repeated = funcbp.fit(net, solver, (np.vstack([x, x[:5]]), np.concatenate([y, y[:5]])),
                          **kwargs)[1]["train_loss"]  # fmt: skip
    np.testing.assert_allclose(weighted, repeated, rtol=1e-9)


MSE = funcbp.MLP(sizes=(4, 3, 3), cost="mse")


@pytest.mark.parametrize(("call", "message"), [
    (lambda: optim.make("lbfgs", 0.1), r"learning_rate: optimizer 'lbfgs' takes none \(its "
                                       r"line search sets the step\)"),
    (lambda: optim.make("adam"), r"optimizer 'adam' needs a learning_rate"),
    (lambda: optim.make("newton_cg", curvature="exact"),
     r"curvature must be one of 'gauss_newton', 'hessian', got 'exact'"),
    (lambda: optim.make("levenberg_marquardt", damping_increase=1.0),
     r"damping_increase must be a finite number > 1"),
    (lambda: optim.make("lbfgs", memory=5), r"unknown option 'memory' for optimizer 'lbfgs'; "
                                            r"valid options: memory_size, max_linesearch_steps"),
    (lambda: funcbp.fit(MSE, optim.make("lbfgs"), _iris_onehot(), batch_size=32, epochs=2),
     r"batch_size: optimizer 'lbfgs' trains full batch \(batch_size=None; in a run file "
     r'train.batch_size = "full"\), got 32'),
    (lambda: funcbp.fit(MSE, optim.make("lbfgs"), _iris_onehot(), batch_size=None, epochs=2,
                        engine="feedback_alignment"),
     r"engine: optimizer 'lbfgs' needs the exact gradient .* 'feedback_alignment'"),
    (lambda: funcbp.fit(funcbp.MLP(sizes=(4, 3, 3), cost="mse", dropout=0.5),
                        optim.make("newton_cg"), _iris_onehot(), batch_size=None, epochs=2),
     r"dropout: optimizer 'newton_cg' needs a deterministic loss"),
    (lambda: funcbp.fit(MSE, optim.make("lbfgs"), _iris_onehot(), batch_size=None, epochs=2,
                        diagnostics_every=1), r"diagnostics_every: optimizer 'lbfgs' records"),
    (lambda: funcbp.fit(funcbp.MLP(sizes=(4, 3, 3), cost="mae"),
                        optim.make("levenberg_marquardt"), _iris_onehot(), batch_size=None,
                        epochs=2),
     r"cost: optimizer 'levenberg_marquardt' needs a cost with a Gauss-Newton form \(mse, "
     r"softmax_cross_entropy, sigmoid_binary_cross_entropy\); the network's cost is 'mae'"),
])  # fmt: skip
def test_what_a_solver_cannot_do_is_refused_before_compiling(call, message):
    assert_refused_before_compiling(call, ValueError, message)


def _iris_onehot():
    data = builtin("iris")
    return data.x, np.eye(3)[data.y]


def test_newton_cg_on_the_exact_hessian_trains_a_cost_without_a_gauss_newton_form():
    net = funcbp.MLP(sizes=(4, 6, 3), activation="tanh", cost="huber")
    solver = optim.make("newton_cg", curvature="hessian")
    with warnings.catch_warnings():
        warnings.simplefilter("error", funcbp.train.SolverWarning)
        _, history = funcbp.fit(net, solver, _iris_onehot(), batch_size=None, epochs=20)
    assert history["train_loss"][-1] < 0.5 * history["train_loss"][0]
