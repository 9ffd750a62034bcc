"""Levenberg-Marquardt with MATLAB ``trainlm``'s damping, on the Gauss-Newton matrix.

For ``mse`` the loss is ``sum e^2 / n`` over the ``n`` elements of the errors ``e = out - y``,
and each iteration solves trainlm's system::

    (J^T J + mu I) d = -J^T e          J = de/dtheta  [n, P], from the backward pass

for trial steps ``d``: the first that lowers the loss is taken and ``mu`` shrinks by
``damping_decrease`` (0.1); each that does not (or whose loss is not finite) grows
``mu`` by ``damping_increase`` (10) and solves again; past ``max_damping`` (1e10) the
solver stops with the parameters it had (``"damping"``). ``mu`` starts at ``damping``
(1e-3). The cross-entropies train through their Gauss-Newton form, the same system
with ``J^T J`` and ``J^T e`` replaced by ``n/2`` times the loss's Gauss-Newton matrix
``G`` and gradient (``funcbp.curvature``; ``n``: the rows for ``softmax_cross_entropy``,
every element for ``sigmoid_binary_cross_entropy``), which for ``mse`` is exactly the
above. ``l2`` adds its Hessian to ``G``.

``solve="dense"`` forms ``G`` from the per-example Jacobian (``n_out P^2`` multiply-adds
per row) and eigendecomposes it once per iteration, so every trial ``mu`` costs one
product; ``"cg"`` solves each trial by conjugate gradient on Gauss-Newton products
(about three passes over the data each, at most ``cg_iterations``), never holding
more than a few vectors of ``P``. ``"auto"`` takes the dense solve when the Jacobian
fits in 256 MiB and forming and factoring ``G`` costs fewer multiply-adds than
``cg_iterations`` products: small networks (a 1-5-1 net on 41 points: dense), not
wide ones (64-32-10 on 1,797 digits: conjugate gradient).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from funcbp.curvature import GAUSS_NEWTON_COSTS
from funcbp.mlp import MLP
from funcbp.optim._cg import conjugate_gradient
from funcbp.optim._full_batch import Objective, Params, Solver, Step, solver

DEFAULTS = {
    "damping": 1e-3,
    "damping_decrease": 0.1,
    "damping_increase": 10.0,
    "max_damping": 1e10,
    "solve": "auto",
    "cg_iterations": 100,
}
DENSE_JACOBIAN_BYTES = 256 * 2**20
_SMALLEST_DAMPING = 1e-20  # mu shrinks no further, so that growing it always ends


class LMState(NamedTuple):
    """The method's own state (``SolverState.inner``)."""

    mu: jax.Array  # shape=(), the parameters' dtype: the damping of the next first trial


def check_cost(net: MLP, method: str) -> None:
    """Refuses (``ValueError``) a network whose cost has no positive semi-definite
    Gauss-Newton matrix."""
    cost = net.resolved_cost.name
    if cost not in GAUSS_NEWTON_COSTS:
        raise ValueError(
            f"cost: optimizer {method!r} needs a cost with a Gauss-Newton form "
            f"({', '.join(GAUSS_NEWTON_COSTS)}); the network's cost is {cost!r}"
        )


def uses_dense_solve(solve: str, net: MLP, rows: int, cg_iterations: int, itemsize: int) -> bool:
    """Whether ``solve`` (``"auto"``, ``"dense"`` or ``"cg"``) picks the dense system for
    ``net`` on ``rows`` rows (the module's rule for ``"auto"``)."""
    if solve != "auto":
        return solve == "dense"
    p, n_out = net.num_params, net.sizes[-1]
    dense = rows * n_out * p * p + 10 * p**3  # J^T H J, then its eigendecomposition
    matrix_free = cg_iterations * 6 * rows * p  # a Gauss-Newton product: ~3 passes
    return rows * n_out * p * itemsize <= DENSE_JACOBIAN_BYTES and dense <= matrix_free


def levenberg_marquardt(options: dict) -> Solver:
    """Levenberg-Marquardt (``options``: those of ``DEFAULTS`` and the common ones)."""
    decrease, increase = options["damping_decrease"], options["damping_increase"]
    max_mu = options["max_damping"]

    def init(params: Params) -> LMState:
        return LMState(jnp.asarray(options["damping"], params[0]["w"].dtype))

    def iterate(objective: Objective, params: Params, inner: LMState):
        net = objective.net
        loss, grads = objective.value_and_grad(params)
        theta, unravel = ravel_pytree(params)
        scale = _half_normaliser(net, objective.rows)  # trainlm's J^T J is scale * G
        rhs = -scale * ravel_pytree(grads)[0]
        dense = uses_dense_solve(options["solve"], net, objective.rows,
                                 options["cg_iterations"], theta.dtype.itemsize)  # fmt: skip
        if dense:
            eigenvalues, vectors = jnp.linalg.eigh(scale * objective.gauss_newton_matrix(params))
            eigenvalues, projected = jnp.maximum(eigenvalues, 0.0), vectors.T @ rhs

            def solve(mu):
                return vectors @ (projected / (eigenvalues + mu)), jnp.int32(0)
        else:

            def solve(mu):
                def matvec(v):
                    product = objective.gauss_newton_product(params, unravel(v))
                    return scale * ravel_pytree(product)[0] + mu * v

                rtol = jnp.minimum(0.1, jnp.sqrt(jnp.linalg.norm(rhs / scale)))  # superlinear
                found = conjugate_gradient(matvec, rhs, jnp.zeros_like(rhs),
                                           options["cg_iterations"], rtol)  # fmt: skip
                return found.x, found.iterations

        def more(carry):
            mu, done = carry[0], carry[1]
            return ~done & (mu <= max_mu)

        def trial(carry):
            mu, _, _, _, evaluations, products = carry
            step, used = solve(mu)
            candidate = theta + step
            value = objective.value(unravel(candidate))
            better = jnp.isfinite(value) & (value < loss)
            mu = jnp.where(better, jnp.maximum(mu * decrease, _SMALLEST_DAMPING), mu * increase)
            return mu, better, candidate, value, evaluations + 1, products + used

        start = (inner.mu, jnp.zeros((), bool), theta, loss, jnp.int32(0), jnp.int32(0))
        mu, done, found, new_loss, trials, products = jax.lax.while_loop(more, trial, start)
        params = unravel(jnp.where(done, found, theta))
        info = {
            "function_evaluations": trials + 1,
            "gradient_evaluations": jnp.int32(1),
            "damping": mu,
            "trials": trials,
            "cg_iterations": products,
        }
        grad_max = jnp.max(jnp.abs(rhs)) / scale
        step = Step(loss, jnp.where(done, new_loss, loss), grad_max, done, ~done, info)
        return params, LMState(mu.astype(inner.mu.dtype)), step

    return solver("levenberg_marquardt", options, init, iterate, failure=5,
                  check=lambda net: check_cost(net, "levenberg_marquardt"))  # fmt: skip


def _half_normaliser(net: MLP, rows: int) -> float:
    """``n / 2``: the loss's ``n`` averaged terms (the rows for softmax cross-entropy,
    every output element otherwise), halved, as ``mse``'s ``J^T J = n/2 G``."""
    if net.resolved_cost.name == "softmax_cross_entropy":
        return rows / 2
    return rows * net.sizes[-1] / 2
