"""L-BFGS on ``optax.lbfgs`` with its zoom line search, and a step it rejects never taken.

Each iteration is optax's: the two-loop recursion over the last ``memory_size``
parameter and gradient differences gives a direction, and the zoom line search (at
most ``max_linesearch_steps`` evaluations of the loss and its gradient, each one of
``Objective.value``'s hand-derived gradients) picks the step along it; the value and
gradient it ends on start the next iteration (``optax.value_and_grad_from_state``).

optax's line search may end on a point whose loss is higher than where it started, or
not finite, when it runs out of steps (optax issue 1201: the loss rising during
L-BFGS training). Such a step is rejected: the parameters stay, the memory is cleared
and the next iteration starts afresh along the steepest descent. A rejection right
after such a restart stops the solver (``"line_search"``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from funcbp.optim._full_batch import Objective, Params, Solver, Step, solver

DEFAULTS = {"memory_size": 10, "max_linesearch_steps": 20}


class LBFGSState(NamedTuple):
    """The method's own state (``SolverState.inner``)."""

    optax_state: optax.OptState  # optax.lbfgs's
    restarted: jax.Array  # shape=(), bool: the last step was rejected and the memory cleared


def lbfgs(options: dict) -> Solver:
    """L-BFGS (``options``: those of ``DEFAULTS`` and the common ones, checked)."""
    transform = optax.lbfgs(
        memory_size=options["memory_size"],
        linesearch=optax.scale_by_zoom_linesearch(
            max_linesearch_steps=options["max_linesearch_steps"], initial_guess_strategy="one"
        ),
    )

    def init(params: Params) -> LBFGSState:
        return LBFGSState(transform.init(params), jnp.zeros((), bool))

    def iterate(objective: Objective, params: Params, inner: LBFGSState):
        state = inner.optax_state
        stored = optax.tree.get(state, "value")
        fresh = ~jnp.isfinite(stored)  # first iteration, or just restarted: evaluates anew
        loss, grad = optax.value_and_grad_from_state(objective.value)(params, state=state)
        updates, state = transform.update(grad, state, params, value=loss, grad=grad,
                                          value_fn=objective.value)  # fmt: skip
        new_loss, new_grad = optax.tree.get(state, "value"), optax.tree.get(state, "grad")
        accepted = jnp.isfinite(new_loss) & (new_loss <= loss)
        evaluations = (optax.tree.get(state, "num_linesearch_steps") + fresh).astype(jnp.int32)
        info = {
            "function_evaluations": evaluations,
            "gradient_evaluations": evaluations,
            "step_size": jnp.where(accepted, optax.tree.get(state, "learning_rate"), 0.0),
        }
        grad_max = jnp.where(accepted, _max_abs(new_grad), _max_abs(grad))
        new_params = optax.apply_updates(params, updates)
        params = jax.tree.map(lambda new, old: jnp.where(accepted, new, old), new_params, params)
        state = jax.tree.map(lambda kept, restart: jnp.where(accepted, kept, restart),
                             state, transform.init(params))  # fmt: skip
        step = Step(loss, jnp.where(accepted, new_loss, loss), grad_max, accepted,
                    ~accepted & inner.restarted, info)  # fmt: skip
        return params, LBFGSState(state, ~accepted), step

    return solver("lbfgs", options, init, iterate, failure=4)


def _max_abs(tree: Params) -> jax.Array:
    return jnp.max(jnp.stack([jnp.max(jnp.abs(leaf)) for leaf in jax.tree.leaves(tree)]))
