"""What the full-batch solvers share: the objective they minimise, their type, their state
and when they stop.

A ``Solver`` is not an optax ``GradientTransformation``: its ``update`` takes the whole
``Objective`` (the loss of one network on all the training rows, with its gradient and
curvature products) and moves the parameters itself, as a line search or a damped
Newton step needs to evaluate the loss at trial points. ``funcbp.fit`` builds the
objective inside its compiled block and calls ``update`` once per iteration (an epoch).

Every solver stops, with a reason (``STOP_REASONS``), when the largest element of the
gradient falls to ``tol``, when an accepted step changes the loss by at most
``loss_tol`` relative to ``max(|loss|, |new loss|, 1)`` (scipy's L-BFGS-B ``ftol``),
when ``max_evaluations`` function evaluations are spent, or when it fails: a step it
cannot take is never taken, so the parameters are the best found.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from funcbp import curvature
from funcbp.mlp import MLP

Array = jax.Array
Params = list[dict[str, Array]]

COMMON_SOLVER_OPTIONS = {"tol": 1e-5, "loss_tol": 2.220446049250313e-09, "max_evaluations": None}

# Stop codes (SolverState.stop) -> (name, what happened, whether it is a failure).
STOP_REASONS: dict[int, tuple[str, str, bool]] = {
    1: ("gradient", "the gradient's largest element fell to tol", False),
    2: ("loss_change", "an accepted step changed the loss by at most loss_tol (relative)", False),
    3: ("evaluations", "max_evaluations function evaluations were spent", False),
    4: ("line_search", "no step lowered the loss, along the L-BFGS direction nor along "
        "steepest descent after a restart (the line search failed or met a non-finite "
        "loss)", True),
    5: ("damping", "the damping passed max_damping without a step that lowers the loss "
        "(a minimum, or a singular or non-finite system)", True),
}  # fmt: skip


class Objective(NamedTuple):
    """The full-batch loss of a network on its training rows, with its derivatives.

    Every function takes parameters ``[{"w", "b"}, ...]``; ``v`` is a pytree like them.
    """

    net: MLP
    rows: int  # the batch size n
    value: Callable[[Params], Array]  # the loss; jax.grad of it runs the engine's gradient
    value_and_grad: Callable[[Params], tuple[Array, Params]]
    hessian_product: Callable[[Params, Params], Params]  # (params, v) -> H v, exact
    gauss_newton_product: Callable[[Params, Params], Params]  # (params, v) -> G v
    gauss_newton_matrix: Callable[[Params], Array]  # params -> G [P, P]


def objective(
    net: MLP, x: Array, y: Array, sample_weight: Array | None = None, engine: str = "backprop"
) -> Objective:
    """The ``Objective`` of ``net`` on ``x`` ``[n, n_in]``, ``y`` (and weights ``[n]``).

    ``engine="backprop"``: the gradient is the hand-derived pass (also under ``jax.grad``
    of ``value``, through a custom VJP) and ``H v`` forward mode through it;
    ``"autodiff"``: both by ``jax``. The Gauss-Newton products are the hand-derived ones
    (``funcbp.curvature``) for either.
    """
    extras = {"sample_weight": sample_weight}
    if engine == "backprop":

        def value(params):
            return _hand_derived_loss(net, params, x, y, sample_weight)

        def value_and_grad(params):
            return net.backprop(params, x, y, **extras)

        def hessian_product(params, v):
            return curvature.hessian_product(net, params, x, y, v, sample_weight)
    else:

        def value(params):
            return net.loss(params, x, y, **extras)

        value_and_grad = jax.value_and_grad(value)

        def hessian_product(params, v):
            return jax.jvp(jax.grad(value), (params,), (v,))[1]

    return Objective(
        net,
        x.shape[0],
        value,
        value_and_grad,
        hessian_product,
        lambda params, v: curvature.gauss_newton_product(net, params, x, y, v, sample_weight),
        lambda params: curvature.gauss_newton_matrix(net, params, x, y, sample_weight),
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _hand_derived_loss(net: MLP, params: Params, x: Array, y: Array, w: Array | None) -> Array:
    """``net.loss``, whose VJP is the hand-derived gradient (none for the data)."""
    return net.loss(params, x, y, sample_weight=w)


def _loss_fwd(net: MLP, params: Params, x: Array, y: Array, w: Array | None):
    loss, grads = net.backprop(params, x, y, sample_weight=w)
    return loss, grads


def _loss_bwd(net: MLP, grads: Params, cotangent: Array):
    return jax.tree.map(lambda g: cotangent * g, grads), None, None, None


_hand_derived_loss.defvjp(_loss_fwd, _loss_bwd)


class SolverState(NamedTuple):
    """A solver's state: its own (``inner``) and what every solver counts."""

    inner: Any  # the method's own pytree
    iteration: Array  # shape=(), int32: iterations taken
    evaluations: Array  # shape=(), int32: function evaluations so far
    stop: Array  # shape=(), int32: 0 while running, else a key of STOP_REASONS


