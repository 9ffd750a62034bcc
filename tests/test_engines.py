"""The hand-derived backward pass agrees with jax.grad, for every gradient path.

Error measure (see ``_compare.py``): per leaf, ``max|backprop - autodiff| / max|autodiff|``.
In float64 the two engines evaluate the same sums in different orders, so they
differ by a modest multiple of eps = 2.2e-16 times the depth and width; 1e-10
leaves a margin of about 1e5 over that while still catching any wrong factor,
sign or transpose (those give errors of order 1).
"""

import itertools

import jax
import jax.numpy as jnp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import funcbp
from funcbp import activations, losses
from funcbp.backprop import apply_custom_vjp, backprop

from ._compare import assert_trees_close, leaf_errors

RTOL64 = 1e-10


def make_targets(net, key, batch, dtype=jnp.float64):
    """Targets the cost takes (labels for softmax cross-entropy, counts for poisson...)."""
    cost, shape = net.resolved_cost, (batch, net.sizes[-1])
    if cost.targets is None:
        return jax.random.normal(key, shape, dtype)
    return cost.targets(key, shape, dtype)


def make_problem(net, key, batch, dtype=jnp.float64):
    k_params, k_x, k_y, k_b = jax.random.split(key, 4)
    params = net.init(k_params, dtype=dtype)
    # Non-zero biases so that every bias-gradient path carries signal.
    params = [
        {"w": p["w"], "b": 0.1 * jax.random.normal(k, p["b"].shape, dtype)}
        for p, k in zip(params, jax.random.split(k_b, len(params)), strict=True)
    ]
    x = jax.random.normal(k_x, (batch, net.sizes[0]), dtype)
    return params, x, make_targets(net, k_y, batch, dtype)


def both_engines(net, params, x, y):
    return net.backprop(params, x, y), net.autodiff(params, x, y)


def assert_engines_agree(net, params, x, y, rtol, jit=False):
    """Both engines, eager by default: with shapes shared across tests, eager
    dispatch reuses its per-operation compilations, while jit would compile
    every network anew."""
    run = jax.jit(both_engines, static_argnums=0) if jit else both_engines
    (loss_bp, grads_bp), (loss_ad, grads_ad) = run(net, params, x, y)
    assert_trees_close(loss_bp, loss_ad, rtol, "loss")
    assert_trees_close(grads_bp, grads_ad, rtol, f"{net}")


# Every hidden and output activation with the first three costs; the later costs with
# every output activation (their paths meet the hidden layers only through delta_L).
FIRST_COSTS = ("mse", "softmax_cross_entropy", "sigmoid_binary_cross_entropy")
PAIRINGS = [
    *itertools.product(activations.NAMES, activations.NAMES, FIRST_COSTS, [0.0, 0.3]),
    *(
        (activations.NAMES[i % len(activations.NAMES)], output, cost, l2)
        for i, (output, cost, l2) in enumerate(
            itertools.product(
                activations.NAMES, sorted(set(losses.NAMES) - set(FIRST_COSTS)), [0.0, 0.3]
            )
        )
    ),
]


@pytest.mark.parametrize(("hidden", "output", "cost", "l2"), PAIRINGS)
def test_every_pairing_agrees_in_float64(hidden, output, cost, l2):
    net = funcbp.MLP((5, 7, 6, 3), activation=hidden, output_activation=output, cost=cost, l2=l2)
    params, x, y = make_problem(net, jax.random.key(len(hidden) * 31 + len(output)), batch=9)
    assert_engines_agree(net, params, x, y, RTOL64)


@pytest.mark.parametrize("cost", ["softmax_cross_entropy", "sigmoid_binary_cross_entropy"])
def test_soft_and_onehot_targets_agree(cost):
    net = funcbp.MLP((4, 8, 3), activation="tanh", cost=cost)
    params, x, _ = make_problem(net, jax.random.key(3), batch=6)
    y = jax.nn.softmax(jax.random.normal(jax.random.key(4), (6, 3), jnp.float64))
    assert_engines_agree(net, params, x, y, RTOL64)


@pytest.mark.slow
@settings(max_examples=15, deadline=None)  # each example compiles anew: CI's time is bounded
@given(
    widths=st.lists(st.integers(1, 64), min_size=2, max_size=6),
    batch=st.integers(1, 33),
    hidden=st.lists(st.sampled_from(activations.NAMES), min_size=4, max_size=4),
    output=st.sampled_from(activations.NAMES),
    cost=st.sampled_from(losses.NAMES),
    l2=st.sampled_from([0.0, 1e-3, 0.5]),
    seed=st.integers(0, 2**31 - 1),
)
def test_random_architectures_agree_in_float64(widths, batch, hidden, output, cost, l2, seed):
    if cost == "softmax_cross_entropy":
        widths[-1] = max(widths[-1], 2)
    net = funcbp.MLP(
        tuple(widths),
        activation=tuple(hidden[: len(widths) - 2]),
        output_activation=output,
        cost=cost,
        l2=l2,
    )
    params, x, y = make_problem(net, jax.random.key(seed), batch)
    # Every example has new shapes: one compiled program is cheaper than eager
    # dispatch compiling each operation for them.
    assert_engines_agree(net, params, x, y, RTOL64, jit=True)


