"""A configured training run: config -> data -> network -> ``fit_blocks`` -> run directory.

Everything is validated before the run directory is made, so bad input leaves
nothing behind. The directory then holds::

    .lock             held by the one process writing the run (its id inside)
    config.toml       the resolved config (what --resume reads), written first
    standardizer.json the training split's per-feature mean and std (data.standardize),
                      which funcbp predict and funcbp.load_run apply to new inputs
    metrics.jsonl     one JSON record per epoch, appended as training goes
    checkpoints/      step-<step>.npz (+ .json): the last N, and best.npz
    loss.png, accuracy.png, diagnostics.png, alignment.png
    summary.json      written last: its presence means the run has ended

A run killed at any point resumes from its latest checkpoint (from epoch 0
before the first) and ends exactly as the uninterrupted run would have:
checkpoints fall on block boundaries, and the resumed run compiles the same block.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple, TextIO

import jax
import jax.numpy as jnp
import numpy as np
import optax

from funcbp import data as _data
from funcbp import diagnostics, optim, process_data, sharding
from funcbp._jax import atomic
from funcbp._jax.compile_clock import CompileClock
from funcbp.cli import _bounds, _rundir, _solver, _summary, _weights, display, plots
from funcbp.cli import config as _config
from funcbp.cli._sigint import deferred_sigint
from funcbp.errors import ConfigError
from funcbp.mlp import MLP
from funcbp.predict import STANDARDIZER
from funcbp.train import (
    TrainingDiverged,
    fit_blocks,
    init_progress,
    init_state,
    rule_of,
    rule_state_shapes,
)


class Interrupted(Exception):
    """Ctrl-C stopped the run after saving a checkpoint it can resume from."""

    def __init__(self, epoch: int, path: Path):
        super().__init__(f"interrupted after epoch {epoch}; saved {path}")
        self.epoch, self.path = epoch, path

    def __reduce__(self):  # picklable, like TrainingDiverged
        return type(self), (self.epoch, self.path)


class Prepared(NamedTuple):
    """Everything a run needs before anything is compiled."""

    net: MLP
    optimizer: optax.GradientTransformation | optim.Solver
    splits: _data.Splits  # this process's own parts when data.source names {process}
    standardizer: _data.Standardizer | None  # the training split's; None: not standardised


def prepare(config: _config.RunConfig) -> Prepared:
    """Loads and splits the data and builds the network and optimizer; validates all.

    A source naming ``{process}`` is one file per process (``funcbp.process_data``):
    this process reads its own, and the processes agree on shapes, part sizes and
    standardisation.

    Raises:
      DataError: the data cannot be read or do not fit the configured network.
      ConfigError: ``MLP`` refuses the ``[model]`` table for the data's widths, or
        ``train.engine``'s rule refuses the network.
    """
    d, m, o = config.data, config.model, config.optimizer
    per_process = process_data.is_per_process(d.source)
    limit = {"max_bytes": d.max_bytes} if d.max_bytes else {}  # 0: the data's own default
    if d.source == "teacher":
        dataset = _data.teacher(
            d.teacher_samples,
            d.teacher_sizes,
            seed=d.seed,
            classification=d.teacher_classification,
            **limit,
        )
    else:
        weights = {"sample_weight": d.sample_weight} if d.sample_weight != "" else {}
        dataset = _data.load(process_data.own_source(d.source), **limit, **weights)
    if per_process:
        dataset = process_data.agree_on_shape(dataset)
    splits = _data.split(dataset, validation=d.validation, test=d.test, seed=d.seed)
    splits = _weights.weigh_classes(splits, config.train.class_weight)
    if m.cost() == "sigmoid_binary_cross_entropy" and dataset.n_classes == 2:
        # Two classes through one logit: labels become [n, 1] targets in {0, 1}.
        splits = _data.Splits(*(part and _binary_targets(part) for part in splits))
    stats = None
    if per_process:
        splits = process_data.equal_parts(splits)
        if d.standardize:
            splits, stats = process_data.standardize(splits)
    elif d.standardize:
        splits, stats = _data.standardize(splits)
    n_out = splits.train.n_outputs  # after the labels of two classes became one target
    net = m.build(dataset.n_features, n_out)
    check_rule(config.engine(), net, "train.engine")
    for part in splits:
        if part is not None:
            _data.check_fits(part, net)
    optimizer = o.make()
    _solver.check(config, net, optimizer)
    return Prepared(net, optimizer, splits, stats)


def check_rule(engine, net: MLP, key: str) -> None:
    """Refuses (``ConfigError`` naming ``key``) a rule that cannot train ``net`` (direct
    feedback without a hidden layer), as its ``init`` says; nothing is compiled."""
    try:
        rule_state_shapes(rule_of(engine), net, jnp.float32)
    except ValueError as err:
        raise ConfigError(f"{key}: {err}") from None


def _binary_targets(part: _data.Dataset) -> _data.Dataset:
    y = part.y[:, None].astype("float32")
    return _data.Dataset(part.x, y, None, part.name, part.sample_weight)


def batch_size(
    train: _config.TrainConfig,
    n_train: int,
    epochs: int | None = None,
    epochs_key: str = "train.epochs",
) -> int | None:
    """``train.batch_size`` as ``fit_blocks`` takes it (``None``: full batch), for
    ``n_train`` training rows and ``epochs`` (default ``train.epochs``, named ``epochs_key``).

    Raises:
      ConfigError: the batch is larger than the training split or does not split
        evenly over the devices, or the run has more steps than int32 counts.
    """
    batch = None if train.batch_size == "full" else train.batch_size
    if batch is not None and batch > n_train:  # as fit_blocks refuses it
        raise ConfigError(
            f"train.batch_size: {batch} is larger than the training split's {n_train} rows; "
            f'use at most {n_train}, or "full"'
        )
    try:  # fit_blocks would refuse it too, with a plain ValueError
        sharding.check_divides(sharding.data_mesh(), batch or n_train, "batch size")
    except ValueError as err:
        raise ConfigError(f"train.batch_size: {err}") from None
    epochs = train.epochs if epochs is None else epochs
    per_epoch = n_train // (batch or n_train)  # the rows left over make no step
    if epochs * per_epoch > _bounds.INT32_MAX:
        raise ConfigError(
            f"{epochs_key}: {epochs} epochs of {per_epoch} steps are {epochs * per_epoch} "
            f"steps, more than {_bounds.INT32_MAX} (funcbp counts steps in int32); train "
            "fewer epochs or use larger batches"
        )
    return batch


def param_dtype(name: str) -> jnp.dtype:
    """The parameters' dtype ``name`` (one of ``funcbp.mlp.PARAM_DTYPES``).

    ``"float64"`` switches on JAX's 64-bit mode first, which it needs.
    """
    if name == "float64":
        jax.config.update("jax_enable_x64", True)
    return jnp.dtype(name)


def _eval_sets(splits: _data.Splits) -> dict[str, _data.Dataset]:
    # Validation first: fit monitors the first set for early stopping.
    parts = {"validation": splits.validation, "test": splits.test}
    return {name: part for name, part in parts.items() if part is not None}


def train(
    config: _config.RunConfig,
    out: Path,
    *,
    resume: bool = False,
    stream: TextIO | None = None,
) -> dict[str, Any]:
    """Runs ``config`` into the run directory ``out`` (or resumes it); returns the summary.

    Progress goes to ``stream`` (default: standard output).

    Raises:
      DataError, ConfigError: bad data or a config they do not fit (before ``out`` is
        made); ``RunError`` (a ``ConfigError``): ``out`` holds a run or other files (or,
        resuming, is not a resumable run), or another process is writing it;
        ``CheckpointError``: the latest checkpoint does not fit the config or is not finite.
      TrainingDiverged: a non-finite loss; ``out`` keeps the checkpoints before it.
      Interrupted: Ctrl-C; a checkpoint of the last completed block was saved.
    """
    start = time.perf_counter()
    clock = CompileClock()
    out = Path(out)
    writer = jax.process_index() == 0  # under jax.distributed, process 0 alone writes
    claim, restart = _claim(out, resume, writer)
    if not writer:
        stream = io.StringIO()  # progress is process 0's to show
    # The lock is held until summary.json is written.
    with claim or contextlib.nullcontext(), plots.Plotter(writer) as plotter:
        summary = _train(config, out, restart, claim, plotter, stream)
        _wait_for_plots(plotter, summary["warnings"], out)
        summary.update(
            wall_seconds=round(time.perf_counter() - start, 3),
            compile_seconds=round(clock.seconds, 3),
        )
        if writer:
            _rundir.write_json(out / "summary.json", summary)  # last: the run has ended
    return summary


def _train(config, out: Path, restart: bool, claim, plotter: plots.Plotter, stream):
    """``train`` from the data to the summary, less its timings; ``claim`` is the run
    directory's (``None``: another process writes it)."""
    writer = claim is not None
    net, optimizer, splits, stats = prepare(config)
    t = config.train
    dtype = param_dtype(t.dtype)
    engine = config.engine()

    def fresh():
        state = init_state(net, optimizer, jax.random.key(t.seed), dtype, rule_of(engine))
        return state, init_progress(state, t.patience or None)

    if restart:  # init_state refuses a network too large before anything is written
        (state, progress), records = fresh(), []
    else:  # the checkpoint must fit the run's own network and optimizer
        like = jax.eval_shape(fresh)
        state, progress, records = _rundir.restore(out, writer, like, net.user_pieces)
    parts = {"train": splits.train, **_eval_sets(splits)}
    if process_data.is_per_process(config.data.source):  # each process has its own rows
        parts = process_data.global_parts(parts)
    eval_sets = {name: part for name, part in parts.items() if name != "train"}
    n_train = len(_summary.arrays(parts["train"])[0])
    blocks = fit_blocks(  # checks its arguments now
        net, optimizer, parts["train"], epochs=t.epochs, engine=engine, eval=eval_sets,
        batch_size=batch_size(t, n_train),
        patience=t.patience or None, state=state, progress=progress,
        epochs_per_call=max(1, math.ceil(t.epochs / 50)),
        diagnostics_every=t.diagnostics_every or None,
    )  # fmt: skip
    if writer and restart:  # config.toml first: from then on, --resume can start it again
        claim.make()
        atomic.write(out / "config.toml", _config.dumps(config).encode())
        if stats is not None:  # what funcbp predict applies to new inputs
            atomic.write(out / STANDARDIZER, stats.to_json().encode())
    saver = _rundir.Saver(out / "checkpoints", _checkpoint_meta(config, net), t.keep_checkpoints,
                          writer)  # fmt: skip
    if restart:
        saver.save(state, progress, None)
    print(_headline(config, net, n_train), file=stream or sys.stdout, flush=True)
    try:
        state, progress = _train_blocks(blocks, state, progress, saver, records, out, t, stream)
    except TrainingDiverged as err:
        if writer:
            good = _rundir.last_finite_checkpoint(
                out / "checkpoints", jax.eval_shape(fresh), net.user_pieces
            )
            good_name = good and str(good.relative_to(out))
            ended = {"status": "diverged", "message": str(err), "epoch": err.epoch,
                     "step": err.step, "last_good_checkpoint": good_name}  # fmt: skip
            _rundir.write_json(out / "summary.json", ended)
        plotter.send(err.history, out)
        lost: list[str] = []
        _wait_for_plots(plotter, lost, out)
        for warning in lost:
            print(f"funcbp: warning: {warning}", file=sys.stderr)
        raise
    columns = history(records)
    plotter.send(columns, out)  # drawn while the final evaluation runs
    if t.patience and bool(progress.stopped):
        state = state._replace(params=progress.best_params)
    summary = _summary.summarize(net, state, columns, parts, progress)
    summary["versions"] = _summary.versions()
    summary["warnings"] = diagnostics.findings(columns, net)
    _solver.add_stop(summary, optimizer, state)
    weighted = _weights.describe(splits, config.data.sample_weight, t.class_weight)
    if weighted:  # which losses are weighted means, and by what
        summary["weighted_loss"] = weighted
    return summary


