"""Every optimizer option's valid values, checked in Python before anything is traced."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple


class _Rule(NamedTuple):
    kind: type
    ok: Callable[[Any], bool]
    valid: str


def _one_of(*names: str) -> _Rule:
    return _Rule(str, lambda v: v in names, "one of " + ", ".join(repr(n) for n in names))


_FRACTION = _Rule(numbers.Real, lambda v: 0 <= v < 1, "a number in [0, 1)")
_OPEN_FRACTION = _Rule(numbers.Real, lambda v: 0 < v < 1, "a number in (0, 1)")
_NON_NEGATIVE = _Rule(numbers.Real, lambda v: 0 <= v < math.inf, "a finite number >= 0")
_POSITIVE = _Rule(numbers.Real, lambda v: 0 < v < math.inf, "a finite number > 0")
_ABOVE_ONE = _Rule(numbers.Real, lambda v: 1 < v < math.inf, "a finite number > 1")
# Counted on the device in int32.
_STEPS = _Rule(
    numbers.Integral, lambda v: 0 < v <= 2**31 - 1, "a positive integer (at most 2**31 - 1)"
)

_RULES: dict[str, _Rule] = {
    **dict.fromkeys(("learning_rate", "weight_decay", "eps", "min_step_size"), _NON_NEGATIVE),
    **dict.fromkeys(("tol", "loss_tol"), _NON_NEGATIVE),
    **dict.fromkeys(("clip_value", "clip_norm", "max_step_size"), _POSITIVE),
    **dict.fromkeys(("damping", "max_damping"), _POSITIVE),
    **dict.fromkeys(("momentum", "b1", "b2", "decay", "warm_start"), _FRACTION),
    **dict.fromkeys(("every", "decay_steps", "warmup_steps"), _STEPS),
    **dict.fromkeys(("memory_size", "max_linesearch_steps", "cg_iterations"), _STEPS),
    "max_evaluations": _STEPS,
    **dict.fromkeys(("eta_minus", "damping_decrease"), _OPEN_FRACTION),
    **dict.fromkeys(("eta_plus", "damping_increase"), _ABOVE_ONE),
    "gamma": _Rule(numbers.Real, lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "alpha": _Rule(numbers.Real, lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    "solve": _one_of("auto", "dense", "cg"),
    "curvature": _one_of("gauss_newton", "hessian"),
}


def check(key: str, value: Any) -> None:
    """Refuses (``ValueError``, naming ``key`` and what is valid) a bad option value."""
    kind, ok, valid = _RULES[key]
    # bool is an Integral; NaN fails every comparison in `ok`.
    if isinstance(value, bool) or not isinstance(value, kind) or not ok(value):
        raise ValueError(f"{key} must be {valid}, got {value!r}")


def options(
    what: str,
    defaults: Mapping[str, Any],
    given: Mapping[str, Any],
    common: tuple[str, ...] = (),
    unset: tuple[str, ...] = (),
) -> dict[str, Any]:
    """``defaults`` updated by ``given``; unknown, missing (a ``None`` default, except the
    keys in ``unset``, for which ``None`` means "no limit") or bad keys raise."""
    for key in given:
        if key not in defaults:
            valid = ", ".join((*defaults, *common)) or "none"
            raise ValueError(f"unknown option {key!r} for {what}; valid options: {valid}")
    for key, default in defaults.items():
        if default is None and key not in given and key not in unset:
            raise ValueError(f"{what} needs option {key!r}")
    chosen = {**defaults, **given}
    for key, value in chosen.items():
        if not (value is None and key in unset):
            check(key, value)
    return chosen
