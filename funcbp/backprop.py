"""The forward pass with its cache, and the hand-derived backward pass.

For layer ``l`` (0-based, ``L`` layers) with input ``a_{l-1}`` (``a_{-1} = x``)::

    z_l = a_{l-1} @ W_l + b_l            a_l = f_l(z_l)

and the backward pass is the chain rule in batched matrix form::

    delta_L     = dLoss/dz_L = dLoss/da_L * f_L'(z_L)     (fused for identity outputs)
    dW_l        = a_{l-1}^T @ delta_l                     [n_in_l, n_out_l]
    db_l        = sum over the batch of delta_l           [n_out_l]
    delta_{l-1} = (delta_l @ W_l^T) * f_{l-1}'(z_{l-1})   [batch, n_out_{l-1}]
    dLoss/dx    = delta_0 @ W_0^T                         [batch, n_in]

Everything the backward pass reads (each layer's input, ``z`` and ``a``) comes
from the forward cache; nothing is recomputed. It is written in ``jax.numpy``,
so it is itself differentiable: ``jax.jvp`` through it gives Hessian-vector
products.

Two things change the recurrence without changing its form:

* **Dropout** (inverted): with a ``key``, hidden layer ``l``'s output is
  ``a_l * m_l``, ``m_l`` = keep mask ``/ (1 - p_l)``, drawn per element; the cache
  keeps ``m_l`` and ``delta_l`` gets the same factor,
  ``delta_l = (delta_{l+1} @ W_{l+1}^T) * m_l * f_l'(z_l)``.
* **A backward rule** (``BackwardRule``) supplies the matrix ``B_l`` that carries
  the error back in place of ``W_l^T``: ``delta_{l-1} = (delta_l @ B_l) *
  f_{l-1}'(z_{l-1})``, or from the output, ``(delta_L @ B_l) * f_{l-1}'(z_{l-1})``.
  The weight and bias gradients keep their form; only the deltas differ.
  ``BACKPROP`` (``B_l = W_l^T``) is the default and is exact.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp

from funcbp import losses as _losses
from funcbp.activations import Activation

Array = jax.Array
Params = list[dict[str, Array]]
RuleState = Any  # a pytree


class Network(Protocol):
    """The pieces of a network spec these passes read (``funcbp.MLP`` is one); validating
    inputs is the spec's business, before it calls them."""

    @property
    def layer_activations(self) -> tuple[Activation, ...]: ...  # one per layer, output last

    @property
    def resolved_cost(self) -> _losses.Cost: ...

    @property
    def hidden_dropout(self) -> tuple[float, ...]: ...  # one rate per hidden layer

    @property
    def l2(self) -> float: ...

    @property
    def compute_dtype(self) -> str | None: ...  # mixed precision: "bfloat16", "float16"


def _no_state(key: Array, net: Network, params: Params) -> RuleState:
    return ()


def _same_state(state: RuleState, old: Params, new: Params) -> RuleState:
    return state


def _transpose(params: Params, state: RuleState, layer: int) -> Array:
    return params[layer]["w"].T


class BackwardRule(NamedTuple):
    """What carries the error back through layer ``l``: ``B_l`` in ``delta_{l-1} =
    (delta_l @ B_l) * f_{l-1}'(z_{l-1})``, in place of ``W_l^T``.

    Hashable (static under ``jit``) when its functions are; its state is a pytree
    that ``funcbp.train`` keeps in ``TrainState.rule_state``, checkpoints and
    replicates over devices like the optimizer state.

    Attributes:
      name: how reports and checkpoints name the rule.
      feedback: ``(params, state, layer) -> B_l``, ``[n_out_l, n_in_l]`` (with
        ``from_output``, ``[n_out_L, n_in_l]``); also gives the rule's ``dLoss/dx``
        through layer 0.
      init: ``(key, net, params) -> state``; default ``()``, no state.
      update: ``(state, params before, params after) -> state``, after each
        optimizer step; default: unchanged.
      from_output: ``B_l`` multiplies the output delta ``delta_L`` (direct feedback)
        instead of the delta of the layer above.
    """

    name: str
    feedback: Callable[[Params, RuleState, int], Array]
    init: Callable[[Array, Network, Params], RuleState] = _no_state
    update: Callable[[RuleState, Params, Params], RuleState] = _same_state
    from_output: bool = False


BACKPROP = BackwardRule("backprop", _transpose)


class ForwardCache(NamedTuple):
    """What the forward pass keeps for the backward pass.

    Attributes:
      x: the input, ``[batch, n_in]``.
      pre: ``z_l`` per layer, each ``[batch, n_out_l]``.
      post: ``a_l = f_l(z_l)`` per layer, each ``[batch, n_out_l]``; ``post[-1]`` is the output.
      kept: dropout's scaled keep mask ``m_l`` per hidden layer (``[batch, n_out_l]``),
        or ``None`` where the layer drops nothing.
    """

    x: Array
    pre: tuple[Array, ...]
    post: tuple[Array, ...]
    kept: tuple[Array | None, ...] = ()

    @property
    def out(self) -> Array:
        """The network's output, ``[batch, n_out]``."""
        return self.post[-1]

    def layer_input(self, layer: int) -> Array:
        """``a_{l-1}`` (times its dropout mask), the input of ``layer``, ``[batch, n_in_l]``."""
        if layer == 0:
            return self.x
        a, kept = self.post[layer - 1], self._kept(layer - 1)
        return a if kept is None else a * kept

    def _kept(self, layer: int) -> Array | None:
        return self.kept[layer] if layer < len(self.kept) else None


