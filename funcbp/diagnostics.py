"""Per-layer training diagnostics: vanishing and exploding gradients, dead and saturated units.

With ``fit(..., diagnostics_every=N)`` (``make_epoch`` samples steps 0, N, 2N, ...
of each epoch; ``make_train_step(..., diagnostics=True)`` is one such step, its
``aux`` these statistics) the compiled step computes, for each layer ``l``
(shape ``[L]`` per statistic)::

    grad_norm        ||dLoss/dW_l||                       (Frobenius norms throughout)
    grad_b_norm      ||dLoss/db_l||
    delta_norm       ||delta_l|| = ||dLoss/dz_l||         over the batch, [batch, n_out_l]
    weight_norm      ||W_l||
    update_ratio     ||W_l(after) - W_l(before)|| / ||W_l(before)||   (rule of thumb: ~1e-3)
    dead_fraction    ReLU layers (an Activation with can_die): the fraction of units with
                     z <= 0 for every sample of the batch (no gradient flows through
                     them); else NaN (leaky ReLU, ELU, SiLU and GELU pass gradient below
                     0: their units cannot die)
    saturated_fraction  sigmoid/tanh layers (an Activation with max_grad): the fraction of
                     (sample, unit) pairs whose derivative is below 5 % of its maximum
                     (sigmoid' < 0.0125, tanh' < 0.05: |z| beyond about 4.4 and 2.2);
                     else NaN

and ``grad_nonfinite``, whether any gradient is NaN or infinite. Training by a learning
rule (``funcbp.rules``) adds how far each layer's update ``u_l`` (the rule's ``dW_l``,
before the optimizer) is from the exact gradient ``g_l = dLoss/dW_l`` of the same step,
computed in the same program::

    alignment_angle  arccos(<u_l, g_l> / (|u_l| |g_l|)) in degrees (0: the exact direction)
    norm_ratio       |u_l| / |g_l|
    feedback_angle   the same angle between B_l and W_l^T (BioTorch's metric), for rules
                     whose B_l stands in for W_l^T; else NaN (direct feedback, predictive
                     coding and forward gradients have no such matrix)

Per epoch,
``fit`` records their mean over the sampled steps and ``sampled_steps``. ``findings``
reads a history of them and says, with a concrete suggestion, when a classic
failure shows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp

from funcbp.backprop import BackwardRule

if TYPE_CHECKING:
    from funcbp.backprop import ForwardCache
    from funcbp.mlp import MLP
    from funcbp.rules import Rule

Array = jax.Array
Params = list[dict[str, Array]]

LAYER_STATS = ("grad_norm", "grad_b_norm", "delta_norm", "weight_norm", "update_ratio",
               "dead_fraction", "saturated_fraction")  # fmt: skip
NAMES = (*LAYER_STATS, "grad_nonfinite", "sampled_steps")
ALIGNMENT_STATS = ("alignment_angle", "norm_ratio", "feedback_angle")  # a rule's, [L] each
_SATURATED_BELOW = 0.05  # of a saturating activation's largest derivative (its max_grad)

# What ``findings`` flags.
VANISHING_RATIO = 1e-3  # first layer's weight-gradient norm over the last layer's
EXPLODING_GROWTH = 1e3  # largest weight-gradient norm over its value at the first record
DEAD_ABOVE = 0.5
UPDATE_RATIO_ABOVE = 0.1


class DiagnosticWarning(UserWarning):
    """A training pattern ``findings`` recognised; the message suggests a fix."""


def layer_stats(
    net: MLP,
    params: Params,
    cache: ForwardCache,
    deltas: Sequence[Array],
    grads: Params,
    new_params: Params,
) -> dict[str, Array]:
    """The statistics above for one step: each ``[L]`` (``stats_dtype``); a bool for NaN grads."""
    dtype = stats_dtype(params)

    def norm(a: Array) -> Array:
        return jnp.sqrt(jnp.sum(jnp.square(a.astype(dtype))))

    def stack(values) -> Array:
        return jnp.stack([jnp.asarray(v, dtype) for v in values])

    weight_norm = stack(norm(p["w"]) for p in params)
    update = stack(norm(n["w"] - p["w"]) for n, p in zip(new_params, params, strict=True))
    dead, saturated = [], []
    for act, z, a in zip(net.layer_activations, cache.pre, cache.post, strict=True):
        dead.append(jnp.mean(jnp.max(z, axis=0) <= 0) if act.can_die else jnp.nan)
        if act.max_grad is not None:
            saturated.append(jnp.mean(act.grad(z, a) < _SATURATED_BELOW * act.max_grad))
        else:
            saturated.append(jnp.nan)
    grad_norm = stack(norm(g["w"]) for g in grads)
    grad_b_norm = stack(norm(g["b"]) for g in grads)
    return {
        "grad_norm": grad_norm,
        "grad_b_norm": grad_b_norm,
        "delta_norm": stack(norm(d) for d in deltas),
        "weight_norm": weight_norm,
        "update_ratio": update / weight_norm,
        "dead_fraction": stack(dead),
        "saturated_fraction": stack(saturated),
        # A NaN or inf anywhere makes its norm NaN or inf (so does a norm past 3e38).
        "grad_nonfinite": ~jnp.isfinite(jnp.sum(grad_norm) + jnp.sum(grad_b_norm)),
    }


def angle(u: Array, v: Array) -> Array:
    """The angle in degrees between ``u`` and ``v``, flattened (NaN if either is zero)."""
    u, v = u.reshape(-1), v.reshape(-1)
    cosine = jnp.sum(u * v) / (jnp.linalg.norm(u) * jnp.linalg.norm(v))
    return jnp.degrees(jnp.arccos(jnp.clip(cosine, -1.0, 1.0)))


def alignment_stats(
    params: Params, update: Params, exact: Params, rule: Rule, rule_state: Any
) -> dict[str, Array]:
    """``alignment_angle``, ``norm_ratio`` and ``feedback_angle`` of each layer (``[L]``,
    ``stats_dtype``): the rule's ``update`` (``dLoss/dparams``' structure) against the
    ``exact`` gradient at ``params``, and ``rule``'s ``B_l`` against ``W_l^T``."""
    dtype = stats_dtype(params)
    pairs = [(u["w"].astype(dtype), g["w"].astype(dtype)) for u, g in
             zip(update, exact, strict=True)]  # fmt: skip
    layer_feedback = isinstance(rule, BackwardRule) and not rule.from_output
    feedback = [
        angle(rule.feedback(params, rule_state, layer).astype(dtype), p["w"].T.astype(dtype))
        if layer_feedback
        else jnp.asarray(jnp.nan, dtype)
        for layer, p in enumerate(params)
    ]
    return {
        "alignment_angle": jnp.stack([angle(u, g) for u, g in pairs]),
        "norm_ratio": jnp.stack([jnp.linalg.norm(u) / jnp.linalg.norm(g) for u, g in pairs]),
        "feedback_angle": jnp.stack(feedback),
    }


