"""Learning rules beyond backprop, each an engine of ``funcbp.fit`` measured against the
exact gradient.

A rule is either a ``funcbp.BackwardRule`` (the hand-derived backward pass with another
matrix than ``W_l^T`` carrying the error back) or a ``LearningRule`` (its own update,
in place of the backward pass). Select one by name, ``fit(..., engine="kolen_pollack")``
(``train.engine`` in a run file, its options in a ``[rule]`` table), or by value with
its options, ``fit(..., engine=funcbp.rules.make("kolen_pollack", decay=0.05))``::

    feedback_alignment          fixed random B_l                        (_feedback)
    direct_feedback_alignment   fixed random D_l from the output        (_feedback)
    sign_symmetry               B_l = sign(W_l)^T * M_l   magnitude     (_feedback)
    kolen_pollack               B_l learns W_l^T          decay         (_feedback)
    predictive_coding           relaxed prediction errors steps, step_size,
                                                          fixed_prediction (_predictive_coding)
    forward_gradient            (grad . v) v by jax.jvp   directions    (_forward_gradient)

Each module states its rule's update in matrix form with the paper it follows. With
``diagnostics_every``, training measures every layer's update against the exact
gradient inside the same compiled step (``funcbp.diagnostics``' alignment statistics).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from funcbp.backprop import BACKPROP, BackwardRule
from funcbp.rules._feedback import (
    direct_feedback_alignment,
    feedback_alignment,
    kolen_pollack,
    sign_symmetry,
)
from funcbp.rules._forward_gradient import forward_gradient
from funcbp.rules._learning_rule import LearningRule, Rule, has_state, is_rule
from funcbp.rules._predictive_coding import predictive_coding

_FACTORIES: dict[str, Callable[..., Rule]] = {
    "feedback_alignment": feedback_alignment,
    "direct_feedback_alignment": direct_feedback_alignment,
    "sign_symmetry": sign_symmetry,
    "kolen_pollack": kolen_pollack,
    "predictive_coding": predictive_coding,
    "forward_gradient": forward_gradient,
}
NAMES: tuple[str, ...] = tuple(_FACTORIES)


def options_of(name: str) -> dict[str, Any]:
    """The options of rule ``name`` with their defaults (``{}`` for ``"backprop"``)."""
    if name == "backprop":
        return {}
    check_name(name)
    parameters = inspect.signature(_FACTORIES[name]).parameters.values()
    return {p.name: p.default for p in parameters}


def check_name(name: Any) -> None:
    """Refuses (``ValueError``, listing the valid names) a name that is not a rule's."""
    if name != "backprop" and name not in _FACTORIES:
        raise ValueError(f"unknown learning rule {name!r}; valid rules: backprop, "
                         f"{', '.join(NAMES)}")  # fmt: skip


def make(name: str, **options: Any) -> Rule:
    """The rule ``name`` with ``options`` (each rule's own; ``options_of`` lists them).

    The same name and options give the same (hashable) rule, so the compiled training
    programs are reused. ``"backprop"`` is ``funcbp.BACKPROP``. Refuses (``ValueError``)
    an unknown name, an option of another rule, or a bad value, naming it.
    """
    check_name(name)
    valid = options_of(name)
    for option in options:
        if option not in valid:
            owners = [rule for rule in NAMES if option in options_of(rule)]
            belongs = f"; it is an option of {', '.join(owners)}" if owners else ""
            has = ", ".join(valid) if valid else "none"
            raise ValueError(f"{option!r} is not an option of rule {name!r} (its options: "
                             f"{has}){belongs}")  # fmt: skip
    return BACKPROP if name == "backprop" else _FACTORIES[name](**options)


__all__ = [
    "NAMES",
    "BackwardRule",
    "LearningRule",
    "Rule",
    "check_name",
    "direct_feedback_alignment",
    "feedback_alignment",
    "forward_gradient",
    "has_state",
    "is_rule",
    "kolen_pollack",
    "make",
    "options_of",
    "predictive_coding",
    "sign_symmetry",
]
