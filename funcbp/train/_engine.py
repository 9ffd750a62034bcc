"""Engines: what computes a training step's gradient, by name or as a learning rule.

``"backprop"`` is the hand-derived pass, ``"autodiff"`` ``jax.grad`` of the loss; a name
of ``funcbp.rules.NAMES`` or a rule itself (a ``funcbp.BackwardRule`` or
``funcbp.rules.LearningRule``) trains by that rule, its state in ``TrainState.rule_state``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from funcbp import rules as _rules
from funcbp.backprop import BACKPROP, backprop_with_cache
from funcbp.mlp import MLP

Array = jax.Array
Params = list[dict[str, Array]]
ENGINES = ("backprop", "autodiff")  # the exact engines; funcbp.rules.NAMES name the others
Engine = str | _rules.Rule


def check_engine(engine: Any) -> Engine:
    """``engine`` as training uses it: one of ``ENGINES``, or a hashable rule (a name of
    ``funcbp.rules.NAMES`` becomes its rule with default options; ``BACKPROP`` itself is
    ``"backprop"``); refused (``ValueError``, listing the valid names) otherwise."""
    if _rules.is_rule(engine):
        return "backprop" if engine == BACKPROP else engine  # BACKPROP is the named engine
    if isinstance(engine, str) and engine in _rules.NAMES:
        return _rules.make(engine)
    if not isinstance(engine, str) or engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join((*ENGINES, *_rules.NAMES))}, or a "
                         f"funcbp.BackwardRule or funcbp.rules.LearningRule, got "
                         f"{engine!r}")  # fmt: skip
    return engine


def rule_of(engine: Engine) -> _rules.Rule:
    """The rule an engine trains by: itself, or ``BACKPROP`` for the exact engines."""
    return engine if _rules.is_rule(engine) else BACKPROP


def gradient(net: MLP, engine: Engine) -> Callable[..., tuple[Array, Params]]:
    """``(state, x, y, extras) -> (loss, grads)`` by ``engine`` at ``state.params`` (a
    ``TrainState``); ``extras``: the ``sample_weight`` and dropout ``key`` keywords, only
    those given."""
    if engine == "backprop":
        return lambda state, x, y, extras: net.backprop(state.params, x, y, **extras)
    if engine == "autodiff":
        return lambda state, x, y, extras: net.autodiff(state.params, x, y, **extras)

    def by_rule(state, x: Array, y: Array, extras: dict):  # state: a TrainState
        net.check_call(state.params, x, y, extras.get("sample_weight"), extras.get("key"))
        if isinstance(engine, _rules.LearningRule):
            return engine.gradient(net, state.params, state.rule_state, x, y, **extras)
        result, _ = backprop_with_cache(net, state.params, x, y, rule=engine,
                                        rule_state=state.rule_state, **extras)  # fmt: skip
        return result.loss, result.grads

    return by_rule
