"""Feedback rules: the error travels back through matrices other than ``W_l^T``.

Each is a ``funcbp.BackwardRule``: the backward pass keeps its form
(``dW_l = a_{l-1}^T @ delta_l``, ``db_l`` = the sum over the batch of ``delta_l``, see
``funcbp.backprop``) and only the matrix that carries the error back changes.
Feedback matrices are shaped like ``W_l^T`` and drawn like ``W_l`` (the layer's
initialiser, then transposed) from the rule's own key, split off the parameters' key::

    feedback_alignment         delta_{l-1} = (delta_l @ B_l) * f'_{l-1}(z_{l-1})
      Lillicrap, Cownden, Tweed and Akerman 2016, "Random synaptic feedback weights
      support error backpropagation for deep learning". B_l [n_out_l, n_in_l], fixed.

    direct_feedback_alignment  delta_l = (delta_L @ D_l) * f'_l(z_l)
      Nøkland 2016, "Direct feedback alignment provides learning in deep neural
      networks". D_l [n_out_L, n_out_l], fixed, from the output to every hidden layer.

    sign_symmetry              B_l = sign(W_l)^T * M_l
      Liao, Leibo and Poggio 2016, "How important is weight symmetry in
      backpropagation?"; BioTorch's uSF (M_l = sqrt(2 / (n_in_l + n_out_l)), the
      scale of Xiao et al. 2018) and frSF (M_l = |R_l|, R_l fixed, drawn like W_l^T).

    kolen_pollack              B_l' = B_l + (W_l' - W_l)^T - decay * (B_l - W_l^T)
      Kolen and Pollack 1994, "Backpropagation without weight transport"; Akrout et al.
      2019. B_l takes W_l's update, transposed. In the original both matrices also decay
      by the same factor (dW = u - decay W, dB = u^T - decay B), which makes B - W^T
      shrink by (1 - decay) per step whatever u is; here W's update is the optimizer's
      (its decay is the network's l2) and the shared decay acts on the difference, so
      that B_l - W_l^T follows the original rule's course exactly and B_l -> W_l^T.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from funcbp import initializers as _initializers
from funcbp.backprop import BackwardRule, Network, Params, RuleState
from funcbp.rules._learning_rule import cached_rule

Array = jax.Array


def _drawn_like_weights(key: Array, net: Network, params: Params, n_rows) -> tuple[Array, ...]:
    """One fixed matrix per layer, ``[n_rows(l), n_in_l]``, drawn as a ``[n_in_l,
    n_rows(l)]`` weight matrix by the layer's initialiser, then transposed."""
    rules = [rule for *_, rule in net.init_rules]
    shapes = [(p["w"].shape[0], n_rows(layer)) for layer, p in enumerate(params)]
    drawn = _initializers.init_weights(key, shapes, rules, params[0]["w"].dtype)
    return tuple(b.T for b in drawn)


def _layer_feedback(key: Array, net: Network, params: Params) -> tuple[Array, ...]:
    return _drawn_like_weights(key, net, params, lambda layer: params[layer]["w"].shape[1])


def _stored(params: Params, state: RuleState, layer: int) -> Array:
    return state[layer]


@cached_rule
def feedback_alignment() -> BackwardRule:
    """Fixed random feedback ``B_l`` in place of ``W_l^T`` (Lillicrap et al. 2016)."""
    return BackwardRule("feedback_alignment", _stored, init=_layer_feedback)


def _direct_feedback(key: Array, net: Network, params: Params) -> tuple[Array, ...]:
    if len(params) < 2:
        raise ValueError(
            "direct_feedback_alignment needs a hidden layer: with one layer the output's "
            f"delta is the only one (the network is {list(net.sizes)})"
        )
    n_out = params[-1]["w"].shape[1]
    return _drawn_like_weights(key, net, params, lambda layer: n_out)


@cached_rule
def direct_feedback_alignment() -> BackwardRule:
    """Fixed random feedback ``D_l`` from the output to every hidden layer (Nøkland 2016)."""
    return BackwardRule("direct_feedback_alignment", _stored, init=_direct_feedback,
                        from_output=True)  # fmt: skip


MAGNITUDES = ("uniform", "random")


def _uniform_sign(params: Params, state: RuleState, layer: int) -> Array:
    w = params[layer]["w"]
    scale = math.sqrt(2.0 / (w.shape[0] + w.shape[1]))
    return jnp.sign(w).T * jnp.asarray(scale, w.dtype)


def _random_magnitude(key: Array, net: Network, params: Params) -> tuple[Array, ...]:
    return tuple(jnp.abs(r) for r in _layer_feedback(key, net, params))


def _random_sign(params: Params, state: RuleState, layer: int) -> Array:
    return jnp.sign(params[layer]["w"]).T * state[layer]


@cached_rule
def sign_symmetry(magnitude: str = "uniform") -> BackwardRule:
    """``B_l = sign(W_l)^T * M_l`` (Liao, Leibo and Poggio 2016).

    ``magnitude``: ``"uniform"`` (uSF, ``M_l = sqrt(2 / (n_in_l + n_out_l))``) or
    ``"random"`` (frSF, ``M_l = |R_l|``, fixed, drawn like ``W_l^T``).
    """
    if magnitude not in MAGNITUDES:
        raise ValueError(f"sign_symmetry: magnitude must be one of {', '.join(MAGNITUDES)}, "
                         f"got {magnitude!r}")  # fmt: skip
    if magnitude == "uniform":
        return BackwardRule("sign_symmetry", _uniform_sign)
    return BackwardRule("sign_symmetry", _random_sign, init=_random_magnitude)


@cached_rule
def kolen_pollack(decay: float = 0.01) -> BackwardRule:
    """``B_l`` learns ``W_l``'s update, transposed, with a shared decay (Kolen and Pollack
    1994): ``B_l' = B_l + (W_l' - W_l)^T - decay * (B_l - W_l^T)``.

    ``decay`` in ``[0, 1)``, per optimizer step: how fast ``B_l - W_l^T`` shrinks.
    """
    if isinstance(decay, bool) or not isinstance(decay, int | float) or not 0 <= decay < 1:
        raise ValueError(f"kolen_pollack: decay must be a number in [0, 1), got {decay!r}")
    decay = float(decay)

    def update(state: RuleState, old: Params, new: Params) -> RuleState:
        return tuple(
            b + (n["w"] - o["w"]).T - jnp.asarray(decay, b.dtype) * (b - o["w"].T)
            for b, o, n in zip(state, old, new, strict=True)
        )

    return BackwardRule("kolen_pollack", _stored, init=_layer_feedback, update=update)
