"""Named optimizers match plain optax, rprop matches torch's algorithm, bad configs fail clearly."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from funcbp import optim


def _params():
    return [
        {"w": jnp.array([[1.0, -2.0], [0.5, 3.0]]), "b": jnp.array([0.25, -1.0])},
        {"w": jnp.array([[-1.5], [2.0]]), "b": jnp.array([0.75])},
    ]


def _grads(step):
    """A fixed gradient pytree per step, with entries that change sign between steps."""
    rng = np.random.default_rng(step)
    return jax.tree.map(lambda p: jnp.asarray(rng.standard_normal(p.shape)), _params())


def _run(tx, steps, params=None):
    """The updates of ``tx`` over ``steps`` fixed gradients (params held fixed)."""
    params = _params() if params is None else params
    state = tx.init(params)
    out = []
    for step in range(steps):
        updates, state = tx.update(_grads(step), state, params)
        out.append(updates)
    return out


PLAIN_OPTAX = [
    ("sgd", {}, optax.sgd(0.1)),
    ("momentum", {}, optax.sgd(0.1, momentum=0.9)),
    ("momentum", {"momentum": 0.5}, optax.sgd(0.1, momentum=0.5)),
    ("nesterov", {"momentum": 0.8}, optax.sgd(0.1, momentum=0.8, nesterov=True)),
    ("adam", {}, optax.adam(0.1)),
    ("adam", {"b1": 0.8, "b2": 0.99, "eps": 1e-6}, optax.adam(0.1, b1=0.8, b2=0.99, eps=1e-6)),
    ("adamw", {"weight_decay": 0.01}, optax.adamw(0.1, weight_decay=0.01)),
    ("adamw", {}, optax.adamw(0.1)),  # optax's default decay: not plain adam
    ("rmsprop", {"decay": 0.95}, optax.rmsprop(0.1, decay=0.95)),
]


@pytest.mark.parametrize(("name", "options", "want"), PLAIN_OPTAX)
def test_matches_plain_optax(name, options, want):
    got = optim.make(name, 0.1, **options)
    chex.assert_trees_all_close(_run(got, 4), _run(want, 4), rtol=1e-14, atol=0)


def _quadratic(params):
    # Curvature 1..2 per element, minimum at 0.
    return sum(jnp.sum((1.0 + jnp.arange(p.size).reshape(p.shape) / p.size) * p**2) for p in params)


@pytest.mark.parametrize(
    ("name", "learning_rate"),
    [
        ("sgd", 0.1),
        ("momentum", 0.05),
        ("nesterov", 0.05),
        ("adam", 0.1),
        ("adamw", 0.1),
        ("rmsprop", 0.1),
        ("rprop", 0.05),
    ],
)
def test_decreases_a_quadratic(name, learning_rate):
    tx = optim.make(name, learning_rate)
    params = jax.tree.leaves(_params())
    state = tx.init(params)

    @jax.jit
    def step(params, state):
        updates, state = tx.update(jax.grad(_quadratic)(params), state, params)
        return optax.apply_updates(params, updates), state

    start = float(_quadratic(params))
    for _ in range(30):
        params, state = step(params, state)
    assert float(_quadratic(params)) < 0.1 * start


# --- rprop -------------------------------------------------------------------


def _rprop_reference(grads, lr, eta_minus, eta_plus, min_step, max_step):
    """torch.optim.Rprop's ``_single_tensor_rprop`` in NumPy: the update of each step."""
    prev = np.zeros_like(grads[0])
    step_size = np.full_like(grads[0], lr)
    updates = []
    for grad in grads:
        sign = np.sign(grad * prev)
        factor = np.where(sign > 0, eta_plus, np.where(sign < 0, eta_minus, 1.0))
        step_size = np.clip(step_size * factor, min_step, max_step)
        grad = np.where(sign < 0, 0.0, grad)
        updates.append(-np.sign(grad) * step_size)
        prev = grad
    return updates


