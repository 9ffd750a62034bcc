"""Newton-CG (Hessian-free optimisation) in the manner of Martens (2010).

Each iteration minimises the damped quadratic model of the loss around ``theta``::

    q(d) = g^T d + 1/2 d^T B d          solved as (B + lambda I) d = -g

by truncated conjugate gradient (``funcbp.optim._cg``) on matrix-free products: ``B``
is the exact Hessian (``curvature="hessian"``: forward mode through the hand-derived
gradient) or the Gauss-Newton matrix (``"gauss_newton"``, the default, positive
semi-definite for the costs of ``funcbp.curvature.GAUSS_NEWTON_COSTS``). CG starts
from the previous iteration's step times ``warm_start`` (0.95), runs at most
``cg_iterations`` products, stops at a relative residual of ``min(0.5, sqrt(|g|))``
(the forcing sequence of Nocedal and Wright, 7.1) and at a direction of negative
curvature (then ``d = -g / lambda`` if it had not moved). The damping adapts by the
reduction ratio ``rho = (L(theta + d) - L(theta)) / q(d)``: times 2/3 where ``rho > 3/4``,
3/2 where ``rho < 1/4`` (Martens' rule). The step taken is ``alpha d``, ``alpha`` the
first of ``1, 0.8, 0.8^2, ...`` (at most 20 shrinks) with Armijo's sufficient decrease
``L(theta + alpha d) <= L(theta) + 0.01 alpha g^T d`` (Martens' line search); with none,
no step is taken (and the warm start is dropped), and past ``max_damping`` the solver
stops (``"damping"``). Martens' CG backtracking and preconditioning are not done.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from funcbp.mlp import MLP
from funcbp.optim._cg import conjugate_gradient
from funcbp.optim._full_batch import Objective, Params, Solver, Step, solver
from funcbp.optim._levenberg_marquardt import check_cost

DEFAULTS = {
    "curvature": "gauss_newton",
    "damping": 1e-3,
    "max_damping": 1e10,
    "cg_iterations": 50,
    "warm_start": 0.95,
}
_BACKTRACKS = 20  # Martens' line search: at most 20 shrinks by 0.8 (to 0.8^20 ~ 0.012)


class NewtonCGState(NamedTuple):
    """The method's own state (``SolverState.inner``)."""

    damping: jax.Array  # shape=(), the parameters' dtype: lambda
    previous: jax.Array  # [P]: the last step taken (0 after a rejected one), CG's warm start


def newton_cg(options: dict) -> Solver:
    """Newton-CG (``options``: those of ``DEFAULTS`` and the common ones, checked)."""
    exact = options["curvature"] == "hessian"

    def init(params: Params) -> NewtonCGState:
        theta = ravel_pytree(params)[0]
        return NewtonCGState(jnp.asarray(options["damping"], theta.dtype), jnp.zeros_like(theta))

    def iterate(objective: Objective, params: Params, inner: NewtonCGState):
        loss, grads = objective.value_and_grad(params)
        theta, unravel = ravel_pytree(params)
        g = ravel_pytree(grads)[0]
        product = objective.hessian_product if exact else objective.gauss_newton_product
        lam = inner.damping

        def curvature(v):
            return ravel_pytree(product(params, unravel(v)))[0]

        rtol = jnp.minimum(0.5, jnp.sqrt(jnp.linalg.norm(g)))
        found = conjugate_gradient(lambda v: curvature(v) + lam * v, -g,
                                   options["warm_start"] * inner.previous,
                                   options["cg_iterations"], rtol)  # fmt: skip
        stuck = found.negative_curvature & jnp.all(found.x == 0)
        step = jnp.where(stuck, -g / lam, found.x)
        step = jnp.where(g @ step < 0, step, -g / lam)  # CG from a warm start: not always descent
        slope = g @ step
        model = slope + 0.5 * step @ curvature(step)  # q(d), undamped

        def value_at(alpha):
            return objective.value(unravel(theta + alpha * step))

        def sufficient(alpha, value):  # Armijo's condition, Martens' c = 1e-2
            return jnp.isfinite(value) & (value <= loss + 1e-2 * alpha * slope)

        full = value_at(1.0)
        rho = jnp.where(jnp.isfinite(full) & (model < 0), (full - loss) / model, 0.0)
        lam = jnp.where(rho > 0.75, lam * (2 / 3), jnp.where(rho < 0.25, lam * 1.5, lam))
        # Backtracking along d (Martens' 4.6): alpha = 0.8^k until Armijo holds, k <= 20.
        alpha, new_loss, backtracks = jax.lax.while_loop(
            lambda c: ~sufficient(c[0], c[1]) & (c[2] < _BACKTRACKS),
            lambda c: (c[0] * 0.8, value_at(c[0] * 0.8), c[2] + 1),
            (jnp.ones((), theta.dtype), full, jnp.int32(0)),
        )
        better = sufficient(alpha, new_loss)
        info = {
            "function_evaluations": 2 + backtracks,
            "gradient_evaluations": jnp.int32(1),
            "damping": lam,
            "cg_iterations": found.iterations,
            "reduction_ratio": rho,
            "step_size": jnp.where(better, alpha, 0.0),
        }
        failed = ~better & (lam > options["max_damping"])
        state = NewtonCGState(lam.astype(inner.damping.dtype), jnp.where(better, step, 0.0))
        params = unravel(jnp.where(better, theta + alpha * step, theta))
        return params, state, Step(loss, jnp.where(better, new_loss, loss),
                                   jnp.max(jnp.abs(g)), better, failed, info)  # fmt: skip

    def check(net: MLP) -> None:
        if not exact:
            check_cost(net, "newton_cg with curvature='gauss_newton'")

    return solver("newton_cg", options, init, iterate, failure=5, check=check)
