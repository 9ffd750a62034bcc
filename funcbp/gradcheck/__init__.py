"""Gradient checks that say where a gradient is wrong.

Every check compares a hand-written derivative ("candidate") with autodiff and
with central finite differences in float64, and returns a ``GradientReport``: one
row per leaf and pair of methods, with the worst index and both values there.

The pieces, one module each: the report and its thresholds (``_report``), the
options every check takes (``_options``), the finite-difference kernels
(``_finite_differences``: how the differences are taken, kinks and rounding), the
comparison that turns candidates and differences into rows (``_compare``), and
the checks themselves (``_checks``). The pieces on their own, an activation's
``grad`` or a cost's ``output_delta`` against ``jax.grad`` point by point:
``check_activation`` and ``check_cost`` (``_pieces``), reported as a ``PieceReport``
(``_pieces_report``).
"""

from funcbp.gradcheck._checks import check_grad, check_gradients, check_hvp, check_vjp
from funcbp.gradcheck._options import DEFAULT_MAX_ELEMENTWISE, DEFAULT_STEP, CheckOptions
from funcbp.gradcheck._pieces import check_activation, check_cost
from funcbp.gradcheck._pieces_report import PIECE_ULPS, PieceReport, PieceRow
from funcbp.gradcheck._report import (
    FD,
    FD_NOISE,
    KINK_NOISE,
    ROUNDING_MARGIN,
    TOLERANCES,
    ErrorStats,
    GradientReport,
    Row,
)

__all__ = [
    "DEFAULT_MAX_ELEMENTWISE",
    "DEFAULT_STEP",
    "FD",
    "FD_NOISE",
    "KINK_NOISE",
    "PIECE_ULPS",
    "ROUNDING_MARGIN",
    "TOLERANCES",
    "CheckOptions",
    "ErrorStats",
    "GradientReport",
    "PieceReport",
    "PieceRow",
    "Row",
    "check_activation",
    "check_cost",
    "check_grad",
    "check_gradients",
    "check_hvp",
    "check_vjp",
]