@pytest.mark.parametrize(
    ("hidden", "cost"),
    [
        *itertools.product(["tanh", "relu", "gelu"], FIRST_COSTS),
        *(("tanh", cost) for cost in sorted(set(losses.NAMES) - set(FIRST_COSTS))),
    ],
)
def test_float32_agrees_within_rounding(hidden, cost):
    net = funcbp.MLP((20, 64, 64, 4), activation=hidden, cost=cost, l2=1e-3)
    params, x, y = make_problem(net, jax.random.key(7), batch=32, dtype=jnp.float32)
    (loss_bp, grads_bp), (loss_ad, grads_ad) = jax.jit(both_engines, static_argnums=0)(
        net, params, x, y
    )
    # Each gradient entry is a dot product of up to 64 float32 terms passed
    # through 3 layers; the two engines round in different orders, so they
    # differ by about sqrt(64) * 3 * eps32 ~ 3e-6 relative to the leaf's scale.
    # 1e-5 bounds that; a real error is of order 1.
    assert_trees_close(grads_bp, grads_ad, 1e-5, "float32 grads")
    assert_trees_close(loss_bp, loss_ad, 1e-6, "float32 loss")
    # And both sit close to the float64 truth at float32 accuracy.
    params64, x64 = jax.tree.map(lambda a: a.astype(jnp.float64), (params, x))
    _, grads64 = net.autodiff(params64, x64, y.astype(jnp.float64) if y.ndim == 2 else y)
    assert max(leaf_errors(grads_bp, grads64).values()) < 1e-5


def test_bfloat16_parameters_run_and_roughly_agree():
    net = funcbp.MLP((8, 16, 3), activation="relu", cost="softmax_cross_entropy")
    params, x, y = make_problem(net, jax.random.key(1), batch=16, dtype=jnp.bfloat16)
    loss_bp, grads_bp = net.backprop(params, x, y)
    _, grads_ad = net.autodiff(params, x, y)
    assert loss_bp.dtype == jnp.bfloat16
    assert jax.tree.map(lambda g: g.dtype, grads_bp) == jax.tree.map(lambda p: p.dtype, params)
    # bfloat16 keeps 8 significant bits (eps = 2^-7 ~ 0.008); a few roundings.
    assert_trees_close(grads_bp, grads_ad, 0.05, "bfloat16 grads")


def test_gradients_take_the_parameters_dtype_and_the_input_gradient_the_inputs():
    # float64 inputs into float32 parameters widen the products; the gradients do not
    # widen (jax.grad's never do), nor does apply_custom_vjp's cotangent for x.
    net = funcbp.MLP((3, 4, 2), activation="tanh", cost="mse")
    params, x, y = make_problem(net, jax.random.key(0), batch=5)
    params = jax.tree.map(lambda p: p.astype(jnp.float32), params)
    x64 = x.astype(jnp.float64)
    dtypes = jax.tree.map(lambda p: p.dtype, params)
    result = backprop(net, params, x64, y)
    assert jax.tree.map(lambda g: g.dtype, result.grads) == dtypes
    assert jax.tree.map(lambda g: g.dtype, net.autodiff(params, x64, y)[1]) == dtypes
    assert result.input_grad.dtype == jnp.float64
    grads, x_grad = jax.grad(lambda p, x: apply_custom_vjp(net, p, x).sum(), (0, 1))(params, x64)
    assert jax.tree.map(lambda g: g.dtype, grads) == dtypes and x_grad.dtype == jnp.float64


@pytest.mark.parametrize("cost", ["softmax_cross_entropy", "sigmoid_binary_cross_entropy"])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_huge_logits_give_finite_identical_gradients(cost, dtype):
    net = funcbp.MLP((3, 4), cost=cost)
    params = [{"w": jnp.array([[1e4, -1e4, 0, 1e4]] * 3, dtype), "b": jnp.zeros(4, dtype)}]
    x = jnp.array([[1.0, 0, 0], [0, -1, 0], [0.5, 0, 0.5]], dtype)
    y = jnp.array([1, 0, 3]) if cost == "softmax_cross_entropy" else jnp.full((3, 4), 0.3, dtype)
    loss_bp, grads_bp = net.backprop(params, x, y)
    loss_ad, grads_ad = net.autodiff(params, x, y)
    assert jnp.isfinite(loss_bp)
    assert all(jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads_bp))
    assert float(loss_bp) == float(loss_ad)
    assert_trees_close(grads_bp, grads_ad, 4 * float(jnp.finfo(dtype).eps), "huge logits")
