"""jit, vmap, grad-of-backprop (Hessian-vector products), deltas, saliency and custom_vjp."""

from functools import partial

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import funcbp

from ._compare import assert_trees_close
from .test_engines import make_problem

RTOL64 = 1e-10  # see test_engines.py for how the error is measured and why this bound


@pytest.fixture
def problem():
    net = funcbp.MLP((4, 6, 5, 3), activation=("tanh", "gelu"), cost="softmax_cross_entropy")
    return net, *make_problem(net, jax.random.key(0), batch=8)


def test_jit_traces_once_for_new_values(problem):
    net, params, x, y = problem

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(params, x, y):
        return net.backprop(params, x, y)

    step(params, x, y)
    step(jax.tree.map(lambda p: p + 1.0, params), x + 1.0, (y + 1) % 3)


def test_spec_is_static_under_jit(problem):
    net, params, x, y = problem
    same = funcbp.MLP((4, 6, 5, 3), activation=["tanh", "gelu"], cost="softmax_cross_entropy")
    assert same == net and hash(same) == hash(net)
    run = jax.jit(lambda net, p, x, y: net.backprop(p, x, y), static_argnums=0)
    chex.assert_trees_all_close(run(net, params, x, y), run(same, params, x, y))


@pytest.mark.parametrize("l2", [0.0, 0.1])
def test_vmap_gives_per_example_gradients(problem, l2):
    net, params, x, y = problem
    net = funcbp.MLP(net.sizes, net.activation, cost=net.cost, l2=l2)

    @partial(jax.jit, static_argnums=0)
    def per_example(engine):
        return jax.vmap(lambda xi, yi: engine(params, xi[None, :], yi[None])[1])(x, y)

    grads_bp, grads_ad = per_example(net.backprop), per_example(net.autodiff)
    chex.assert_tree_shape_prefix(grads_bp, (x.shape[0],))
    assert_trees_close(grads_bp, grads_ad, RTOL64, "per-example")
    # The batch loss is the mean of the per-example losses, so is its gradient.
    batch_mean = jax.tree.map(lambda g: g.mean(axis=0), grads_bp)
    assert_trees_close(batch_mean, net.backprop(params, x, y)[1], RTOL64, "mean of per-example")


@pytest.mark.parametrize(
    ("activation", "output", "cost"),
    [
        ("tanh", "identity", "softmax_cross_entropy"),
        ("sigmoid", "sigmoid", "mse"),
        ("gelu_tanh", "identity", "sigmoid_binary_cross_entropy"),
        ("softplus", "tanh", "mse"),
    ],
)
def test_forward_mode_through_backprop_gives_exact_hvps(activation, output, cost):
    net = funcbp.MLP((3, 5, 4, 2), activation, output_activation=output, cost=cost, l2=0.05)
    params, x, y = make_problem(net, jax.random.key(1), batch=6)
    flat, unravel = ravel_pytree(params)
    hessian = jax.jit(jax.hessian(lambda theta: net.loss(unravel(theta), x, y)))(flat)
    hvp = jax.jit(lambda v: jax.jvp(lambda p: net.backprop(p, x, y)[1], (params,), (v,))[1])
    for i in range(3):
        v = jax.random.normal(jax.random.key(10 + i), flat.shape, flat.dtype)
        # The Hessian's entries are each a single chain-rule sum; 1e-9 allows for
        # the different summation order of forward-over-reverse vs reverse-over-reverse.
        assert_trees_close(ravel_pytree(hvp(unravel(v)))[0], hessian @ v, 1e-9, "HVP")


def test_reverse_mode_through_backprop_matches_autodiff(problem):
    net, params, x, y = problem

    def grad_norm(engine, p):
        return sum(jnp.sum(g**2) for g in jax.tree.leaves(engine(p, x, y)[1]))

    got = jax.jit(jax.grad(lambda p: grad_norm(net.backprop, p)))(params)
    want = jax.jit(jax.grad(lambda p: grad_norm(net.autodiff, p)))(params)
    assert_trees_close(got, want, 1e-9, "grad of squared gradient norm")


def _loss_with_offsets(net, params, x, y, offsets):
    """The loss with ``offsets[l]`` added to ``z_l``: its gradient at 0 is every delta."""
    a = x
    for layer, act, e in zip(params, net.layer_activations, offsets, strict=True):
        a = act.fn(a @ layer["w"] + layer["b"][None, :] + e)
    return funcbp.losses.get(net.cost).loss(a, y)


@pytest.mark.parametrize("output", ["identity", "sigmoid"])
def test_deltas_and_input_gradient_match_autodiff(output):
    net = funcbp.MLP((4, 7, 5, 3), ("relu", "silu"), output_activation=output, cost="mse")
    params, x, y = make_problem(net, jax.random.key(2), batch=5)
    result = net.backprop_full(params, x, y)
    zeros = [jnp.zeros((x.shape[0], n), x.dtype) for n in net.sizes[1:]]
    deltas = jax.grad(lambda e: _loss_with_offsets(net, params, x, y, e))(zeros)
    assert_trees_close(list(result.deltas), deltas, RTOL64, "deltas")
    input_grad = jax.grad(net.loss, argnums=1)(params, x, y)
    assert_trees_close(result.input_grad, input_grad, RTOL64, "input gradient")
    chex.assert_shape(result.input_grad, x.shape)


@pytest.mark.parametrize("output", ["identity", "tanh", "relu"])
def test_custom_vjp_apply_differentiates_by_the_hand_rule(problem, output, monkeypatch):
    net, params, x, _ = problem
    net = funcbp.MLP(net.sizes, net.activation, output_activation=output)
    target = jnp.linspace(-1.0, 1.0, 3)

    def outer(apply, params, x):
        # A larger function containing the MLP: a nonlinear head on its output.
        return jnp.sum(jnp.sin(apply(params, 2.0 * x)) * target[None, :]) + jnp.sum(x**3)

    calls = []
    hand_backward = funcbp.backprop.backward
    monkeypatch.setattr(
        funcbp.backprop, "backward", lambda *args: calls.append(1) or hand_backward(*args)
    )
    got = jax.grad(lambda p, x: outer(net.apply_custom_vjp, p, x), argnums=(0, 1))(params, x)
    assert calls, "jax.grad did not go through the hand-derived backward pass"
    want = jax.grad(lambda p, x: outer(net.apply, p, x), argnums=(0, 1))(params, x)
    assert_trees_close(got, want, RTOL64, "custom_vjp")


def test_custom_vjp_apply_under_jit_and_vmap(problem):
    net, params, x, _ = problem
    f = jax.jit(jax.vmap(jax.grad(lambda xi: jnp.sum(net.apply_custom_vjp(params, xi[None])))))
    g = jax.vmap(jax.grad(lambda xi: jnp.sum(net.apply(params, xi[None]))))
    np.testing.assert_allclose(f(x), g(x), rtol=1e-12)
