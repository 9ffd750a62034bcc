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
3/2 where ``rho < 1/4`` (Martens' rule). A step that does not lower the loss is not
taken (and the warm start is dropped); past ``max_damping`` the solver stops
(``"damping"``). Martens' CG backtracking and preconditioning are not done.
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
        model = g @ step + 0.5 * step @ curvature(step)  # q(d), undamped
        new_loss = objective.value(unravel(theta + step))
        better = jnp.isfinite(new_loss) & (new_loss < loss)
        rho = jnp.where(better, (new_loss - loss) / jnp.where(model < 0, model, -1.0), 0.0)
        rho = jnp.where(better & (model >= 0), 1.0, rho)  # a gain the model did not predict
        lam = jnp.where(rho > 0.75, lam * (2 / 3), jnp.where(rho < 0.25, lam * 1.5, lam))
        info = {
            "function_evaluations": jnp.int32(2),
            "gradient_evaluations": jnp.int32(1),
            "damping": lam,
            "cg_iterations": found.iterations,
            "reduction_ratio": rho,
        }
        failed = ~better & (lam > options["max_damping"])
        state = NewtonCGState(lam.astype(inner.damping.dtype), jnp.where(better, step, 0.0))
        params = unravel(jnp.where(better, theta + step, theta))
        return params, state, Step(loss, jnp.where(better, new_loss, loss),
                                   jnp.max(jnp.abs(g)), better, failed, info)  # fmt: skip

    def check(net: MLP) -> None:
        if not exact:
            check_cost(net, "newton_cg with curvature='gauss_newton'")

    return solver("newton_cg", options, init, iterate, failure=5, check=check)