@pytest.mark.parametrize(
    "hyper",
    [
        (0.1, 0.5, 1.2, 1e-6, 50.0),  # torch's defaults
        (0.1, 0.3, 1.5, 0.02, 0.2),  # both clips reached within the run
        (5.0, 0.5, 1.2, 1e-6, 1.0),  # learning_rate above max_step_size: clipped at once
    ],
)
def test_rprop_matches_torch_reference_step_by_step(hyper):
    rng = np.random.default_rng(0)
    # Few distinct values so that signs repeat and flip often; exact zeros included.
    grads = [rng.choice([-2.0, -0.5, 0.0, 0.5, 1.0], size=(6, 5)) for _ in range(12)]
    want = _rprop_reference(grads, *hyper)
    tx = optim.rprop(*hyper)
    state = tx.init(jnp.zeros((6, 5)))
    for step, (grad, expected) in enumerate(zip(grads, want, strict=True)):
        updates, state = tx.update(jnp.asarray(grad), state)
        np.testing.assert_allclose(updates, expected, rtol=1e-12, atol=0, err_msg=f"step {step}")


def test_rprop_first_update_is_not_late():
    grads = {"w": jnp.array([0.3, -2.0, 0.0])}
    updates, _ = optim.rprop(0.01).update(grads, optim.rprop(0.01).init(grads))
    np.testing.assert_array_equal(updates["w"], [-0.01, 0.01, 0.0])
    late, _ = optax.rprop(0.01).update(grads, optax.rprop(0.01).init(grads))
    np.testing.assert_array_equal(late["w"], [0.0, 0.0, 0.0])


def test_rprop_keeps_the_parameter_dtype():
    params = {"w": jnp.ones(3, jnp.float32)}
    tx = optim.rprop(0.1)
    state = tx.init(params)
    updates, state = tx.update({"w": jnp.array([1.0, -1.0, 0.0], jnp.float32)}, state)
    chex.assert_trees_all_equal_dtypes(updates, state.prev, state.step_size, params)


# --- schedules -----------------------------------------------------------------

STEPS = np.array([0, 1, 4, 5, 9, 10, 15, 30])


def _cosine(t, lr, decay_steps, alpha):
    return lr * (
        (1 - alpha) * 0.5 * (1 + np.cos(np.pi * np.minimum(t, decay_steps) / decay_steps)) + alpha
    )


