"""``funcbp compare-rules``: one network trained from the same initial weights under each
learning rule, side by side.

Each rule trains the run file's network on its training split for ``train.epochs`` with
the same key (so the same initial parameters and batches; a rule's own matrices are
drawn from a key split off the parameters'), with statistics every ``every`` steps.
A row reports the last epoch's test (else validation) accuracy and loss, the training
loss, the time per step relative to backprop's (the median of five timed epochs of
the compiled epoch without statistics, after one that compiles and warms it) and each
layer's mean angle to the exact gradient and, for feedback rules, of ``B_l`` to
``W_l^T``, over the sampled steps of the last epoch that had any (full-batch training
samples every ``every``-th epoch).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax

from funcbp import rules
from funcbp.cli import config as _config
from funcbp.cli import run
from funcbp.errors import ConfigError
from funcbp.train import fit, inputs_in_dtype, make_epoch, weights_in_dtype

TIMED_EPOCHS = 5


class Row(NamedTuple):
    """One rule's run."""

    rule: str
    metrics: dict[str, float]  # the last epoch's "<set>_loss", "<set>_accuracy"
    step_seconds: float  # per optimizer step, compiled, without statistics
    alignment_angle: list[float | None]  # per layer, degrees (None: not measured)
    feedback_angle: list[float | None]


class BadRules(ConfigError):
    """``--rules`` names a rule that does not exist."""


def command(path: Path, sets: Sequence[str], names: str, every: int | None) -> None:
    """``funcbp compare-rules``: prints the header, trains, prints the table.

    ``every``: steps between statistics (``None``: the run file's, or 10).

    Raises:
      BadRules: an unknown name in ``names``; ConfigError, DataError: bad run file or data.
    """
    chosen = check_names(names)
    config = _config.load(path, sets)
    every = every if every is not None else config.train.diagnostics_every or 10
    header = (f"funcbp compare-rules: {config.data.source}, MLP hidden "
              f"{list(config.model.hidden)}, {config.train.epochs} epochs from the same initial "
              f"weights (train.seed = {config.train.seed}), alignment every {every} steps "
              "(angles: the last epoch that sampled them):\n")  # fmt: skip
    print(table(compare(config, chosen, every, header)))


def check_names(text: str) -> tuple[str, ...]:
    """``"backprop,feedback_alignment"`` as names (backprop first, added if missing).

    Raises:
      BadRules: an unknown name, listing the valid ones.
    """
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    for name in names:
        try:
            rules.check_name(name)
        except ValueError as err:
            raise BadRules(f"--rules: {err}") from None
    return ("backprop", *dict.fromkeys(n for n in names if n != "backprop"))


def compare(
    config: _config.RunConfig, names: Sequence[str], every: int, header: str = ""
) -> list[Row]:
    """Trains ``config``'s network under each rule of ``names`` (``"backprop"`` first),
    printing ``header`` once every rule has been checked against the network.

    The ``[rule]`` options apply to the rule that ``train.engine`` names; the others
    take their defaults.
    """
    net, optimizer, splits, _ = run.prepare(config)
    t = config.train
    dtype = run.param_dtype(t.dtype)
    batch = run.batch_size(t, len(splits.train))
    held_out = {
        name: part
        for name, part in (("test", splits.test), ("validation", splits.validation))
        if part
    }
    held_out = dict(list(held_out.items())[:1])
    engines = {name: config.engine() if name == t.engine else rules.make(name) for name in names}
    for engine in engines.values():  # before anything trains
        run.check_rule(engine, net, "--rules")
    if header:
        print(header, flush=True)
    rows = []
    for name, engine in engines.items():
        state, history = fit(net, optimizer, splits.train, epochs=t.epochs, batch_size=batch,
                             engine=engine, eval=held_out, key=jax.random.key(t.seed),
                             dtype=dtype, diagnostics_every=every)  # fmt: skip
        last = max(i for i, n in enumerate(history["sampled_steps"]) if n)
        none = [None] * net.num_layers
        rows.append(Row(
            name,
            {key: values[-1] for key, values in history.items()
             if key.endswith(("_loss", "_accuracy"))},
            _step_seconds(net, optimizer, state, splits.train, batch, engine),
            history.get("alignment_angle", [none])[last] if name != "backprop" else none,
            history.get("feedback_angle", [none])[last] if name != "backprop" else none,
        ))  # fmt: skip
    return rows


def _step_seconds(net, optimizer, state, part, batch: int | None, engine) -> float:
    """Seconds per step of the compiled epoch (no statistics): the median of
    ``TIMED_EPOCHS`` epochs after one that compiles and warms it."""
    epoch = jax.jit(make_epoch(net, optimizer, batch_size=batch, engine=engine))
    dtype = state.params[0]["w"].dtype
    data = [*inputs_in_dtype(part.x, part.y, dtype, jax.device_put)]
    if part.sample_weight is not None:
        data.append(weights_in_dtype(part.sample_weight, dtype, jax.device_put))
    jax.block_until_ready(epoch(state, *data))
    seconds = []
    for _ in range(TIMED_EPOCHS):
        start = time.perf_counter()
        jax.block_until_ready(epoch(state, *data))
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds) / (len(part) // (batch or len(part)))


def table(rows: Sequence[Row]) -> str:
    """The rows as text, step times relative to the first row's (backprop's)."""
    metrics = list(rows[0].metrics)
    header = ["rule", *metrics, "step time", "angle to grad (deg)", "B to W^T (deg)"]
    lines = [header]
    for row in rows:
        lines.append([
            row.rule,
            *(f"{row.metrics[m]:.4f}" for m in metrics),
            f"{row.step_seconds / rows[0].step_seconds:.2f}x",
            _angles(row.alignment_angle),
            _angles(row.feedback_angle),
        ])  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) if i in (0, len(header) - 2, len(header) - 1) else c.rjust(w)
                  for i, (c, w) in enumerate(zip(line, widths, strict=True))).rstrip()
        for line in lines
    )  # fmt: skip


def _angles(values: list[Any]) -> str:
    shown = ["-" if v is None or math.isnan(v) else f"{v:.1f}" for v in values]
    return "-" if set(shown) == {"-"} else " ".join(shown)