def _train_blocks(
    blocks, state, progress, saver: _rundir.Saver, records: list, out: Path, t, stream
):
    """Runs ``blocks`` from ``(state, progress)``: metrics.jsonl, the screen, checkpoints, Ctrl-C.

    Returns the final ``(state, progress)`` (the given ones when a resumed run had
    already trained every epoch and was stopped before writing its summary).
    """
    saved_epoch = len(records)  # a fresh run saves epoch 0; a resumed one starts at its save
    shown = display.ProgressDisplay(t.epochs, len(records), stream)
    metrics_path = out / "metrics.jsonl" if saver.writes else os.devnull
    with deferred_sigint() as interrupted, open(metrics_path, "a") as metrics:
        try:
            for block in blocks:
                metrics.writelines(json.dumps(_rundir.json_ready(r)) + "\n" for r in block.records)
                metrics.flush()
                records += block.records
                shown.update(block.records[-1], len(block.records))
                if block.diverged:
                    raise TrainingDiverged(*block.diverged, history(records))
                state, progress = block.state, block.progress
                epoch = int(progress.epoch)
                done = bool(progress.stopped) or epoch >= t.epochs
                stop = interrupted()
                if jax.process_count() > 1:  # all processes stop together, as process 0 says
                    stop = _from_process_0(stop)
                if done or stop or epoch - saved_epoch >= t.checkpoint_every:
                    if saver.writes:
                        os.fsync(metrics.fileno())  # the records a resume reads back
                    path = saver.save(state, progress, block.records[-1])
                    saved_epoch = epoch
                    if stop and not done:
                        raise Interrupted(epoch, path)
        finally:
            shown.close()
    return state, progress