def stats_dtype(params: Params) -> jnp.dtype:
    """float32, or float64 for float64 parameters (bfloat16 is too coarse for ratios)."""
    return jnp.promote_types(params[0]["w"].dtype, jnp.float32)


def empty_stats(params: Params, alignment: bool = False) -> dict[str, Array]:
    """What a step that does not sample reports: NaN for every statistic (with
    ``alignment``, a rule's too)."""
    shape = (len(params),)
    names = (*LAYER_STATS, *ALIGNMENT_STATS) if alignment else LAYER_STATS
    stats = {name: jnp.full(shape, jnp.nan, stats_dtype(params)) for name in names}
    return {**stats, "grad_nonfinite": jnp.zeros((), bool)}


def epoch_summary(aux: dict[str, Array]) -> dict[str, Array]:
    """One epoch's statistics from ``make_epoch``'s ``aux``: the mean over its sampled steps.

    ``aux`` holds each statistic of ``k`` steps (``[k, L]``) and ``"sampled"``
    (``[k]`` bool, the steps that really took them); an epoch without a sampled
    step gets NaN. ``{}`` (no diagnostics) gives ``{}``.
    """
    if not aux:
        return {}
    sampled = aux["sampled"]
    count = jnp.sum(sampled)
    summary = {
        name: jnp.sum(jnp.where(sampled[:, None], aux[name], 0.0), axis=0) / count
        for name in (*LAYER_STATS, *ALIGNMENT_STATS)
        if name in aux
    }
    return {
        **summary,
        "grad_nonfinite": jnp.any(aux["grad_nonfinite"] & sampled),
        "sampled_steps": count.astype(jnp.int32),
    }


