"""Gradient checks that say where a gradient is wrong.

Every check compares a hand-written derivative ("candidate") with autodiff and
with central finite differences in float64, and returns a ``GradientReport``: one
row per leaf and pair of methods, with the worst index and both values there.

The pieces, one module each: the report and its thresholds (``_report``), the
options every check takes (``_options``), the finite-difference kernels
(``_finite_differences``: how the differences are taken, kinks and rounding), the
comparison that turns candidates and differences into rows (``_compare``), and
the checks themselves (``_checks``).
"""

from funcbp.gradcheck._checks import check_grad, check_gradients, check_hvp, check_vjp
from funcbp.gradcheck._options import DEFAULT_MAX_ELEMENTWISE, DEFAULT_STEP, CheckOptions
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
    "ROUNDING_MARGIN",
    "TOLERANCES",
    "CheckOptions",
    "ErrorStats",
    "GradientReport",
    "Row",
    "check_grad",
    "check_gradients",
    "check_hvp",
    "check_vjp",
]