class BackpropResult(NamedTuple):
    """Everything the hand-derived backward pass computes.

    Attributes:
      loss: the scalar loss, l2 penalty included.
      grads: ``dLoss/dparams``, the same pytree structure as ``params``.
      input_grad: ``dLoss/dx``, ``[batch, n_in]`` (saliency).
      deltas: ``dLoss/dz_l`` per layer, each ``[batch, n_out_l]``.
    """

    loss: Array
    grads: Params
    input_grad: Array
    deltas: tuple[Array, ...]


def forward(net: Network, params: Params, x: Array, key: Array | None = None) -> ForwardCache:
    """Runs the network on ``x`` ``[batch, n_in]`` and keeps every ``z_l`` and ``a_l``.

    With ``net.compute_dtype`` the layers run in it (``x`` is cast, products are
    accumulated in float32) and the output is cast back to the parameters' dtype.
    With a ``key`` (a ``jax.random.key``), hidden layers drop out at their
    ``net.hidden_dropout`` rates; without one, nothing is dropped.
    """
    pre, post, kept = [], [], []
    compute = _compute_dtype(net)
    x = x if compute is None else x.astype(compute)
    a = x
    rates = net.hidden_dropout if key is not None else ()
    dropping = any(rates)
    keys = jax.random.split(key, len(rates)) if dropping else ()
    for layer, act in enumerate(net.layer_activations):
        w, b = params[layer]["w"], params[layer]["b"]
        if compute is None:
            z = a @ w + b[None, :]
        else:
            z = _dot(a, w.astype(compute)) + b[None, :].astype(jnp.float32)
            z = z.astype(compute)
        a = act.fn(z)
        pre.append(z)
        post.append(a)
        if dropping and layer < len(rates) and rates[layer]:
            keep = jax.random.bernoulli(keys[layer], 1.0 - rates[layer], a.shape)
            kept.append(keep.astype(a.dtype) / jnp.asarray(1.0 - rates[layer], a.dtype))
            a = a * kept[-1]
        elif layer < len(net.layer_activations) - 1:
            kept.append(None)
    if compute is not None:
        post[-1] = post[-1].astype(params[-1]["w"].dtype)
    return ForwardCache(x, tuple(pre), tuple(post), tuple(kept) if dropping else ())


def _compute_dtype(net: Network) -> jnp.dtype | None:
    return None if net.compute_dtype is None else jnp.dtype(net.compute_dtype)


def _dot(a: Array, b: Array) -> Array:
    """``a @ b`` in the inputs' (low) dtype, accumulated and returned in float32."""
    return jnp.matmul(a, b, preferred_element_type=jnp.float32)


def output_delta(net: Network, z: Array, out: Array, out_cotangent: Array) -> Array:
    """``delta_L = out_cotangent * f_L'(z_L)`` at the last layer's ``z`` and ``out``; skips
    the product for an identity output."""
    act = net.layer_activations[-1]
    if act.name == "identity":
        return out_cotangent
    return out_cotangent * act.grad(z, out)


def backward(
    net: Network,
    params: Params,
    cache: ForwardCache,
    delta: Array,
    rule: BackwardRule = BACKPROP,
    rule_state: RuleState = (),
) -> tuple[Params, Array, tuple[Array, ...]]:
    """The backward recurrence ``delta_{l-1} = (delta_l @ B_l) * f_{l-1}'(z_{l-1})``.

    Args:
      net: the network spec.
      params: the parameters the forward pass used.
      cache: the forward pass's cache.
      delta: ``dLoss/dz_L`` of the last layer, ``[batch, n_out]``.
      rule: what ``B_l`` is (``BACKPROP``: ``W_l^T``); ``rule_state`` its state.

    Returns:
      ``(grads, input_grad, deltas)``: ``grads`` with the structure and dtypes of
      ``params`` (without the l2 term), ``dLoss/dx`` ``[batch, n_in]``, and
      ``dLoss/dz_l`` per layer.
    """
    acts = net.layer_activations
    compute = _compute_dtype(net)
    grads, deltas = [], []
    out_delta = delta
    for layer in reversed(range(len(params))):
        deltas.append(delta)
        a_in, w = cache.layer_input(layer), params[layer]["w"]
        feedback = rule.feedback(params, rule_state, layer)
        source = out_delta if rule.from_output else delta
        if compute is None:  # (inputs wider than the parameters widen the products)
            grads.append({"w": (a_in.T @ delta).astype(w.dtype),
                          "b": jnp.sum(delta, axis=0).astype(w.dtype)})  # fmt: skip
            delta = source @ feedback
        else:  # products in the compute dtype, sums over the batch in float32
            low = delta.astype(compute)
            bias_grad = jnp.sum(delta.astype(jnp.float32), axis=0)
            grads.append({"w": _dot(a_in.T, low).astype(w.dtype), "b": bias_grad.astype(w.dtype)})
            delta = _dot(source.astype(compute), feedback.astype(compute))
            delta = delta if layer == 0 else delta.astype(compute)
        if layer > 0:
            kept = cache._kept(layer - 1)
            delta = delta if kept is None else delta * kept
            delta = delta * acts[layer - 1].grad(cache.pre[layer - 1], cache.post[layer - 1])
    return grads[::-1], delta, tuple(deltas[::-1])


