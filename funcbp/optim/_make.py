"""``make``: any optimizer by name, a first-order optax transformation or a full-batch solver."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optax

from funcbp.optim import _first_order
from funcbp.optim._checks import options as _options
from funcbp.optim._first_order import FIRST_ORDER_NAMES
from funcbp.optim._full_batch import COMMON_SOLVER_OPTIONS, Solver
from funcbp.optim._lbfgs import DEFAULTS as _LBFGS
from funcbp.optim._lbfgs import lbfgs
from funcbp.optim._levenberg_marquardt import DEFAULTS as _LM
from funcbp.optim._levenberg_marquardt import levenberg_marquardt
from funcbp.optim._newton_cg import DEFAULTS as _NEWTON_CG
from funcbp.optim._newton_cg import newton_cg

_SOLVERS = {
    "lbfgs": (lbfgs, _LBFGS),
    "levenberg_marquardt": (levenberg_marquardt, _LM),
    "newton_cg": (newton_cg, _NEWTON_CG),
}

SOLVER_NAMES: tuple[str, ...] = tuple(_SOLVERS)
NAMES: tuple[str, ...] = (*FIRST_ORDER_NAMES, *SOLVER_NAMES)
DEFAULT_LEARNING_RATE = 1e-3  # a run file's, where a first-order optimizer names none


def options_of(name: str) -> dict[str, Any]:
    """Optimizer ``name``'s own options with their defaults (a first-order one also takes
    ``COMMON_OPTIONS``; a solver's include its stopping rules, ``None``: no limit)."""
    _check_name(name)
    if name in _SOLVERS:
        return {**_SOLVERS[name][1], **COMMON_SOLVER_OPTIONS}
    return _first_order.first_order_options(name)


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or name not in NAMES:
        raise ValueError(f"unknown optimizer {name!r}; valid names: {', '.join(NAMES)}")


def make(
    name: str, learning_rate: float | None = None, **options: Any
) -> optax.GradientTransformation | Solver:
    """Returns optimizer ``name`` (one of ``NAMES``).

    A first-order one (``FIRST_ORDER_NAMES``) is an optax ``GradientTransformation``
    and needs ``learning_rate``; its options are ``transformation``'s (``schedule``,
    ``clip_value``, ``clip_norm``, ``weight_decay`` and its own). A full-batch solver
    (``SOLVER_NAMES``: ``"lbfgs"``, ``"levenberg_marquardt"``, ``"newton_cg"``) is a
    ``Solver``, for ``fit`` with ``batch_size=None``; its line search or damping sets
    the step, so it takes no ``learning_rate``. Its options, with their defaults:

    * every solver: ``tol=1e-5`` (stop when the gradient's largest element is at most
      this), ``loss_tol=2.2e-9`` (stop when an accepted step changes the loss by at
      most this, relative), ``max_evaluations=None`` (a cap on function evaluations);
    * ``lbfgs``: ``memory_size=10``, ``max_linesearch_steps=20``;
    * ``levenberg_marquardt``: ``damping=1e-3`` (trainlm's ``mu``),
      ``damping_decrease=0.1``, ``damping_increase=10``, ``max_damping=1e10``,
      ``solve="auto"`` (``"dense"`` or ``"cg"``), ``cg_iterations=100``;
    * ``newton_cg``: ``curvature="gauss_newton"`` (or ``"hessian"``), ``damping=1e-3``,
      ``max_damping=1e10``, ``cg_iterations=50``, ``warm_start=0.95``.

    Raises:
      ValueError: unknown name or option, a bad value, or a learning rate missing or
        given where it has no use; the message names it.
    """
    _check_name(name)
    if name in FIRST_ORDER_NAMES:
        if learning_rate is None:
            raise ValueError(f"optimizer {name!r} needs a learning_rate")
        return _first_order.transformation(name, learning_rate, **options)
    if learning_rate is not None:
        raise ValueError(
            f"learning_rate: optimizer {name!r} takes none (its "
            f"{'line search' if name == 'lbfgs' else 'damping'} sets the step); leave it out"
        )
    build, defaults = _SOLVERS[name]
    return build(_options(f"optimizer {name!r}", {**defaults, **COMMON_SOLVER_OPTIONS}, options,
                          unset=("max_evaluations",)))  # fmt: skip


def from_config(config: Mapping[str, Any]) -> optax.GradientTransformation | Solver:
    """``make`` from one dict: ``{"name": ..., "learning_rate": ..., **options}``.

    Example: ``{"name": "adam", "learning_rate": 1e-3, "clip_norm": 1.0,
    "schedule": {"name": "cosine", "decay_steps": 10_000}}``, or ``{"name": "lbfgs"}``.

    Raises:
      ValueError: the name is missing, or as :func:`make`.
    """
    if not isinstance(config, Mapping):
        raise ValueError(f"optimizer config must be a mapping, got {type(config).__name__}")
    options = dict(config)
    if "name" not in options:
        raise ValueError(f"optimizer config needs key 'name'; it has {sorted(options)}")
    name = options.pop("name")
    if name in FIRST_ORDER_NAMES and "learning_rate" not in options:
        raise ValueError(f"optimizer config needs key 'learning_rate'; it has {sorted(config)}")
    return make(name, options.pop("learning_rate", None), **options)
