"""Predictive coding: each layer's error is found by relaxing value nodes, not sent back
through ``W^T``.

Value nodes ``v_l`` on the hidden layers' pre-activations (``l = 0 .. L-2``) start at the
feedforward ``z_l``. With ``a_l = f_l(v_l)`` (``a_{-1} = x``) each layer predicts the next::

    mu_l = a_{l-1} @ W_l + b_l          e_l = mu_l - v_l      (the prediction error)

and ``T`` steps of gradient descent with step size ``gamma`` (all layers at once) lower
the energy ``F(v) = sum over hidden l of ||e_l||^2 / 2 + Loss(f_L(mu_{L-1}), y)``::

    v_l <- v_l - gamma * dF/dv_l        dF/dv_l = -e_l + (e_{l+1} @ W_{l+1}^T) * f_l'(v_l)

where ``e_{L-1} = delta_L``, the output's ``dLoss/dz`` at ``mu_{L-1}``. The weights then
follow ``-dF/dW`` at the relaxed nodes: backprop's form with ``e_l`` for ``delta_l``::

    dW_l = a_{l-1}^T @ e_l              db_l = sum over the batch of e_l

Whittington and Bogacz 2017, "An approximation of the error backpropagation algorithm
in a predictive coding network with local Hebbian synaptic plasticity"; Millidge,
Tschantz and Buckley 2020, "Predictive coding approximates backprop along arbitrary
computation graphs" (the loss as the energy's top term, and the fixed-prediction
assumption). With ``fixed_prediction``, ``mu_l``, ``f_l'`` and ``a_{l-1}`` keep their
feedforward values, so ``e_l <- (1 - gamma) e_l + gamma (e_{l+1} @ W_{l+1}^T) *
f_l'(z_l)``: with ``gamma = 1`` and ``T >= L - 1`` steps every ``e_l`` is backprop's
``delta_l`` exactly (the error climbs one layer per step). Plain relaxation moves the
nodes, and with them the predictions; its errors settle near backprop's (the nodes
move by about ``delta``, which is small) as ``T`` grows. A step costs ``T`` forward and
backward passes of the hidden layers.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from funcbp.backprop import (
    Network,
    Params,
    RuleState,
    forward,
    loss_delta,
    loss_of_output,
    with_weight_penalty,
)
from funcbp.rules._learning_rule import LearningRule, cached_rule

Array = jax.Array


def relaxed_errors(
    net: Network,
    params: Params,
    x: Array,
    y: Array,
    sample_weight: Array | None,
    steps: int,
    step_size: float,
    fixed_prediction: bool,
) -> tuple[tuple[Array, ...], tuple[Array, ...], Array]:
    """``(errors, inputs, out)``: ``e_l`` per layer (``delta_L`` last), each layer's input
    ``a_{l-1}`` after ``steps`` relaxation steps, and the feedforward output."""
    acts = net.layer_activations
    cache = forward(net, params, x)
    gamma = jnp.asarray(step_size, cache.out.dtype)
    hidden = range(len(params) - 1)

    def back(layer: int, above: Array, z: Array, a: Array) -> Array:
        return (above @ params[layer + 1]["w"].T) * acts[layer].grad(z, a)

    if fixed_prediction:
        top = loss_delta(net, cache.pre[-1], cache.out, y, sample_weight)

        def relax_errors(_, errors):
            above = (*errors[1:], top)
            return tuple((1 - gamma) * errors[k] + gamma * back(k, above[k], cache.pre[k],
                                                                 cache.post[k])
                         for k in hidden)  # fmt: skip

        start = tuple(jnp.zeros_like(cache.pre[k]) for k in hidden)
        errors = jax.lax.fori_loop(0, steps, relax_errors, start)
        return (*errors, top), (x, *cache.post[:-1]), cache.out

    def predict(values):
        """Each hidden node's error, ``delta_L`` at the top, and every layer's input."""
        inputs = (x, *(acts[k].fn(v) for k, v in zip(hidden, values, strict=True)))
        mu = [a @ p["w"] + p["b"][None, :] for a, p in zip(inputs, params, strict=True)]
        top = loss_delta(net, mu[-1], acts[-1].fn(mu[-1]), y, sample_weight)
        return (*(mu[k] - values[k] for k in hidden), top), inputs

    def relax(_, values):
        errors, inputs = predict(values)
        return tuple(values[k] + gamma * (errors[k] - back(k, errors[k + 1], values[k],
                                                            inputs[k + 1]))
                     for k in hidden)  # fmt: skip

    values = jax.lax.fori_loop(0, steps, relax, cache.pre[:-1])
    errors, inputs = predict(values)
    return errors, inputs, cache.out


def _check_network(net: Network) -> None:
    if any(net.hidden_dropout):
        raise ValueError("predictive_coding does not drop out: its value nodes relax on the "
                         "whole network; set dropout = 0")  # fmt: skip
    if net.compute_dtype is not None:
        raise ValueError("predictive_coding runs in the parameters' dtype; leave "
                         "compute_dtype unset")  # fmt: skip


@cached_rule
def predictive_coding(
    steps: int = 20, step_size: float = 0.1, fixed_prediction: bool = False
) -> LearningRule:
    """Errors from ``steps`` relaxation steps of step size ``step_size`` (``gamma``) on the
    value nodes; ``fixed_prediction``: the fixed-prediction assumption (exact backprop
    with ``step_size = 1`` and ``steps >= L - 1``)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= 10_000:
        raise ValueError(f"predictive_coding: steps (T) must be an integer in [1, 10000], "
                         f"got {steps!r}")  # fmt: skip
    if (
        isinstance(step_size, bool)
        or not isinstance(step_size, int | float)
        or not (0 < step_size <= 1)
    ):
        raise ValueError(f"predictive_coding: step_size must be a number in (0, 1], "
                         f"got {step_size!r}")  # fmt: skip
    if not isinstance(fixed_prediction, bool):
        raise ValueError(f"predictive_coding: fixed_prediction must be true or false, "
                         f"got {fixed_prediction!r}")  # fmt: skip

    def gradient(net, params, state, x, y, sample_weight=None, key=None):
        errors, inputs, out = relaxed_errors(net, params, x, y, sample_weight, steps,
                                             float(step_size), fixed_prediction)  # fmt: skip
        grads = [{"w": (a.T @ e).astype(p["w"].dtype), "b": jnp.sum(e, axis=0).astype(p["b"].dtype)}
                 for a, e, p in zip(inputs, errors, params, strict=True)]  # fmt: skip
        loss = loss_of_output(net, params, out, y, sample_weight)
        return loss, with_weight_penalty(net, params, grads)

    def init(key: Array, net: Network, params: Params) -> RuleState:
        _check_network(net)
        return ()

    return LearningRule("predictive_coding", gradient, init=init)
