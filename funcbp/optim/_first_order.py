"""First-order optimizers by name: one optax ``GradientTransformation`` each.

``transformation(name, learning_rate, **options)`` builds one of ``FIRST_ORDER_NAMES``
and chains, in this order, what the options ask for::

    clip(clip_value) -> clip_by_global_norm(clip_norm) -> add_decayed_weights(weight_decay)
    -> optimizer (its learning rate a constant or ``schedule(...)``)

``weight_decay`` is added to the gradient (torch's ``weight_decay``) for every
optimizer but ``adamw``, which decays decoupled as ``optax.adamw`` does (and by
default as much: 1e-4; the others' default is 0). It
decays every leaf, biases included; pass ``params`` to ``update`` when it is set.
Every name and value is checked in Python, before anything is traced, and a bad
one raises ``ValueError`` naming the key and what is valid.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from funcbp.optim._checks import check as _check
from funcbp.optim._checks import options as _options

# --- rprop -------------------------------------------------------------------


_RPROP_DEFAULTS = {"eta_minus": 0.5, "eta_plus": 1.2, "min_step_size": 1e-6, "max_step_size": 50.0}


class RpropState(NamedTuple):
    """State of :func:`rprop`."""

    prev: optax.Updates  # same tree and shapes as params; last gradient, 0 where its sign flipped
    step_size: optax.Updates  # same tree and shapes as params; per-element step size


def rprop(
    learning_rate: float,
    eta_minus: float = 0.5,
    eta_plus: float = 1.2,
    min_step_size: float = 1e-6,
    max_step_size: float = 50.0,
) -> optax.GradientTransformation:
    """Resilient backpropagation, step for step as ``torch.optim.Rprop``.

    Per element, with ``s = sign(g * prev)``: the step size grows by ``eta_plus``
    where ``s > 0``, shrinks by ``eta_minus`` where ``s < 0`` (and ``g`` counts as 0
    for this step, so the next step neither grows nor shrinks it), is clipped to
    ``[min_step_size, max_step_size]``, and the update is ``-sign(g) * step_size``.
    The first update is ``-sign(g) * learning_rate`` (clipped likewise), not zero:
    ``optax.rprop`` emits each update one step late.

    Rprop is for full-batch training: it reads only the sign of the gradient
    and adapts each step size from one step to the next, which assumes every
    step sees the gradient of the same objective. Minibatch noise flips those
    signs and shrinks the step sizes towards ``min_step_size``.

    Args:
      learning_rate: initial step size of every element.
      eta_minus: step-size factor after a sign flip, in (0, 1).
      eta_plus: step-size factor while the sign holds, > 1.
      min_step_size: smallest step size.
      max_step_size: largest step size.

    Raises:
      ValueError: a value is out of range; the message names it.
    """
    _check("learning_rate", learning_rate)
    _check("eta_minus", eta_minus)
    _check("eta_plus", eta_plus)
    _check("min_step_size", min_step_size)
    _check("max_step_size", max_step_size)
    if min_step_size > max_step_size:
        raise ValueError(
            f"min_step_size ({min_step_size!r}) must not exceed max_step_size ({max_step_size!r})"
        )

    def init_fn(params: optax.Params) -> RpropState:
        return RpropState(
            prev=optax.tree.zeros_like(params),
            step_size=optax.tree.full_like(params, learning_rate),
        )

    def update_fn(
        updates: optax.Updates, state: RpropState, params: optax.Params | None = None
    ) -> tuple[optax.Updates, RpropState]:
        del params
        # sign of the product, not the product of signs: torch's, including underflow to 0.
        signs = jax.tree.map(lambda g, p: jnp.sign(g * p), updates, state.prev)
        factors = jax.tree.map(
            lambda s: jnp.where(s > 0, eta_plus, jnp.where(s < 0, eta_minus, 1.0)), signs
        )
        step_size = jax.tree.map(
            lambda f, step: jnp.clip(step * f, min_step_size, max_step_size),
            factors,
            state.step_size,
        )
        grads = jax.tree.map(lambda s, g: jnp.where(s < 0, jnp.zeros_like(g), g), signs, updates)
        updates = jax.tree.map(lambda g, step: -jnp.sign(g) * step, grads, step_size)
        return updates, RpropState(prev=grads, step_size=step_size)

    return optax.GradientTransformation(init_fn, update_fn)


# --- schedules ---------------------------------------------------------------

# name -> (builder taking learning_rate and the options, option defaults; None = required)
_SCHEDULES: dict[str, tuple[Callable[..., optax.Schedule], dict[str, Any]]] = {
    "constant": (optax.constant_schedule, {}),
    # learning_rate * gamma**step
    "exponential": (
        lambda lr, gamma: optax.exponential_decay(lr, transition_steps=1, decay_rate=gamma),
        {"gamma": None},
    ),
    # learning_rate * gamma**(step // every)
    "step": (
        lambda lr, gamma, every: optax.exponential_decay(lr, every, gamma, staircase=True),
        {"gamma": None, "every": None},
    ),
    # learning_rate down to alpha * learning_rate along half a cosine, then flat
    "cosine": (
        lambda lr, decay_steps, alpha: optax.cosine_decay_schedule(lr, decay_steps, alpha),
        {"decay_steps": None, "alpha": 0.0},
    ),
    # 0 up to learning_rate linearly, then cosine down to alpha * learning_rate at decay_steps
    "warmup_cosine": (
        lambda lr, warmup_steps, decay_steps, alpha: optax.warmup_cosine_decay_schedule(
            0.0, lr, warmup_steps, decay_steps, end_value=alpha * lr
        ),
        {"warmup_steps": None, "decay_steps": None, "alpha": 0.0},
    ),
}

SCHEDULE_NAMES: tuple[str, ...] = tuple(_SCHEDULES)


def schedule(name: str, learning_rate: float, **options: Any) -> optax.Schedule:
    """Returns schedule ``name`` (one of ``SCHEDULE_NAMES``) starting from ``learning_rate``.

    Options: ``exponential``: ``gamma``; ``step``: ``gamma``, ``every``;
    ``cosine``: ``decay_steps``, ``alpha=0``; ``warmup_cosine``: ``warmup_steps``,
    ``decay_steps`` (counting the warmup, as in optax), ``alpha=0``.

    Raises:
      ValueError: unknown name, unknown or missing option, or a bad value.
    """
    if not isinstance(name, str) or name not in _SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; valid names: {', '.join(SCHEDULE_NAMES)}")
    _check("learning_rate", learning_rate)
    build, defaults = _SCHEDULES[name]
    opts = _options(f"schedule {name!r}", defaults, options)
    if name == "warmup_cosine" and opts["warmup_steps"] >= opts["decay_steps"]:
        raise ValueError(
            f"schedule 'warmup_cosine': warmup_steps ({opts['warmup_steps']}) must be less than "
            f"decay_steps ({opts['decay_steps']}), which counts the warmup"
        )
    return build(learning_rate, **opts)


# --- optimizers --------------------------------------------------------------

# name -> (builder taking learning_rate and the options, option defaults)
_OPTIMIZERS: dict[str, tuple[Callable[..., optax.GradientTransformation], dict[str, Any]]] = {
    "sgd": (optax.sgd, {}),
    "momentum": (optax.sgd, {"momentum": 0.9}),
    "nesterov": (functools.partial(optax.sgd, nesterov=True), {"momentum": 0.9}),
    "adam": (optax.adam, {"b1": 0.9, "b2": 0.999, "eps": 1e-8}),
    "adamw": (optax.adamw, {"b1": 0.9, "b2": 0.999, "eps": 1e-8}),
    "rmsprop": (optax.rmsprop, {"decay": 0.9, "eps": 1e-8}),
    "rprop": (rprop, _RPROP_DEFAULTS),
}

FIRST_ORDER_NAMES: tuple[str, ...] = tuple(_OPTIMIZERS)
COMMON_OPTIONS: tuple[str, ...] = ("schedule", "clip_value", "clip_norm", "weight_decay")


def first_order_options(name: str) -> dict[str, Any]:
    """Optimizer ``name``'s own options with their defaults (``COMMON_OPTIONS`` besides)."""
    return dict(_OPTIMIZERS[name][1])


