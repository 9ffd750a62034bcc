"""What a training run shows in the terminal: live progress and the closing summary table.

On a terminal, progress is a ``tqdm`` bar with the live loss and accuracy; when
standard output is a file or a pipe it is one plain line per update instead.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import Any, TextIO


def _short(record: dict[str, float]) -> dict[str, float]:
    """The losses and accuracies of an epoch record, under short names."""
    shown = {}
    for name, value in record.items():
        part, _, metric = name.rpartition("_")
        if metric in ("loss", "accuracy"):
            shown[f"{part[:5]} {'acc' if metric == 'accuracy' else metric}"] = value
    return shown


class ProgressDisplay:
    """Reports epochs done out of ``total``, starting from ``initial`` (a resumed run)."""

    def __init__(self, total: int, initial: int = 0, stream: TextIO | None = None):
        self.total, self.stream = total, stream or sys.stdout
        self._bar = None
        if self.stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(
                total=total, initial=initial, unit="epoch", file=self.stream, dynamic_ncols=True
            )

    def update(self, record: dict[str, float], epochs: int) -> None:
        """``record`` is the last epoch's metrics; ``epochs`` how many were run since."""
        shown = _short(record)
        if self._bar is not None:
            self._bar.set_postfix({k: f"{v:.4f}" for k, v in shown.items()}, refresh=False)
            self._bar.update(epochs)
        else:
            metrics = "  ".join(f"{k} {v:.4f}" for k, v in shown.items())
            print(f"epoch {record['epoch']}/{self.total}  {metrics}", file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def summary_table(summary: dict[str, Any]) -> str:
    """The summary as text: a metrics table (split x loss/accuracy), then the run's facts."""
    splits = [s for s in ("train", "validation", "test") if f"{s}_loss" in summary]
    metrics = [m for m in ("loss", "accuracy") if f"train_{m}" in summary]
    rows = [["", *metrics]]
    rows += [[s, *(f"{summary[f'{s}_{m}']:.4f}" for m in metrics)] for s in splits]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(cells))
        for cells in (zip(row, widths, strict=True) for row in rows)
    ]
    facts = {
        "epochs": summary["epochs"],
        "steps": summary["steps"],
        "best epoch": summary.get("best_epoch"),
        "wall time": f"{summary['wall_seconds']:.2f} s",
        "compile time": f"{summary['compile_seconds']:.2f} s",
        "device": f"{summary['device_count']} x {summary['device_kind']}",
    }
    lines.append("")
    lines += [f"{name:<13} {value}" for name, value in facts.items() if value is not None]
    return "\n".join(lines)


def diagnostics_table(layer_names: Sequence[str], sizes: Sequence[int], stats: dict) -> str:
    """One row per layer of ``funcbp.diagnostics`` statistics (one epoch's ``[L]`` lists);
    a learning rule's alignment with the exact gradient in the last columns (degrees)."""
    header = ["layer", "units", "activation", "|W|", "|dW|", "|db|", "|delta|", "update/|W|",
              "dead", "saturated"]  # fmt: skip
    alignment = "alignment_angle" in stats
    if alignment:
        header += ["angle to grad", "norm ratio", "B to W^T"]
    rows = [header]
    for i, name in enumerate(layer_names):
        row = [str(i + 1), str(sizes[i + 1]), name]
        for key in ("weight_norm", "grad_norm", "grad_b_norm", "delta_norm", "update_ratio"):
            row.append(_number(stats[key][i], "{:.2e}"))
        row += [_number(stats[key][i], "{:.0%}") for key in ("dead_fraction", "saturated_fraction")]
        if alignment:
            row += [_number(stats["alignment_angle"][i], "{:.1f}"),
                    _number(stats["norm_ratio"][i], "{:.2f}"),
                    _number(stats["feedback_angle"][i], "{:.1f}")]  # fmt: skip
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows
    )


def _number(value: float | None, spec: str) -> str:
    return "-" if value is None or math.isnan(value) else spec.format(value)
