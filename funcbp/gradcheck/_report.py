"""The report of a gradient check: one ``Row`` per leaf and pair of methods, and its table.

Error measure and thresholds (``TOLERANCES``): a leaf's error is normwise,
``max|a - b| / max|b|`` (directional: ``max |<a - b, v>| / (||b||_2 / sqrt(n))``, the
typical size of ``<b, v>`` for a random unit ``v`` in a leaf of ``n`` elements), with the
reference ``b`` the autodiff or finite-difference value in float64. Each pair is
judged twice: with the candidate evaluated in float64, against the float64
threshold of its kind (analytic pair: 1e-9, one side finite differences: 1e-6),
and with the candidate in the caller's dtype, against that dtype's rounding
threshold (float32: 1e-4, float16: 5e-3, bfloat16: 3e-2), or ``ROUNDING_MARGIN`` (10)
times the error autodiff itself makes in that dtype, where that is larger (saturated
units amplify rounding for both). An error in float64 is a bug; one in the caller's
dtype beyond both is a formula that loses more to rounding than autodiff does.
"""

from __future__ import annotations

import dataclasses
from typing import Any

TOLERANCES: dict[str, float] = {
    "analytic": 1e-9,  # two exact derivatives in float64: only summation order differs
    "finite_difference": 1e-6,  # Richardson error ~1e-12, with margin for ill-conditioned leaves
    "float64": 1e-9,
    "float32": 1e-4,  # eps = 1.2e-7, times depth and sqrt(width) of the sums
    "float16": 5e-3,  # eps = 9.8e-4
    "bfloat16": 3e-2,  # eps = 7.8e-3
}
# Finite differences cannot resolve less than f's own rounding over the step, u |f| / h
# (u: float64's epsilon). Measured in smooth networks: the extrapolated difference errs by
# at most 2.7 such units, the kink statistic by at most 9; these allow for several times that.
FD_NOISE = 32.0
KINK_NOISE = 64.0
ROUNDING_MARGIN = 10.0  # caller's dtype: a candidate may err this many times the reference
FD = "finite differences"


@dataclasses.dataclass(frozen=True)
class ErrorStats:
    """The error of one leaf for one pair of methods.

    Attributes:
      max_abs: ``max |a - b|``.
      max_rel: normwise relative error, ``max |a - b| / max |b|``.
      index: the worst element (``None`` in directional mode).
      value: ``a`` there (directional: the worst directional derivative).
      reference: ``b`` there.
    """

    max_abs: float
    max_rel: float
    index: tuple[int, ...] | None
    value: float
    reference: float


@dataclasses.dataclass(frozen=True)
class Row:
    """One leaf, one pair of methods (``method`` against ``reference``)."""

    path: str
    method: str
    reference: str
    error: ErrorStats  # the method evaluated in the caller's dtype
    error64: ErrorStats  # the method evaluated in float64
    tolerance: float  # for ``error``
    tolerance64: float  # for ``error64``
    kinks: int  # elements (directions) left out as kinks

    @property
    def ok(self) -> bool:
        return self.error64.max_rel <= self.tolerance64 and self.error.max_rel <= self.tolerance

    @property
    def unresolved(self) -> bool:
        """Finite differences' rounding noise is as large as this leaf's gradient: they
        cannot judge it (only the analytic comparison can)."""
        return self.reference == FD and self.tolerance64 >= 1.0

    @property
    def badness(self) -> float:
        """The larger of the two errors, in units of its tolerance (> 1: the row fails)."""
        return max(self.error.max_rel / self.tolerance, self.error64.max_rel / self.tolerance64)


@dataclasses.dataclass(frozen=True)
class GradientReport:
    """The outcome of a gradient check; ``print(report)`` shows a table."""

    title: str
    mode: str
    dtype: str
    step: float
    rows: tuple[Row, ...]
    evaluations: int

    @property
    def ok(self) -> bool:
        return all(row.ok for row in self.rows)

    @property
    def failures(self) -> tuple[Row, ...]:
        return tuple(row for row in self.rows if not row.ok)

    @property
    def kinks(self) -> int:
        """Elements (or directions) excluded as kinks, counted once per leaf."""
        return sum({row.path: row.kinks for row in self.rows}.values())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of everything in the report."""
        return {
            "title": self.title,
            "ok": self.ok,
            "mode": self.mode,
            "dtype": self.dtype,
            "step": self.step,
            "evaluations": self.evaluations,
            "kinks": self.kinks,
            "tolerances": dict(TOLERANCES),
            "rows": [{**dataclasses.asdict(row), "ok": row.ok} for row in self.rows],
        }

    def __str__(self) -> str:
        header = (
            "leaf",
            "method",
            "vs",
            "rel err",
            "rel err f64",
            "abs err",
            "worst at",
            "value",
            "reference",
            "kinks",
            "",
        )
        lines = [header]
        for row in self.rows:
            e, e64 = row.error, row.error64
            worst = e if e.max_rel / row.tolerance >= e64.max_rel / row.tolerance64 else e64
            lines.append(
                (
                    row.path or "<root>",
                    row.method,
                    row.reference,
                    f"{e.max_rel:.2e}",
                    f"{e64.max_rel:.2e}",
                    f"{worst.max_abs:.2e}",
                    "-" if worst.index is None else str(list(worst.index)),
                    f"{worst.value:.6g}",
                    f"{worst.reference:.6g}",
                    str(row.kinks) if row.reference == FD else "",
                    ("ok~" if row.unresolved else "ok") if row.ok else "FAIL",
                )
            )
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        table = [
            "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
            for line in lines
        ]
        table.insert(1, "-" * len(table[0]))
        verdict = "PASS" if self.ok else f"FAIL ({len(self.failures)} of {len(self.rows)} rows)"
        tol = TOLERANCES
        notes = [
            f"{self.title}: {verdict}",
            f"mode {self.mode}, caller dtype {self.dtype}, {self.evaluations} "
            f"{'gradient' if self.mode == 'hessian-vector' else 'function'} evaluations; "
            f"finite differences in float64 with step {self.step:g} * max(1, "
            f"{'|x_i|' if self.mode == 'elementwise' else 'rms(x)'}), Richardson-extrapolated",
            f"thresholds: analytic pairs {tol['analytic']:g}, vs finite differences "
            f"{tol['finite_difference']:g} plus their rounding noise (float64); caller dtype "
            f"{tol.get(self.dtype, 0):g}, or {ROUNDING_MARGIN:g}x autodiff's own error there",
        ]
        if self.kinks:
            notes.append(f"{self.kinks} element(s) excluded: finite differences cross a kink there")
        if any(row.unresolved for row in self.rows):
            notes.append(
                "ok~: a gradient below what finite differences resolve (the loss's rounding "
                "over the step); only the analytic comparison judges it"
            )
        return "\n".join([*notes, "", *table])


def worst_of(reports: list[GradientReport], note: str) -> GradientReport:
    """One report holding, for every row, its worst instance across ``reports``."""
    rows = tuple(
        max(group, key=lambda row: row.badness)
        for group in zip(*(r.rows for r in reports), strict=True)
    )
    first = reports[0]
    return dataclasses.replace(
        first,
        title=f"{first.title} ({note})",
        rows=rows,
        evaluations=sum(r.evaluations for r in reports),
    )
