"""Second derivatives of the full-batch loss, from the hand-derived backward pass.

For parameters ``theta`` (``P`` numbers, flattened as ``jax.flatten_util.ravel_pytree``
orders them), the loss ``L(theta) = cost(t(theta), y) + l2/2 ||W||^2`` of a network
whose last quantity before the cost is ``t`` (the output ``out``, or ``z_L`` for a
cost with a fused output activation, in which the cost is convex)::

    Hessian-vector product     H v  = d/dh grad L(theta + h v) at h = 0
    Gauss-Newton matrix        G    = sum_i J_i^T H_i J_i + l2 D
    Gauss-Newton product       G v  = J^T (H_t (J v)) + l2 D v

``J_i = dt_i/dtheta`` ``[n_out, P]`` is row ``i``'s Jacobian, ``H_i`` the Hessian of
the cost in ``t_i`` (``H_t`` all of them, block diagonal), ``D`` the diagonal that is
1 on weights and 0 on biases. Forward mode through the hand-derived gradient gives
``H v`` exactly; ``J v`` is forward mode through the forward pass, ``J^T u`` the
backward pass from ``delta_L = u``, and the rows of ``J`` the backward pass from each
unit vector of each row (per-example deltas, vmapped). ``G`` is positive
semi-definite wherever the cost is convex in ``t`` (``mse``, the two logit losses).
No dropout: these are of the deterministic loss.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from funcbp import losses as _losses
from funcbp.backprop import Network, backprop, backward, forward, output_delta

Array = jax.Array
Params = list[dict[str, Array]]

# Costs convex in the output (or logits), whose Gauss-Newton matrix is positive semi-definite.
GAUSS_NEWTON_COSTS = ("mse", "softmax_cross_entropy", "sigmoid_binary_cross_entropy")


def _fused(net: Network) -> bool:
    """Whether ``t`` is ``z_L`` (the cost's fused output activation) rather than ``out``."""
    return net.resolved_cost.fused_activation is not None


def _cost_gradient(net: Network, y: Array, weight: Array | None):
    """``t -> dL/dt`` ``[batch, n_out]`` (the cost's part; ``t`` as the module says)."""
    cost, act = net.resolved_cost, net.layer_activations[-1]
    if _fused(net):
        return lambda z: _losses.weighted_delta(cost, act.fn(z), y, weight)
    return lambda out: _losses.weighted_delta(cost, out, y, weight)


def hessian_product(
    net: Network, params: Params, x: Array, y: Array, v: Params, sample_weight: Array | None = None
) -> Params:
    """``H v``, the exact Hessian of the loss times ``v`` (a pytree like ``params``):
    ``jax.jvp`` through the hand-derived gradient."""

    def gradient(p: Params) -> Params:
        return backprop(net, p, x, y, sample_weight=sample_weight).grads

    return jax.jvp(gradient, (params,), (v,))[1]


def _penalty_product(net: Network, v: Params) -> Params:
    """``l2 D v``: the weight penalty's Hessian times ``v`` (biases are not penalised)."""
    return [{"w": net.l2 * layer["w"], "b": jnp.zeros_like(layer["b"])} for layer in v]


def _add(a: Params, b: Params) -> Params:
    return jax.tree.map(jnp.add, a, b)


def gauss_newton_product(
    net: Network, params: Params, x: Array, y: Array, v: Params, sample_weight: Array | None = None
) -> Params:
    """``G v = J^T H_t J v + l2 D v`` (a pytree like ``params``), matrix-free: one
    forward-mode pass for ``J v``, the cost's Hessian in ``t``, one backward pass."""
    fused = _fused(net)

    def t_of(p: Params) -> Array:
        cache = forward(net, p, x)
        return cache.pre[-1] if fused else cache.out

    t, jv = jax.jvp(t_of, (params,), (v,))
    h_jv = jax.jvp(_cost_gradient(net, y, sample_weight), (t,), (jv,))[1]
    cache = forward(net, params, x)
    delta = h_jv if fused else output_delta(net, cache.pre[-1], cache.out, h_jv)
    grads, _, _ = backward(net, params, cache, delta)
    return _add(grads, _penalty_product(net, v)) if net.l2 else grads


def jacobian(net: Network, params: Params, x: Array) -> Params:
    """``dt_ik/dtheta`` per row ``i`` and output ``k``: each leaf ``[batch, n_out,
    *leaf.shape]``, by the hand-derived backward pass from every unit vector of every
    row (``t`` as the module says: ``out``, or ``z_L`` for a fused cost)."""
    cache = forward(net, params, x)
    fused = _fused(net)
    units = jnp.eye(net.sizes[-1], dtype=cache.out.dtype)[:, None, :]  # [n_out, 1, n_out]

    def of_row(row):  # row: the cache of one sample, batch 1
        def of_unit(unit: Array) -> Params:
            delta = unit if fused else output_delta(net, row.pre[-1], row.out, unit)
            return backward(net, params, row, delta)[0]

        return jax.vmap(of_unit)(units)

    return jax.vmap(of_row)(jax.tree.map(lambda a: a[:, None], cache))


def flat_jacobian(net: Network, params: Params, x: Array) -> Array:
    """``jacobian`` as one matrix ``[batch, n_out, P]`` (``ravel_pytree``'s order)."""
    rows = jacobian(net, params, x)
    return jax.vmap(jax.vmap(lambda tree: ravel_pytree(tree)[0]))(rows)


def gauss_newton_matrix(
    net: Network, params: Params, x: Array, y: Array, sample_weight: Array | None = None
) -> Array:
    """``G`` ``[P, P]`` (``ravel_pytree``'s order), from the per-example Jacobian.

    Costs ``batch * n_out * P^2`` multiply-adds and ``batch * n_out * P`` numbers of
    memory; ``gauss_newton_product`` costs about three passes per product instead.
    """
    cache = forward(net, params, x)
    fused = _fused(net)
    t = cache.pre[-1] if fused else cache.out
    j = flat_jacobian(net, params, x)  # [batch, n_out, P]
    n_out = t.shape[-1]
    grad_t = _cost_gradient(net, y, sample_weight)
    # H_t is block diagonal over the rows: one tangent per output unit gives every block.
    units = jnp.eye(n_out, dtype=t.dtype)
    columns = jax.vmap(lambda u: jax.jvp(grad_t, (t,), (jnp.broadcast_to(u, t.shape),))[1])(units)
    blocks = jnp.transpose(columns, (1, 2, 0))  # [batch, n_out (row of H_i), n_out (column)]
    g = jnp.einsum("ikp,ikl,ilq->pq", j, blocks, j)
    if net.l2:
        penalty = ravel_pytree(_penalty_product(net, jax.tree.map(jnp.ones_like, params)))[0]
        g = g + jnp.diag(penalty)
    return g
