"""PNG plots of a run's history: loss and accuracy curves per epoch, per-layer statistics.

matplotlib is imported here only, through its object-oriented API (no pyplot,
no GUI backend). ``Plotter`` draws in a child process started when a run
starts, so that importing matplotlib (half a second) happens on another core
while the run trains instead of adding to its wall time. This file runs as
that child by path, without importing the ``funcbp`` package (and JAX). Each
PNG is written whole (``funcbp._jax.atomic``): a full disk leaves the previous
file or none, never a truncated one.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

if __package__:  # imported as funcbp.cli.plots
    from funcbp._jax import atomic
else:  # the child: atomic.py (standard library only) by path, without the funcbp package
    import importlib.util

    _spec = importlib.util.spec_from_file_location(
        "_funcbp_atomic", Path(__file__).parents[1] / "_jax" / "atomic.py"
    )
    atomic = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(atomic)


def plot_history(history: dict[str, list], out: str | Path) -> list[Path]:
    """Writes ``loss.png`` (log scale), ``accuracy.png`` (classification),
    ``diagnostics.png`` (when the history has per-layer statistics) and ``alignment.png``
    (when a learning rule's are among them); returns them."""
    written = []
    for metric, log_scale in (("loss", True), ("accuracy", False)):
        curves = {
            name.removesuffix(f"_{metric}"): values
            for name, values in history.items()
            if name.endswith(f"_{metric}")
        }
        if curves:
            path = Path(out) / f"{metric}.png"
            _line_plot(history["epoch"], curves, metric, log_scale, path)
            written.append(path)
    if "grad_norm" in history:
        panels = (_Panel("grad_norm", "weight-gradient norm ||dW||", log=True),
                  _Panel("update_ratio", "update ratio ||dW step|| / ||W||", log=True,
                         reference=1e-3))  # fmt: skip
        written.append(_per_layer_plot(history, panels, Path(out) / "diagnostics.png"))
    if "alignment_angle" in history:
        panels = (_Panel("alignment_angle", "angle of the update to the exact gradient (deg)"),
                  _Panel("norm_ratio", "norm ratio |update| / |exact gradient|", log=True,
                         reference=1.0),
                  _Panel("feedback_angle", "angle of B_l to W_l^T (deg)"))  # fmt: skip
        written.append(_per_layer_plot(history, panels, Path(out) / "alignment.png"))
    return written


class _Panel(NamedTuple):
    name: str  # the statistic, [L] per epoch
    title: str
    log: bool = False  # a log scale
    reference: float | None = None  # a dashed line at this value


def _per_layer_plot(history: dict[str, list], panels: tuple[_Panel, ...], path: Path) -> Path:
    """One panel per statistic, one line per layer, over the epochs that sampled them."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.5 * len(panels), 4))
    figure.subplots_adjust(left=0.07, right=0.86 if len(panels) < 3 else 0.9, top=0.9,
                           bottom=0.13, wspace=0.25)  # fmt: skip
    FigureCanvasAgg(figure)
    for i, panel in enumerate(panels):
        axes = figure.add_subplot(1, len(panels), i + 1)
        # Only sampled epochs (full-batch runs sample every N-th epoch): lines, no gaps.
        columns = (history["epoch"], history[panel.name], history["sampled_steps"])
        rows = [(e, row) for e, row, n in zip(*columns, strict=True) if n]
        epochs = [e for e, _ in rows]
        per_layer = zip(
            *([math.nan if v is None else v for v in row] for _, row in rows), strict=True
        )
        for layer, values in enumerate(per_layer, start=1):
            axes.plot(
                epochs, values, label=f"layer {layer}", marker="." if len(epochs) < 30 else None
            )
        if panel.reference is not None:
            axes.axhline(panel.reference, color="gray", linestyle="--", linewidth=1,
                         label=f"{panel.reference:g}")  # fmt: skip
        if panel.log:
            axes.set_yscale("log")
        axes.set(xlabel="epoch", title=panel.title)
        axes.grid(alpha=0.3)
    axes.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize="small")
    _save(figure, path)
    return path


def _line_plot(epochs, curves: dict[str, list], metric: str, log_scale: bool, path: Path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4))
    figure.subplots_adjust(left=0.13, right=0.97, top=0.92, bottom=0.12)  # a layout engine: +0.2 s
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for name, values in curves.items():
        values = [float("nan") if v is None else v for v in values]
        axes.plot(epochs, values, label=name, marker="." if len(epochs) < 30 else None)
    if log_scale and all(v is None or v > 0 for values in curves.values() for v in values):
        axes.set_yscale("log")
    axes.set(xlabel="epoch", ylabel=metric, title=metric)
    axes.grid(alpha=0.3)
    axes.legend()
    _save(figure, path)


def _save(figure, path: Path) -> None:
    atomic.write(path, lambda file: figure.savefig(file, format="png", dpi=100))


class Plotter:
    """A child process that imports matplotlib at once and plots what it is sent.

    ``with Plotter() as plotter: ...; plotter.send(history, out); ...; plotter.wait()``
    """

    def __init__(self, enabled: bool = True) -> None:
        self._child = None
        if enabled:  # disabled: every method does nothing (processes that do not write)
            self._child = subprocess.Popen(
                [sys.executable, "-P", __file__],  # -P: funcbp/ not on sys.path
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )

    def send(self, history: dict[str, list], out: Path) -> None:
        """Starts plotting ``history`` into ``out``; returns at once."""
        if self._child is not None:
            self._child.stdin.write(json.dumps({"history": history, "out": str(out)}).encode())
            self._child.stdin.close()

    def wait(self) -> None:
        """Waits for the plots; raises ``RuntimeError`` (one line: the child's error) if
        drawing them failed."""
        if self._child is None:
            return
        self._child.stdin.close()  # (already closed by send; without it, the child ends)
        err = self._child.stderr.read().decode(errors="replace").strip()
        if self._child.wait() != 0:
            last = err.splitlines()[-1] if err else f"exit status {self._child.returncode}"
            raise RuntimeError(f"the plots could not be drawn ({last})")

    def __enter__(self) -> Plotter:
        return self

    def __exit__(self, *exc) -> None:
        if self._child is None:
            return
        if exc[0] is not None:
            self._child.kill()
        self._child.stdin.close()  # a child sent nothing exits at end of input
        self._child.wait()
        self._child.stderr.close()


def _serve() -> None:
    from matplotlib.figure import Figure  # noqa: F401  (the import is the slow part)

    request = sys.stdin.read()
    if request:
        args = json.loads(request)
        plot_history(args["history"], args["out"])


if __name__ == "__main__":
    _serve()