ADAMW_WEIGHT_DECAY = 1e-4  # optax.adamw's default: adamw without decay would be adam


def transformation(
    name: str,
    learning_rate: float,
    *,
    schedule: str | Mapping[str, Any] | None = None,
    clip_value: float | None = None,
    clip_norm: float | None = None,
    weight_decay: float | None = None,
    **options: Any,
) -> optax.GradientTransformation:
    """Returns optimizer ``name`` (one of ``FIRST_ORDER_NAMES``), chained with clipping and
    weight decay.

    Options beside the common ones, with their defaults: ``momentum``/``nesterov``:
    ``momentum=0.9``; ``adam``/``adamw``: ``b1=0.9, b2=0.999, eps=1e-8``;
    ``rmsprop``: ``decay=0.9, eps=1e-8``; ``rprop``: those of :func:`rprop`.

    Args:
      name: optimizer name.
      learning_rate: the learning rate, or the initial value of ``schedule``.
      schedule: a schedule name, or a mapping ``{"name": ..., **options}`` for
        :func:`schedule`; ``None`` keeps the learning rate constant.
      clip_value: clip every gradient element to ``[-clip_value, clip_value]``.
      clip_norm: rescale the gradient to global norm at most ``clip_norm``.
      weight_decay: add ``weight_decay * params`` to the gradient (default 0); decoupled
        for ``adamw`` (default 1e-4, ``optax.adamw``'s).
      **options: the optimizer's own options.

    Raises:
      ValueError: an unknown option, or a bad value; the message names it.
    """
    build, defaults = _OPTIMIZERS[name]
    _check("learning_rate", learning_rate)
    opts = _options(f"optimizer {name!r}", defaults, options, COMMON_OPTIONS)
    if weight_decay is None:
        weight_decay = ADAMW_WEIGHT_DECAY if name == "adamw" else 0.0
    _check("weight_decay", weight_decay)
    chain = []
    if clip_value is not None:
        _check("clip_value", clip_value)
        chain.append(optax.clip(clip_value))
    if clip_norm is not None:
        _check("clip_norm", clip_norm)
        chain.append(optax.clip_by_global_norm(clip_norm))
    if name == "adamw":
        opts["weight_decay"] = weight_decay
    elif weight_decay:
        chain.append(optax.add_decayed_weights(weight_decay))
    if schedule is not None:
        if name == "rprop":
            raise ValueError(
                "schedule: rprop takes none (its learning_rate is only the initial step size)"
            )
        learning_rate = _schedule_from(schedule, learning_rate)
    return optax.chain(*chain, build(learning_rate, **opts))


def _schedule_from(config: str | Mapping[str, Any], learning_rate: float) -> optax.Schedule:
    if isinstance(config, str):
        return schedule(config, learning_rate)
    if not isinstance(config, Mapping) or "name" not in config:
        raise ValueError(
            "schedule must be a name or a mapping with key 'name' "
            f"(one of {', '.join(SCHEDULE_NAMES)}), got {config!r}"
        )
    options = dict(config)
    if "learning_rate" in options:
        raise ValueError(
            "schedule: takes no 'learning_rate'; the optimizer's learning_rate is its initial value"
        )
    return schedule(options.pop("name"), learning_rate, **options)
