"""``LearningRule``: a rule that computes its own weight update, without a feedback matrix."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import jax

from funcbp.backprop import BackwardRule, Network, Params, RuleState

Array = jax.Array


# A rule without state: BackwardRule's defaults, shared, so that has_state tells either kind.
_NO_STATE = BackwardRule._field_defaults["init"]
_SAME_STATE = BackwardRule._field_defaults["update"]


class LearningRule(NamedTuple):
    """A learning rule that replaces the whole backward pass (predictive coding, forward
    gradients), where a ``funcbp.BackwardRule`` replaces only ``W_l^T`` in it.

    Hashable (static under ``jit``) when its functions are. Its state is a pytree that
    ``funcbp.train`` keeps in ``TrainState.rule_state``, checkpoints and replicates
    over devices, as a ``BackwardRule``'s.

    Attributes:
      name: how reports and checkpoints name the rule.
      gradient: ``(net, params, state, x, y, sample_weight, key) -> (loss, update)``:
        the loss of the feedforward pass (l2 included) and the rule's estimate of
        ``dLoss/dparams`` (the structure and dtypes of ``params``), which the optimizer
        then takes as it takes a gradient. ``sample_weight`` ``[batch]`` and the
        dropout ``key`` may be ``None``.
      init: ``(key, net, params) -> state``; default ``()``. It also refuses
        (``ValueError``) a network the rule cannot train.
      update: ``(state, params before, params after) -> state``, after each optimizer
        step; default: unchanged.
    """

    name: str
    gradient: Callable[..., tuple[Array, Params]]
    init: Callable[[Array, Network, Params], RuleState] = _NO_STATE
    update: Callable[[RuleState, Params, Params], RuleState] = _SAME_STATE


Rule = BackwardRule | LearningRule


def is_rule(value: Any) -> bool:
    """Whether ``value`` is a ``BackwardRule`` or a ``LearningRule``."""
    return isinstance(value, BackwardRule | LearningRule)


def has_state(rule: Rule) -> bool:
    """Whether ``rule`` keeps a state of its own (its ``init`` is not the stateless default)."""
    return rule.init is not _NO_STATE


def cached_rule(factory: Callable[..., Rule]) -> Callable[..., Rule]:
    """``factory`` whose equal options, however passed, give the very same rule: a rule is
    static under ``jit``, so equal ones reuse the compiled programs. Options of other
    types (``0`` and ``False``) are other keys, so the factory validates each."""
    signature = inspect.signature(factory)
    made: dict[tuple, Rule] = {}

    @functools.wraps(factory)
    def make(*args: Any, **kwargs: Any) -> Rule:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        key = tuple((type(v), v) for v in bound.arguments.values())
        try:
            hash(key)
        except TypeError:  # an unhashable value: the factory says what is wrong with it
            return factory(**bound.arguments)
        if key not in made:
            made[key] = factory(**bound.arguments)
        return made[key]

    return make