class Step(NamedTuple):
    """One iteration of a method, as it reports it to the shared bookkeeping."""

    loss: Array  # the loss at the parameters it started from
    new_loss: Array  # the loss at the parameters it returns
    grad_max: Array  # the gradient's largest |element| at the newest point it evaluated
    accepted: Array  # bool: it took a step
    failed: Array  # bool: it took no step and cannot take one
    info: dict[str, Array]  # per-iteration counts, "function_evaluations" among them


class Solver(NamedTuple):
    """A full-batch second-order method (``funcbp.optim.make`` builds one).

    ``init(params) -> SolverState``; ``update(objective, params, state) -> (params,
    state, info)`` is one iteration, ``info`` its scalars (``"loss"``, the loss it started
    from, ``"function_evaluations"``, ``"gradient_evaluations"`` and the method's own);
    ``check(net)`` refuses a network the method cannot train; ``options`` are the
    resolved options, ``(key, value)`` pairs.
    """

    name: str
    init: Callable[[Params], SolverState]
    update: Callable[[Objective, Params, SolverState], tuple[Params, SolverState, dict]]
    check: Callable[[MLP], None]
    options: tuple[tuple[str, Any], ...]


def is_solver(optimizer: Any) -> bool:
    """Whether ``optimizer`` is a full-batch ``Solver`` (else an optax transformation)."""
    return isinstance(optimizer, Solver)


def _any_network(net: MLP) -> None:
    del net


def solver(
    name: str,
    options: dict[str, Any],
    init: Callable[[Params], Any],
    iterate: Callable[[Objective, Params, Any], tuple[Params, Any, Step]],
    failure: int,
    check: Callable[[MLP], None] = _any_network,
) -> Solver:
    """A ``Solver`` from a method's ``init(params) -> inner`` and ``iterate(objective,
    params, inner) -> (params, inner, Step)``, with the stopping rules of the module
    (``options``: ``tol``, ``loss_tol``, ``max_evaluations`` and the method's own);
    ``failure``: the stop code (of ``STOP_REASONS``) of a failed step."""
    tol, loss_tol = options["tol"], options["loss_tol"]
    max_evaluations = options["max_evaluations"] or 2**31 - 1

    def init_state(params: Params) -> SolverState:
        zero = jnp.zeros((), jnp.int32)
        return SolverState(init(params), zero, zero, zero)

    def update(objective: Objective, params: Params, state: SolverState):
        new_params, inner, step = iterate(objective, params, state.inner)
        evaluations = state.evaluations + step.info["function_evaluations"]
        scale = jnp.maximum(jnp.maximum(jnp.abs(step.loss), jnp.abs(step.new_loss)), 1.0)
        small_change = (step.loss - step.new_loss) <= loss_tol * scale
        stop = jnp.select(
            [step.failed, step.grad_max <= tol, step.accepted & small_change,
             evaluations >= max_evaluations],
            [failure, 1, 2, 3],
            0,
        ).astype(jnp.int32)  # fmt: skip
        state = SolverState(inner, state.iteration + 1, evaluations, stop)
        return new_params, state, {"loss": step.loss, **step.info}

    return Solver(name, init_state, update, check, tuple(options.items()))


def stop_reason(state: SolverState) -> tuple[str, str, bool] | None:
    """``(name, what happened, failure)`` of a stopped solver's state; ``None`` running."""
    return STOP_REASONS.get(int(state.stop))


def stop_warning(name: str, state: SolverState) -> str | None:
    """The warning of solver ``name`` stopped for want of a step that lowers the loss (a
    failure of ``STOP_REASONS``), naming its last iteration; ``None`` otherwise."""
    stop = stop_reason(state)
    if stop is None or not stop[2]:
        return None
    return (
        f"optimizer {name!r} stopped at iteration {int(state.iteration)} ({stop[0]}): "
        f"{stop[1]}; the parameters are the best it found"
    )