def _claim(out: Path, resume: bool, writer: bool) -> tuple[_rundir.Claim | None, bool]:
    """The writer's ``Claim`` on ``out`` (``None`` on the other processes), and whether the
    run starts at epoch 0; under several processes all raise when process 0 refuses ``out``.

    Without this, process 0 would stop on a bad ``--out`` while the others wait
    for it in their first all-reduce.
    """
    if jax.process_count() == 1:
        claim = _rundir.Claim(out, resume)
        return claim, claim.restart
    claim = error = None
    try:
        claim = _rundir.Claim(out, resume) if writer else None
    except _rundir.RunError as err:
        error = err
    if not _from_process_0(error is None):
        raise error or _rundir.RunError("process 0 refused the run directory")
    return claim, _from_process_0(claim.restart if claim else False)


def _from_process_0(flag: bool) -> bool:
    """Process 0's ``flag``, on every process (one small collective)."""
    from jax.experimental import multihost_utils

    return bool(multihost_utils.broadcast_one_to_all(np.asarray(flag)))


def _wait_for_plots(plotter: plots.Plotter, warnings: list[str], out: Path) -> None:
    """Waits for the plots; failing to draw them is a warning, not a failed run."""
    try:
        plotter.wait()
    except RuntimeError as err:
        warnings.append(f"{err}; draw them again with: funcbp plot {out}")


def _checkpoint_meta(config: _config.RunConfig, net: MLP) -> dict[str, Any]:
    o = config.optimizer
    return {
        "net": net,  # save_checkpoint writes its spec (user pieces by name)
        "optimizer": {"name": o.name, "learning_rate": o.rate, "options": dict(o.options)},
        "patience": config.train.patience or None,
        "rule": rule_of(config.engine()).name,  # the state's rule ("backprop": none)
        "config": config.to_dict(),
        "versions": _summary.versions(),
    }


def _headline(config: _config.RunConfig, net: MLP, n_train: int) -> str:
    t = config.train
    hidden = net.layer_names[:-1]  # user activations by their names
    return (
        f"funcbp: {config.data.source} ({n_train} train samples), MLP {net.sizes} "
        f"{hidden[0] if len(set(hidden)) == 1 else hidden}, {config.optimizer.name}, "
        f"{t.engine} engine, "
        f"{jax.device_count()} x {jax.devices()[0].device_kind}"
    )


def history(records: list[dict[str, float]]) -> dict[str, list]:
    return {name: [r[name] for r in records] for name in records[0]} if records else {}