def loss_of_output(
    net: Network, params: Params, out: Array, y: Array, sample_weight: Array | None = None
) -> Array:
    """The scalar loss of output ``out`` ``[batch, n_out]``: ``cost(out, y) + l2 / 2 *
    sum ||W||^2`` (a weighted mean with ``sample_weight`` ``[batch]``), what
    ``MLP.loss`` and the backward pass both report."""
    value = _losses.weighted_loss(net.resolved_cost, out, y, sample_weight)
    return value + _losses.weight_penalty(params, net.l2)


def backprop(
    net: Network,
    params: Params,
    x: Array,
    y: Array,
    *,
    sample_weight: Array | None = None,
    key: Array | None = None,
    rule: BackwardRule = BACKPROP,
    rule_state: RuleState = (),
) -> BackpropResult:
    """Loss and every gradient by the hand-derived backward pass (inputs unchecked:
    ``MLP.backprop`` validates them first).

    Args:
      net: the network spec.
      params: ``[{"w": [n_in_l, n_out_l], "b": [n_out_l]}, ...]``.
      x: inputs ``[batch, n_in]``.
      y: targets, as ``net.cost`` expects them.
      sample_weight: ``[batch]``, non-negative; the loss becomes their weighted mean.
      key: draws the dropout masks; ``None``: no dropout.
      rule: the backward rule (``BACKPROP``: exact).
      rule_state: its state.
    """
    extras = {"sample_weight": sample_weight, "key": key, "rule": rule, "rule_state": rule_state}
    return backprop_with_cache(net, params, x, y, **extras)[0]


def backprop_with_cache(
    net: Network,
    params: Params,
    x: Array,
    y: Array,
    *,
    sample_weight: Array | None = None,
    key: Array | None = None,
    rule: BackwardRule = BACKPROP,
    rule_state: RuleState = (),
) -> tuple[BackpropResult, ForwardCache]:
    """``backprop`` and the forward cache it ran on (for per-layer diagnostics)."""
    x, y = jnp.asarray(x), jnp.asarray(y)
    cache = forward(net, params, x, key)
    delta = loss_delta(net, cache.pre[-1], cache.out, y, sample_weight)
    grads, input_grad, deltas = backward(net, params, cache, delta, rule, rule_state)
    input_grad = input_grad.astype(x.dtype)
    loss = loss_of_output(net, params, cache.out, y, sample_weight)
    return BackpropResult(loss, with_weight_penalty(net, params, grads), input_grad, deltas), cache


def loss_delta(
    net: Network, z: Array, out: Array, y: Array, sample_weight: Array | None = None
) -> Array:
    """``delta_L = dLoss/dz_L`` ``[batch, n_out]`` at the last layer's ``z`` and output
    ``out = f_L(z)`` (the cost's fused form where it has one)."""
    cost = net.resolved_cost
    delta = _losses.weighted_delta(cost, out, y, sample_weight)
    return delta if cost.fused_activation is not None else output_delta(net, z, out, delta)


def with_weight_penalty(net: Network, params: Params, grads: Params) -> Params:
    """``grads`` plus the l2 term's gradient, ``d/dW [l2/2 ||W||^2] = l2 W`` (biases are
    not penalised)."""
    if not net.l2:
        return grads
    return [{"w": g["w"] + net.l2 * p["w"], "b": g["b"]}
            for g, p in zip(grads, params, strict=True)]  # fmt: skip


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def apply_custom_vjp(net: Network, params: Params, x: Array) -> Array:
    """``net.apply`` whose VJP is the hand-derived backward pass.

    Use it inside a larger function: ``jax.grad`` / ``jax.vjp`` of that function
    then differentiate the MLP by ``backward`` instead of tracing ``apply``.
    Reverse mode only (``jax.custom_vjp`` has no forward-mode rule).
    """
    return forward(net, params, x).out


def _apply_fwd(net: Network, params: Params, x: Array):
    cache = forward(net, params, x)
    return cache.out, (params, cache, x)


def _apply_bwd(net: Network, residuals: tuple[Params, ForwardCache, Array], out_cotangent: Array):
    params, cache, x = residuals  # x: its dtype is the input cotangent's
    delta = output_delta(net, cache.pre[-1], cache.out, out_cotangent)
    grads, input_grad, _ = backward(net, params, cache, delta)
    return grads, input_grad.astype(x.dtype)


apply_custom_vjp.defvjp(_apply_fwd, _apply_bwd)