@pytest.mark.parametrize(
    ("name", "options", "want"),
    [
        ("constant", {}, np.full(STEPS.shape, 0.2)),
        ("exponential", {"gamma": 0.9}, 0.2 * 0.9**STEPS),
        ("step", {"gamma": 0.5, "every": 5}, 0.2 * 0.5 ** (STEPS // 5)),
        ("cosine", {"decay_steps": 10}, _cosine(STEPS, 0.2, 10, 0.0)),
        ("cosine", {"decay_steps": 10, "alpha": 0.1}, _cosine(STEPS, 0.2, 10, 0.1)),
        (
            "warmup_cosine",
            {"warmup_steps": 5, "decay_steps": 15, "alpha": 0.1},
            np.where(STEPS < 5, 0.2 * STEPS / 5, _cosine(STEPS - 5, 0.2, 10, 0.1)),
        ),
    ],
)
def test_schedule_values(name, options, want):
    fn = optim.schedule(name, 0.2, **options)
    np.testing.assert_allclose([float(fn(t)) for t in STEPS], want, rtol=1e-12, atol=1e-15)


def test_schedule_drives_the_optimizer_step_by_step():
    config = {
        "name": "sgd",
        "learning_rate": 1.0,
        "schedule": {"name": "step", "every": 2, "gamma": 0.5},
    }
    updates = _run(optim.from_config(config), 5)
    for step, got in enumerate(updates):
        want = jax.tree.map(lambda g, lr=0.5 ** (step // 2): -lr * g, _grads(step))
        chex.assert_trees_all_close(got, want, rtol=1e-15, custom_message=f"step {step}")


def test_schedule_by_name_only():
    (updates,) = _run(optim.make("adam", 0.1, schedule="constant"), 1)
    chex.assert_trees_all_close(updates, _run(optax.adam(0.1), 1)[0], rtol=1e-15)


# --- clipping and weight decay -----------------------------------------------


def test_clip_value_clips_each_element():
    grads = {"a": jnp.array([-2.0, 0.3, 1.0])}
    tx = optim.make("sgd", 1.0, clip_value=0.5)
    updates, _ = tx.update(grads, tx.init(grads))
    np.testing.assert_array_equal(updates["a"], [0.5, -0.3, -0.5])


@pytest.mark.parametrize(("scale", "clipped"), [(1.0, True), (0.1, False)])
def test_clip_norm_rescales_the_global_norm(scale, clipped):
    grads = {
        "a": scale * jnp.array([3.0]),
        "b": scale * jnp.array([[4.0]]),
    }  # global norm 5 * scale
    tx = optim.make("sgd", 1.0, clip_norm=1.0)
    updates, _ = tx.update(grads, tx.init(grads))
    want = jax.tree.map(lambda g: -g / (5.0 if clipped else 1.0), grads)
    chex.assert_trees_all_close(updates, want, rtol=1e-15)


def test_clip_value_comes_before_clip_norm():
    grads = {"a": jnp.array([3.0, 4.0])}
    tx = optim.make("sgd", 1.0, clip_value=3.5, clip_norm=1.0)
    updates, _ = tx.update(grads, tx.init(grads))
    np.testing.assert_allclose(
        updates["a"], -np.array([3.0, 3.5]) / math.hypot(3.0, 3.5), rtol=1e-15
    )


def test_weight_decay_is_added_to_the_gradient():
    params = _params()
    got = _run(optim.make("momentum", 0.1, weight_decay=0.01), 3, params)
    want = _run(
        optax.chain(optax.add_decayed_weights(0.01), optax.sgd(0.1, momentum=0.9)), 3, params
    )
    chex.assert_trees_all_close(got, want, rtol=1e-15)
    first = jax.tree.map(lambda g, p: -0.1 * (g + 0.01 * p), _grads(0), params)
    chex.assert_trees_all_close(got[0], first, rtol=1e-15)


def test_adamw_decays_decoupled_and_adam_coupled():
    params = {"w": jnp.array([2.0, -0.5])}
    zero = {"w": jnp.zeros(2)}
    adamw = optim.make("adamw", 0.1, weight_decay=0.01)
    updates, _ = adamw.update(zero, adamw.init(params), params)
    np.testing.assert_allclose(updates["w"], -0.1 * 0.01 * params["w"], rtol=1e-15)
    # Coupled: Adam normalises the decay term itself, so the first step is -lr * sign(p).
    adam = optim.make("adam", 0.1, weight_decay=0.01)
    updates, _ = adam.update(zero, adam.init(params), params)
    np.testing.assert_allclose(updates["w"], [-0.1, 0.1], rtol=1e-5)


# --- jit ---------------------------------------------------------------------


@pytest.mark.parametrize("name", optim.FIRST_ORDER_NAMES)
def test_jitted_update_does_not_recompile(name):
    tx = optim.make(name, 0.1, clip_norm=1.0, weight_decay=1e-3)
    params = _params()
    chex.clear_trace_counter()  # the counter is keyed by this one function across parameters

    @jax.jit
    @chex.assert_max_traces(n=1)
    def update(grads, state, params):
        return tx.update(grads, state, params)

    state = tx.init(params)
    for step in range(2):
        _, state = update(_grads(step), state, params)


# --- errors --------------------------------------------------------------------

ERRORS = [
    (lambda: optim.make("adagrad", 0.1), r"unknown optimizer 'adagrad'; valid names: sgd, .*rprop"),
    (lambda: optim.make(None, 0.1), r"unknown optimizer None"),
    (lambda: optim.make("adam", -0.1), r"learning_rate must be a finite number >= 0, got -0.1"),
    (lambda: optim.make("adam", float("nan")), r"learning_rate must be .*, got nan"),
    (lambda: optim.make("adam", "0.1"), r"learning_rate must be .*, got '0.1'"),
    (lambda: optim.make("momentum", 0.1, momentum=1.0), r"momentum must be a number in \[0, 1\)"),
    (lambda: optim.make("nesterov", 0.1, momentum=-0.1), r"momentum must be .*, got -0.1"),
    (lambda: optim.make("adam", 0.1, b2=1.5), r"b2 must be a number in \[0, 1\), got 1.5"),
    (lambda: optim.make("rmsprop", 0.1, eps=-1.0), r"eps must be a finite number >= 0"),
    (
        lambda: optim.make("adam", 0.1, beta1=0.9),
        r"unknown option 'beta1' for optimizer 'adam'; valid options: b1, b2, eps, schedule",
    ),
    (
        lambda: optim.make("sgd", 0.1, momentum=0.9),
        r"unknown option 'momentum' for optimizer 'sgd'",
    ),
    (lambda: optim.make("sgd", 0.1, clip_norm=0.0), r"clip_norm must be a finite number > 0"),
    (lambda: optim.make("sgd", 0.1, clip_value=-1.0), r"clip_value must be a finite number > 0"),
    (lambda: optim.make("sgd", 0.1, weight_decay=-1e-4), r"weight_decay must be .* >= 0"),
    (lambda: optim.rprop(0.1, eta_minus=1.0), r"eta_minus must be a number in \(0, 1\), got 1.0"),
    (lambda: optim.rprop(0.1, eta_minus=0.0), r"eta_minus must be a number in \(0, 1\)"),
    (lambda: optim.rprop(0.1, eta_plus=1.0), r"eta_plus must be a finite number > 1, got 1.0"),
    (lambda: optim.rprop(-1.0), r"learning_rate must be"),
    (
        lambda: optim.rprop(0.1, min_step_size=1.0, max_step_size=0.5),
        r"min_step_size \(1.0\) must not exceed max_step_size \(0.5\)",
    ),
    (lambda: optim.make("rprop", 0.1, eta_plus=0.9), r"eta_plus must be a finite number > 1"),
    (lambda: optim.make("rprop", 0.1, schedule="cosine"), r"schedule: rprop takes none"),
    (lambda: optim.schedule("linear", 0.1), r"unknown schedule 'linear'; valid names: constant, "),
    (
        lambda: optim.make("adam", 0.1, schedule={"name": "cosine", "learning_rate": 1.0}),
        r"schedule: takes no 'learning_rate'; the optimizer's learning_rate is its initial value",
    ),
    (lambda: optim.schedule("cosine", 0.1), r"schedule 'cosine' needs option 'decay_steps'"),
    (lambda: optim.schedule("step", 0.1, every=5), r"schedule 'step' needs option 'gamma'"),
    (
        lambda: optim.schedule("step", 0.1, every=5, gamma=0.5, gama=0.5),
        r"unknown option 'gama' for schedule 'step'; valid options: gamma, every",
    ),
    (lambda: optim.schedule("step", 0.1, every=0, gamma=0.5), r"every must be a positive integer"),
    (
        lambda: optim.schedule("step", 0.1, every=2.5, gamma=0.5),
        r"every must be a positive integer",
    ),
    (lambda: optim.schedule("exponential", 0.1, gamma=1.5), r"gamma must be a number in \(0, 1\]"),
    (lambda: optim.schedule("cosine", 0.1, decay_steps=10, alpha=2.0), r"alpha must be"),
    (
        lambda: optim.schedule("constant", 0.1, gamma=0.5),
        r"for schedule 'constant'; valid options: none",
    ),
    (
        lambda: optim.schedule("warmup_cosine", 0.1, warmup_steps=10, decay_steps=10),
        r"warmup_steps \(10\) must be less than decay_steps \(10\)",
    ),
    (
        lambda: optim.make("adam", 0.1, schedule={"decay_steps": 10}),
        r"schedule must be a name or a mapping with key 'name'",
    ),
    (lambda: optim.from_config({"learning_rate": 0.1}), r"optimizer config needs key 'name'"),
    (lambda: optim.from_config({"name": "adam"}), r"optimizer config needs key 'learning_rate'"),
    (lambda: optim.from_config(["adam", 0.1]), r"optimizer config must be a mapping, got list"),
    (
        lambda: optim.from_config({"name": "adam", "learning_rate": 0.1, "clipnorm": 1.0}),
        r"unknown option 'clipnorm' for optimizer 'adam'.*clip_norm",
    ),
]


@pytest.mark.parametrize(("build", "message"), ERRORS)
def test_bad_config_raises_a_clear_error(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_from_config_equals_make():
    config = {"name": "adam", "learning_rate": 0.1, "b1": 0.8, "clip_norm": 1.0}
    got = _run(optim.from_config(config), 3)
    want = _run(optim.make("adam", 0.1, b1=0.8, clip_norm=1.0), 3)
    chex.assert_trees_all_close(got, want, rtol=0, atol=0)