def findings(history: dict[str, list], net: MLP) -> list[str]:
    """Warnings, each with a suggestion, for the patterns in a ``fit`` history's statistics."""
    if "grad_norm" not in history:
        return []
    epochs = history["epoch"]
    # Records read back from metrics.jsonl hold None where a value was NaN or inf.
    rows = [
        (e, {name: _nan_for_none(history[name][i]) for name in NAMES})
        for i, e in enumerate(epochs)
        if history["sampled_steps"][i]
    ]
    if not rows:
        return []
    found = []
    first_epoch, first = rows[0]
    for epoch, s in rows:
        g = s["grad_norm"]
        if g[-1] > 0 and g[0] / g[-1] < VANISHING_RATIO:
            found.append(
                f"vanishing gradients (epoch {epoch}): layer 1's weight-gradient norm is "
                f"{g[0] / g[-1]:.1e} of layer {len(g)}'s; saturating units shrink it layer by "
                f"layer ({_activation_note(net)}). Try ReLU-family activations with He "
                'initialisation (model.activation = "relu", model.initializer = "auto")'
            )
            break
    for epoch, s in rows:
        growth = max(_finite(s["grad_norm"])) / max(max(_finite(first["grad_norm"])), 1e-30)
        if s["grad_nonfinite"] or growth > EXPLODING_GROWTH:
            what = (
                "a gradient is not finite"
                if s["grad_nonfinite"]
                else (
                    f"the largest weight-gradient norm grew {growth:.0e}x since epoch {first_epoch}"
                )
            )
            found.append(
                f"exploding gradients (epoch {epoch}): {what}. Try gradient clipping "
                "(optimizer.clip_norm = 1.0) or a lower learning rate"
            )
            break
    for epoch, s in rows:
        dead = [
            (k + 1, f) for k, f in enumerate(s["dead_fraction"]) if f is not None and f > DEAD_ABOVE
        ]
        if dead:
            layer, fraction = dead[0]
            found.append(
                f"dead ReLUs (epoch {epoch}): {fraction:.0%} of layer {layer}'s units are never "
                "active over a batch. Try a lower learning rate, leaky_relu, or less negative "
                "biases"
            )
            break
    for epoch, s in rows:
        ratios = _finite(s["update_ratio"])
        if ratios and max(ratios) > UPDATE_RATIO_ABOVE:
            found.append(
                f"large updates (epoch {epoch}): an update moved a layer's weights by "
                f"{max(ratios):.0%} of their norm (about 0.1 % is typical). Try a lower "
                "learning rate"
            )
            break
    return found


def _nan_for_none(value):
    if isinstance(value, list):
        return [math.nan if v is None else v for v in value]
    return value


def _finite(values) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)] or [math.nan]


def _activation_note(net: MLP) -> str:
    saturating = {act.name: act.max_grad for act in net.layer_activations[:-1] if act.max_grad}
    if not saturating:
        return "deep stacks of small weights do the same"
    return ", ".join(f"{name}' <= {saturating[name]:g}" for name in sorted(saturating))
