"""The MLP spec: validation with messages that name the problem, and initialisation."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcbp
from funcbp import activations, initializers


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sizes": (3, 0, 2)}, r"sizes must be at least two positive integers.*\(3, 0, 2\)"),
        ({"sizes": (3, -4, 2)}, r"positive integers"),
        ({"sizes": (3, 2.5, 2)}, r"positive integers"),
        ({"sizes": (3, True)}, r"positive integers"),
        ({"sizes": (3,)}, r"at least two"),
        ({"sizes": "64"}, r"sizes must be a sequence"),
        ({"sizes": 64}, r"sizes must be a sequence"),
        ({"sizes": (3, 4, 2), "activation": "rleu"}, r"unknown activation 'rleu'; valid names"),
        ({"sizes": (3, 4, 2), "output_activation": "softmax"}, r"unknown activation 'softmax'"),
        ({"sizes": (3, 4, 5, 2), "activation": ("relu",)}, r"1 given for 2 hidden layers"),
        ({"sizes": (3, 2), "cost": "hinge"}, r"unknown cost 'hinge'; valid names: mse"),
        ({"sizes": (3, 2), "l2": -1.0}, r"l2 must be a finite number >= 0, got -1.0"),
        ({"sizes": (3, 2), "l2": float("nan")}, r"l2 must be a finite number >= 0, got nan"),
        ({"sizes": (3, 4, 2), "activation": None}, r"activation must be a name, a funcbp.Activ"),
        ({"sizes": (3, 2), "initializer": "orthogonal"}, r"unknown initializer 'orthogonal'"),
    ],
)
def test_bad_spec_names_the_problem(kwargs, message):
    with pytest.raises(ValueError, match=message):
        funcbp.MLP(**kwargs)


def test_spec_is_frozen_hashable_and_normalised():
    net = funcbp.MLP([2, 3, 4, 1], activation=["tanh", "relu"], l2=1)
    assert net.sizes == (2, 3, 4, 1) and net.activation == ("tanh", "relu") and net.l2 == 1.0
    assert hash(net) == hash(funcbp.MLP((2, 3, 4, 1), activation=("tanh", "relu"), l2=1.0))
    with pytest.raises(AttributeError):
        net.l2 = 0.5
    assert [a.name for a in net.layer_activations] == ["tanh", "relu", "identity"]
    assert net.num_params == (2 * 3 + 3) + (3 * 4 + 4) + (4 * 1 + 1)


@pytest.fixture
def net():
    return funcbp.MLP((4, 5, 3), cost="softmax_cross_entropy")


@pytest.fixture
def params(net):
    return net.init(jax.random.key(0))


@pytest.mark.parametrize(
    ("x_shape", "message"),
    [((6, 5), r"x has shape \(6, 5\), expected \[batch, 4\]"), ((4,), r"x has shape \(4,\)")],
)
def test_input_width_that_does_not_fit_is_named(net, params, x_shape, message):
    for method in (net.apply, net.apply_custom_vjp):
        with pytest.raises(ValueError, match=message):
            method(params, jnp.zeros(x_shape))
    for method in (net.loss, net.backprop, net.autodiff):
        with pytest.raises(ValueError, match=message):
            method(params, jnp.zeros(x_shape), jnp.zeros(x_shape[0], jnp.int32))


def test_targets_that_do_not_fit_are_named_by_every_engine(net, params):
    x = jnp.zeros((6, 4))
    for method in (net.loss, net.backprop, net.autodiff):
        with pytest.raises(ValueError, match=r"label 7 is out of range for 3 classes"):
            method(params, x, jnp.array([0, 1, 2, 7, 0, 1]))
        with pytest.raises(ValueError, match=r"targets y have shape \(6, 2\), expected \(6, 3\)"):
            method(params, x, jnp.zeros((6, 2)))


def test_inputs_that_are_not_a_batch_of_real_numbers_are_named(net, params):
    for x, message in [
        (jnp.zeros((0, 4)), r"x has no rows"),
        (jnp.zeros((2, 4), jnp.complex64), r"x has dtype complex64; inputs must be real numbers"),
        (np.full((2, 4), "a"), r"x has dtype <U1"),
    ]:
        with pytest.raises(ValueError, match=message):
            net.apply(params, x)
    as_list = net.loss(params, [[0.0] * 4] * 3, [0, 1, 2])  # plain lists are arrays too
    assert as_list == net.loss(params, jnp.zeros((3, 4)), jnp.array([0, 1, 2]))


def test_params_that_do_not_fit_are_named(net, params):
    x = jnp.zeros((2, 4))
    with pytest.raises(ValueError, match=r"params must be a list of 2 layers, got 1"):
        net.apply(params[:1], x)
    with pytest.raises(ValueError, match=r"params\[0\] must be a dict \{'w'.*got tuple"):
        net.apply([(p["w"], p["b"]) for p in params], x)
    swapped = [params[0], {"w": params[1]["w"].T, "b": params[1]["b"]}]
    with pytest.raises(ValueError, match=r"params\[1\] has shapes .* expected .*\(5, 3\)"):
        net.apply(swapped, x)


def test_validation_also_runs_under_jit(net, params):
    with pytest.raises(ValueError, match=r"expected \[batch, 4\]"):
        jax.jit(net.apply)(params, jnp.zeros((2, 3)))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64, jnp.bfloat16])
def test_init_shapes_dtypes_and_zero_biases(dtype):
    net = funcbp.MLP((7, 16, 9, 2), activation="tanh")
    params = net.init(jax.random.key(1), dtype=dtype)
    chex.assert_trees_all_equal_shapes_and_dtypes(
        params,
        [
            {"w": jnp.zeros((7, 16), dtype), "b": jnp.zeros(16, dtype)},
            {"w": jnp.zeros((16, 9), dtype), "b": jnp.zeros(9, dtype)},
            {"w": jnp.zeros((9, 2), dtype), "b": jnp.zeros(2, dtype)},
        ],
    )
    assert all(not jnp.any(layer["b"]) for layer in params)
    assert net.apply(params, jnp.ones((3, 7), dtype)).dtype == dtype


def test_init_is_deterministic_per_key_and_accepts_legacy_keys():
    net = funcbp.MLP((3, 4, 2))
    chex.assert_trees_all_equal(net.init(jax.random.key(5)), net.init(jax.random.key(5)))
    assert not jnp.array_equal(
        net.init(jax.random.key(5))[0]["w"], net.init(jax.random.key(6))[0]["w"]
    )
    chex.assert_trees_all_equal_shapes(net.init(jax.random.PRNGKey(5)), net.init(jax.random.key(5)))


def test_float64_without_x64_is_refused():
    net = funcbp.MLP((3, 2))
    with jax.enable_x64(False), pytest.raises(ValueError, match="jax_enable_x64"):
        net.init(jax.random.key(0), dtype=jnp.float64)
    with pytest.raises(ValueError, match="floating type"):
        net.init(jax.random.key(0), dtype=jnp.int32)
    with pytest.raises(ValueError, match="floating type, got 'foo'"):
        net.init(jax.random.key(0), dtype="foo")
    with pytest.raises(ValueError, match=r"key must be a jax.random.key\(seed\), got int"):
        net.init(0)


# Variance of a [fan_in, fan_out] weight matrix under each rule.
EXPECTED_VARIANCE = {
    "glorot_uniform": lambda fi, fo: 2.0 / (fi + fo),
    "glorot_normal": lambda fi, fo: 2.0 / (fi + fo),
    "he_uniform": lambda fi, fo: 2.0 / fi,
    "he_normal": lambda fi, fo: 2.0 / fi,
    "lecun_uniform": lambda fi, fo: 1.0 / fi,
    "lecun_normal": lambda fi, fo: 1.0 / fi,
}


@pytest.mark.parametrize("name", [*EXPECTED_VARIANCE, "xavier_normal", "kaiming_uniform"])
def test_initializers_have_their_documented_variance(name):
    fan_in, fan_out = 400, 300
    net = funcbp.MLP((fan_in, fan_out), initializer=name)
    w = np.asarray(net.init(jax.random.key(2), dtype=jnp.float64)[0]["w"])
    want = EXPECTED_VARIANCE[initializers.resolve(name, activations.get("identity"))](
        fan_in, fan_out
    )
    # 120,000 draws: the sample variance is within 2 % of the truth with overwhelming probability.
    assert abs(w.var() / want - 1) < 0.02, (w.var(), want)
    assert abs(w.mean()) < 0.01 * np.sqrt(want)
    rule = initializers.get(name, activations.get("identity"))
    bound = rule.factor(fan_in, fan_out) * (1 if rule.distribution == "uniform" else 2)
    assert np.abs(w).max() < bound


def test_truncated_normal_weights_follow_jax_random_truncated_normal():
    # Both invert the normal distribution function over the same uniform range: with
    # 120,000 draws each, every percentile agrees to a few thousandths.
    net = funcbp.MLP((400, 300), initializer="lecun_normal")
    rule = initializers.get("lecun_normal", activations.get("identity"))
    w = np.asarray(net.init(jax.random.key(3), dtype=jnp.float64)[0]["w"])
    ours = w.ravel() / rule.factor(400, 300)  # the unit truncated normal
    theirs = np.asarray(jax.random.truncated_normal(jax.random.key(4), -2.0, 2.0, (120_000,)))
    q = np.linspace(1, 99, 99)
    np.testing.assert_allclose(np.percentile(ours, q), np.percentile(theirs, q), atol=0.03)


@pytest.mark.parametrize("name", activations.NAMES)
def test_auto_initializer_is_he_for_the_relu_family(name):
    chosen = initializers.resolve("auto", activations.get(name))
    if name in {"relu", "leaky_relu", "elu", "silu", "gelu", "gelu_tanh"}:
        assert chosen == "he_normal"
    else:
        assert chosen in {"glorot_uniform", "lecun_normal"}
