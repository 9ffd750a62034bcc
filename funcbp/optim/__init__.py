"""Optimizers by name: first-order optax transformations and full-batch solvers.

``make(name, learning_rate, **options)`` builds one of ``NAMES``:

* first-order (``FIRST_ORDER_NAMES``: sgd, momentum, nesterov, adam, adamw, rmsprop,
  rprop): an optax ``GradientTransformation``, chained with clipping and weight decay
  (``funcbp.optim._first_order``), with ``schedule`` for its learning rate;
* full-batch solvers (``SOLVER_NAMES``): ``"lbfgs"`` (optax's, with a rejected step
  never taken), ``"levenberg_marquardt"`` (trainlm's damping on the Gauss-Newton
  matrix) and ``"newton_cg"`` (Hessian-free, Martens 2010): a ``Solver`` that
  ``funcbp.fit`` runs one iteration per epoch on the whole training set, on the
  hand-derived gradient and curvature products of ``funcbp.curvature``.

``from_config`` takes the same keys as one plain dict. Every name and value is checked
in Python, before anything is traced, and a bad one raises ``ValueError`` naming it.
"""

from funcbp.optim._first_order import (
    ADAMW_WEIGHT_DECAY,
    COMMON_OPTIONS,
    FIRST_ORDER_NAMES,
    SCHEDULE_NAMES,
    RpropState,
    rprop,
    schedule,
    transformation,
)
from funcbp.optim._full_batch import (
    STOP_REASONS,
    Objective,
    Solver,
    SolverState,
    is_solver,
    objective,
    stop_reason,
    stop_warning,
)
from funcbp.optim._make import (
    DEFAULT_LEARNING_RATE,
    NAMES,
    SOLVER_NAMES,
    from_config,
    make,
    options_of,
)

__all__ = [
    "ADAMW_WEIGHT_DECAY",
    "COMMON_OPTIONS",
    "DEFAULT_LEARNING_RATE",
    "FIRST_ORDER_NAMES",
    "NAMES",
    "SCHEDULE_NAMES",
    "SOLVER_NAMES",
    "STOP_REASONS",
    "Objective",
    "RpropState",
    "Solver",
    "SolverState",
    "from_config",
    "is_solver",
    "make",
    "objective",
    "options_of",
    "rprop",
    "schedule",
    "stop_reason",
    "stop_warning",
    "transformation",
]
