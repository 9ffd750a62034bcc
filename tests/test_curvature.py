"""``funcbp.curvature`` against ``jax``: the per-example Jacobian against ``jax.jacrev``,
the Gauss-Newton matrix and product against ``J^T (hessian of the cost) J`` built from
``jax.jacrev`` and ``jax.hessian``, and the Hessian product against ``jax.hessian``.

All in float64. Tolerances: the Jacobian is the same sums of products in another order,
so it agrees to 1e-12; the Gauss-Newton and Hessian products add one more contraction
over at most a few hundred terms of size ~1, so rounding stays far below 1e-10.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import funcbp
from funcbp import curvature, losses

CASES = [  # (cost, hidden activation, output activation, n_out)
    ("mse", "tanh", "identity", 2),
    ("mse", "relu", "sigmoid", 3),  # out, not z_L, is linearised: the f'' term drops
    ("softmax_cross_entropy", "sigmoid", "identity", 3),
    ("sigmoid_binary_cross_entropy", "gelu", "identity", 2),
]


def _problem(cost, hidden, output, n_out, getkey, l2=0.1, sizes=(3, 5, 4)):
    net = funcbp.MLP(sizes=(*sizes, n_out), activation=hidden, output_activation=output,
                     cost=cost, l2=l2)  # fmt: skip
    params = net.init(getkey(), jnp.float64)
    x = jax.random.normal(getkey(), (7, sizes[0]), jnp.float64)
    if cost == "softmax_cross_entropy":
        y = jax.random.randint(getkey(), (7,), 0, n_out)
    elif cost == "sigmoid_binary_cross_entropy":
        y = jax.random.bernoulli(getkey(), 0.5, (7, n_out)).astype(jnp.float64)
    else:
        y = jax.random.normal(getkey(), (7, n_out), jnp.float64)
    weights = jax.random.uniform(getkey(), (7,), jnp.float64, 0.2, 2.0)
    return net, params, x, y, weights


def _jit(fn):
    """``fn`` compiled with the network static (op by op, jax.hessian takes seconds)."""
    return jax.jit(fn, static_argnums=0)


@_jit
def _reference_gauss_newton(net, params, x, y, w):
    theta, unravel = ravel_pytree(params)
    out = net.apply(params, x)
    jac = jax.jacrev(lambda t: net.apply(unravel(t), x))(theta).reshape(out.size, -1)
    h_out = jax.hessian(lambda o: losses.weighted_loss(net.resolved_cost, o, y, w))(out)
    on_weights = [{"w": jnp.ones_like(p["w"]), "b": jnp.zeros_like(p["b"])} for p in params]
    penalty = net.l2 * jnp.diag(ravel_pytree(on_weights)[0])
    return jac.T @ h_out.reshape(out.size, out.size) @ jac + penalty


@pytest.mark.parametrize(("cost", "hidden", "output", "n_out"), CASES)
def test_the_jacobian_is_jacrevs(cost, hidden, output, n_out, getkey):
    net, params, x, _, _ = _problem(cost, hidden, output, n_out, getkey)
    theta, unravel = ravel_pytree(params)
    expected = jax.jit(jax.jacrev(lambda t: net.apply(unravel(t), x)))(theta)  # [n, n_out, P]
    got = _jit(curvature.flat_jacobian)(net, params, x)
    chex.assert_shape(got, (7, n_out, theta.size))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    # The pytree form: one leaf per parameter.
    leaves = jax.eval_shape(lambda p: curvature.jacobian(net, p, x), params)
    chex.assert_shape(leaves[0]["w"], (7, n_out, *params[0]["w"].shape))


@pytest.mark.parametrize(("cost", "hidden", "output", "n_out"), CASES)
def test_the_gauss_newton_matrix_and_product_are_jaxs(cost, hidden, output, n_out, getkey):
    net, params, x, y, w = _problem(cost, hidden, output, n_out, getkey)
    expected = _reference_gauss_newton(net, params, x, y, w)
    got = _jit(curvature.gauss_newton_matrix)(net, params, x, y, w)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10)
    theta, unravel = ravel_pytree(params)
    v = jax.random.normal(getkey(), theta.shape, jnp.float64)
    product = ravel_pytree(_jit(curvature.gauss_newton_product)(net, params, x, y, unravel(v), w))[
        0
    ]
    np.testing.assert_allclose(product, expected @ v, rtol=0, atol=1e-10)
    assert np.linalg.eigvalsh(np.asarray(got)).min() > -1e-12  # convex costs: PSD


@pytest.mark.parametrize(("cost", "hidden", "output", "n_out"), CASES)
def test_the_hessian_product_is_jax_hessians(cost, hidden, output, n_out, getkey):
    net, params, x, y, w = _problem(cost, hidden, output, n_out, getkey)
    theta, unravel = ravel_pytree(params)
    hessian = jax.jit(jax.hessian(lambda t: net.loss(unravel(t), x, y, sample_weight=w)))(theta)
    v = jax.random.normal(getkey(), theta.shape, jnp.float64)
    got = ravel_pytree(_jit(curvature.hessian_product)(net, params, x, y, unravel(v), w))[0]
    np.testing.assert_allclose(got, hessian @ v, rtol=0, atol=1e-10)


def test_without_a_hidden_layer_the_gauss_newton_matrix_of_mse_is_the_hessian(getkey):
    """Least squares: the network is linear in its parameters, so G = H exactly."""
    net, params, x, y, w = _problem("mse", "tanh", "identity", 2, getkey, sizes=(4,))
    theta, unravel = ravel_pytree(params)
    hessian = jax.jit(jax.hessian(lambda t: net.loss(unravel(t), x, y, sample_weight=w)))(theta)
    got = _jit(curvature.gauss_newton_matrix)(net, params, x, y, w)
    np.testing.assert_allclose(got, hessian, rtol=0, atol=1e-12)
