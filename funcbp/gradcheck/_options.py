"""``CheckOptions``: how every gradient check takes its finite differences."""

from __future__ import annotations

import dataclasses
import math
import numbers

import jax

from funcbp.mlp import check_key

MODES = ("auto", "elementwise", "directional")
DEFAULT_STEP = 1e-4  # relative: h_i = step * max(1, |theta_i|)
DEFAULT_MAX_ELEMENTWISE = 20_000


@dataclasses.dataclass(frozen=True)
class CheckOptions:
    """Options shared by ``check_gradients``, ``check_grad``, ``check_vjp`` and ``check_hvp``.

    Each check takes ``options=CheckOptions(...)`` and/or these fields as keywords
    (``check_gradients(net, params, x, y, mode="elementwise")``); keywords override
    the fields of ``options``.

    Attributes:
      mode: ``"auto"``, ``"elementwise"`` (every scalar perturbed) or ``"directional"``
        (``directions`` random unit directions inside each leaf).
      step: relative finite-difference step: ``h_i = step * max(1, |theta_i|)``
        (directional and Hessian-vector: ``max(1, rms(theta))``).
      directions: random directions per leaf in directional mode.
      max_elementwise: ``"auto"`` goes directional above this many parameters.
      chunk: perturbations evaluated together (``vmap``) in elementwise mode.
      key: ``jax.random.key`` for the random directions, cotangents and vectors
        (``None``: ``jax.random.key(0)``, so a check repeats exactly).
    """

    mode: str = "auto"
    step: float = DEFAULT_STEP
    directions: int = 8
    max_elementwise: int = DEFAULT_MAX_ELEMENTWISE
    chunk: int = 256
    key: jax.Array | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            valid = ", ".join(repr(m) for m in MODES)
            raise ValueError(f"CheckOptions.mode must be one of {valid}, got {self.mode!r}")
        # bool is an Integral; NaN fails every comparison.
        if (
            isinstance(self.step, bool)
            or not isinstance(self.step, numbers.Real)
            or not 0 < self.step < math.inf
        ):
            raise ValueError(f"CheckOptions.step must be a finite number > 0, got {self.step!r}")
        for name in ("directions", "max_elementwise", "chunk"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"CheckOptions.{name} must be a positive integer, got {value!r}")
        if self.key is not None:
            try:
                check_key(self.key)
            except ValueError as err:
                raise ValueError(f"CheckOptions.{err}; or None for jax.random.key(0)") from None

    def mode_for(self, size: int) -> str:
        """``"elementwise"`` or ``"directional"`` for ``size`` parameters."""
        if self.mode != "auto":
            return self.mode
        return "elementwise" if size <= self.max_elementwise else "directional"

    def random_key(self) -> jax.Array:
        return jax.random.key(0) if self.key is None else self.key
