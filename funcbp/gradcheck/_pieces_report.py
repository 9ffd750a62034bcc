"""The report of ``check_activation`` / ``check_cost``: one ``PieceRow`` per check and dtype.

Each row compares a hand-derived value with its reference (``jax.grad`` in the same
dtype; for row separability, the mean of the rows' own losses) point by point, and
keeps the worst point: where ``|value - reference|`` is largest in units of the
tolerance allowed there, ``PIECE_ULPS * eps * (|reference| + scale)`` (see ``_pieces``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

# Rounding allowance, in epsilons of the dtype compared: the built-ins differ from
# jax.grad by at most ~6 (gelu_tanh in float32, cancelling O(1) terms in its tail), a
# batch mean from the mean of its rows by at most ~2; 64 leaves a margin of 10 or more,
# while a wrong factor, sign or term errs by far more than 64 epsilons.
PIECE_ULPS = 64.0


@dataclasses.dataclass(frozen=True)
class PieceRow:
    """One check in one dtype, at its worst point.

    Attributes:
      check: what is compared (``"f'(z) vs jax.grad"``, ``"row separability"``, ...).
      dtype: the dtype both sides were evaluated in.
      points: the number of points (elements) compared.
      at: the worst point (``"z = 88.72"``, ``"draw 1 [3, 2]"``).
      value: the hand-derived value there.
      reference: the reference there.
      error: ``|value - reference|`` there (``inf`` where only ``value`` is not finite).
      tolerance: the error allowed there.
      unjudged: points where the reference alone is not finite, left out.
      failed: points beyond their tolerance.
    """

    check: str
    dtype: str
    points: int
    at: str
    value: float
    reference: float
    error: float
    tolerance: float
    unjudged: int = 0
    failed: int = 0

    @property
    def ok(self) -> bool:
        return self.error <= self.tolerance  # False for a NaN error


@dataclasses.dataclass(frozen=True)
class PieceReport:
    """The outcome of ``check_activation`` or ``check_cost``; ``print(report)`` shows a table.

    Attributes:
      title: what was checked.
      rows: one per check and dtype.
      kinks: the declared kinks, left out of the grid (activations; empty for costs).
      notes: how the points were drawn and judged, one line each.
    """

    title: str
    rows: tuple[PieceRow, ...]
    kinks: tuple[float, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return all(row.ok for row in self.rows)

    @property
    def failures(self) -> tuple[PieceRow, ...]:
        return tuple(row for row in self.rows if not row.ok)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of everything in the report (non-finite floats as strings)."""
        rows = [
            {k: _json_float(v) for k, v in {**dataclasses.asdict(r), "ok": r.ok}.items()}
            for r in self.rows
        ]
        return {
            "title": self.title,
            "ok": self.ok,
            "kinks_left_out": list(self.kinks),
            "ulps": PIECE_ULPS,
            "notes": list(self.notes),
            "rows": rows,
        }

    def __str__(self) -> str:
        header = ("check", "dtype", "points", "worst at", "value", "reference", "abs err",
                  "tolerance", "")  # fmt: skip
        lines = [header]
        for row in self.rows:
            lines.append(
                (
                    row.check,
                    row.dtype,
                    _points(row),
                    row.at,
                    f"{row.value:.9g}",
                    f"{row.reference:.9g}",
                    f"{row.error:.2e}",
                    f"{row.tolerance:.2e}",
                    "ok" if row.ok else "FAIL",
                )
            )
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        table = [
            "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
            for line in lines
        ]
        table.insert(1, "-" * len(table[0]))
        verdict = "PASS" if self.ok else f"FAIL ({len(self.failures)} of {len(self.rows)} rows)"
        notes = [f"{self.title}: {verdict}", *self.notes]
        if self.kinks:
            notes.append("kinks left out: " + ", ".join(f"{k:g}" for k in self.kinks))
        if any(row.unjudged for row in self.rows):
            notes.append("unjudged: jax.grad is not finite there while the hand-derived value is")
        return "\n".join([*notes, "", *table])


def _points(row: PieceRow) -> str:
    counts = [f"{n} {what}" for n, what in ((row.failed, "fail"), (row.unjudged, "unjudged")) if n]
    return f"{row.points} ({', '.join(counts)})" if counts else str(row.points)


def _json_float(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
