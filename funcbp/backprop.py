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
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple, Protocol

import jax
import jax.numpy as jnp

from funcbp import losses as _losses
from funcbp.activations import Activation

Array = jax.Array
Params = list[dict[str, Array]]


class Network(Protocol):
    """The pieces of a network spec these passes read (``funcbp.MLP`` is one); validating
    inputs is the spec's business, before it calls them."""

    @property
    def layer_activations(self) -> tuple[Activation, ...]: ...  # one per layer, output last

    @property
    def output_activation(self) -> str: ...

    @property
    def cost(self) -> str: ...  # a name in funcbp.losses

    @property
    def l2(self) -> float: ...

    @property
    def compute_dtype(self) -> str | None: ...  # mixed precision: "bfloat16", "float16"


class ForwardCache(NamedTuple):
    """What the forward pass keeps for the backward pass.

    Attributes:
      x: the input, ``[batch, n_in]``.
      pre: ``z_l`` per layer, each ``[batch, n_out_l]``.
      post: ``a_l = f_l(z_l)`` per layer, each ``[batch, n_out_l]``; ``post[-1]`` is the output.
    """

    x: Array
    pre: tuple[Array, ...]
    post: tuple[Array, ...]

    @property
    def out(self) -> Array:
        """The network's output, ``[batch, n_out]``."""
        return self.post[-1]

    def layer_input(self, layer: int) -> Array:
        """``a_{l-1}``, the input of ``layer``, ``[batch, n_in_l]``."""
        return self.x if layer == 0 else self.post[layer - 1]


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


def forward(net: Network, params: Params, x: Array) -> ForwardCache:
    """Runs the network on ``x`` ``[batch, n_in]`` and keeps every ``z_l`` and ``a_l``.

    With ``net.compute_dtype`` the layers run in it (``x`` is cast, products are
    accumulated in float32) and the output is cast back to the parameters' dtype.
    """
    pre, post = [], []
    compute = _compute_dtype(net)
    a = x if compute is None else x.astype(compute)
    for layer, act in zip(params, net.layer_activations, strict=True):
        if compute is None:
            z = a @ layer["w"] + layer["b"][None, :]
        else:
            z = _dot(a, layer["w"].astype(compute)) + layer["b"][None, :].astype(jnp.float32)
            z = z.astype(compute)
        a = act.fn(z)
        pre.append(z)
        post.append(a)
    if compute is not None:
        post[-1] = post[-1].astype(params[-1]["w"].dtype)
    return ForwardCache(x if compute is None else x.astype(compute), tuple(pre), tuple(post))


def _compute_dtype(net: Network) -> jnp.dtype | None:
    return None if net.compute_dtype is None else jnp.dtype(net.compute_dtype)


def _dot(a: Array, b: Array) -> Array:
    """``a @ b`` in the inputs' (low) dtype, accumulated and returned in float32."""
    return jnp.matmul(a, b, preferred_element_type=jnp.float32)


def output_delta(net: Network, cache: ForwardCache, out_cotangent: Array) -> Array:
    """``delta_L = out_cotangent * f_L'(z_L)``; skips the product for an identity output."""
    if net.output_activation == "identity":
        return out_cotangent
    act = net.layer_activations[-1]
    return out_cotangent * act.grad(cache.pre[-1], cache.post[-1])


def backward(
    net: Network, params: Params, cache: ForwardCache, delta: Array
) -> tuple[Params, Array, tuple[Array, ...]]:
    """The backward recurrence ``delta_{l-1} = (delta_l @ W_l^T) * f_{l-1}'(z_{l-1})``.

    Args:
      net: the network spec.
      params: the parameters the forward pass used.
      cache: the forward pass's cache.
      delta: ``dLoss/dz_L`` of the last layer, ``[batch, n_out]``.

    Returns:
      ``(grads, input_grad, deltas)``: ``grads`` with the structure and dtypes of
      ``params`` (without the l2 term), ``dLoss/dx`` ``[batch, n_in]``, and
      ``dLoss/dz_l`` per layer.
    """
    acts = net.layer_activations
    compute = _compute_dtype(net)
    grads, deltas = [], []
    for layer in reversed(range(len(params))):
        deltas.append(delta)
        a_in, w = cache.layer_input(layer), params[layer]["w"]
        if compute is None:  # (inputs wider than the parameters widen the products)
            grads.append({"w": (a_in.T @ delta).astype(w.dtype),
                          "b": jnp.sum(delta, axis=0).astype(w.dtype)})  # fmt: skip
            delta = delta @ w.T
        else:  # products in the compute dtype, sums over the batch in float32
            low = delta.astype(compute)
            bias_grad = jnp.sum(delta.astype(jnp.float32), axis=0)
            grads.append({"w": _dot(a_in.T, low).astype(w.dtype), "b": bias_grad.astype(w.dtype)})
            delta = _dot(low, w.astype(compute).T)
            delta = delta if layer == 0 else delta.astype(compute)
        if layer > 0:
            delta = delta * acts[layer - 1].grad(cache.pre[layer - 1], cache.post[layer - 1])
    return grads[::-1], delta, tuple(deltas[::-1])


def loss_of_output(net: Network, params: Params, out: Array, y: Array) -> Array:
    """The scalar loss of output ``out`` ``[batch, n_out]``: ``cost(out, y) + l2 / 2 *
    sum ||W||^2``, what ``MLP.loss`` and the backward pass both report."""
    return _losses.get(net.cost).value(out, y) + _losses.weight_penalty(params, net.l2)


def backprop(net: Network, params: Params, x: Array, y: Array) -> BackpropResult:
    """Loss and every gradient by the hand-derived backward pass (inputs unchecked:
    ``MLP.backprop`` validates them first).

    Args:
      net: the network spec.
      params: ``[{"w": [n_in_l, n_out_l], "b": [n_out_l]}, ...]``.
      x: inputs ``[batch, n_in]``.
      y: targets, as ``net.cost`` expects them.
    """
    return backprop_with_cache(net, params, x, y)[0]


def backprop_with_cache(
    net: Network, params: Params, x: Array, y: Array
) -> tuple[BackpropResult, ForwardCache]:
    """``backprop`` and the forward cache it ran on (for per-layer diagnostics)."""
    x, y = jnp.asarray(x), jnp.asarray(y)
    cache = forward(net, params, x)
    delta = output_delta(net, cache, _losses.get(net.cost).grad(cache.out, y))
    grads, input_grad, deltas = backward(net, params, cache, delta)
    input_grad = input_grad.astype(x.dtype)
    loss = loss_of_output(net, params, cache.out, y)
    if net.l2:
        # d/dW [l2/2 ||W||^2] = l2 W; biases are not penalised.
        grads = [
            {"w": g["w"] + net.l2 * p["w"], "b": g["b"]} for g, p in zip(grads, params, strict=True)
        ]
    return BackpropResult(loss, grads, input_grad, deltas), cache


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
    delta = output_delta(net, cache, out_cotangent)
    grads, input_grad, _ = backward(net, params, cache, delta)
    return grads, input_grad.astype(x.dtype)


apply_custom_vjp.defvjp(_apply_fwd, _apply_bwd)
