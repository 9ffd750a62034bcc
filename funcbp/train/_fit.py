"""The host-side driver: ``fit`` and ``fit_blocks`` check the data, place it on the
devices, run the compiled blocks of epochs and turn their output into a history.

How they train is one ``FitOptions``; each of their keywords beyond the data
(``epochs=5``, ``batch_size=32``, ...) overrides one of its fields, except
``sample_weight``, which goes with the training data (``funcbp.train._data``).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from funcbp import diagnostics as _diagnostics
from funcbp import optim, sharding
from funcbp import rules as _rules
from funcbp._jax.memory import refuse_unless_fits
from funcbp._jax.options import with_overrides
from funcbp.backprop import BACKPROP
from funcbp.mlp import MLP
from funcbp.train import _memory
from funcbp.train._block import block_program
from funcbp.train._data import checked_arrays, eval_sets_on_devices, placed
from funcbp.train._engine import rule_of
from funcbp.train._full_batch import check_solver_run
from funcbp.train._options import FitOptions
from funcbp.train._step import (
    MAX_COUNT,
    Progress,
    TrainState,
    check_batch_size,
    check_optimizer,
    init_progress,
    init_state,
)

Array = jax.Array


class Block(NamedTuple):
    """What ``fit_blocks`` yields after each compiled call."""

    state: TrainState
    progress: Progress
    columns: dict[str, list]  # per epoch run: epoch, train_loss, <eval>_<metric>, ...
    diverged: tuple[int, int, str] | None  # TrainingDiverged's (epoch, step, what)
    # A full-batch solver that stopped in this block: (epoch, reason, what happened, failure)
    solver_stop: tuple[int, str, str, bool] | None = None

    @property
    def records(self) -> list[dict[str, Any]]:
        """``columns`` as one record per epoch run."""
        names = list(self.columns)
        return [
            dict(zip(names, row, strict=True)) for row in zip(*self.columns.values(), strict=True)
        ]


class SolverWarning(UserWarning):
    """A full-batch solver stopped without a step that lowers the loss (its parameters
    are the best it found)."""


class TrainingDiverged(FloatingPointError):
    """Training became NaN or infinite at ``step`` (1-based, in ``epoch``).

    ``what``: ``"loss"``, that step's loss (taken before its update: usually an
    earlier update's doing), or ``"parameters"``, those its update produced (found
    when no later loss shows it: the update was the last of a ``fit_blocks`` block).
    """

    def __init__(self, epoch: int, step: int, what: str, history: dict[str, list]):
        found = "the loss" if what == "loss" else "the parameters after its update"
        super().__init__(
            f"training diverged: not finite at epoch {epoch}, step {step} ({found}); "
            "try a lower learning rate or gradient clipping"
        )
        self.epoch, self.step, self.what, self.history = epoch, step, what, history

    def __reduce__(self):  # picklable, as a process pool running fits sends it back
        return type(self), (self.epoch, self.step, self.what, self.history)


def fit(
    net: MLP,
    optimizer: optax.GradientTransformation | optim.Solver,
    train,
    options: FitOptions | None = None,
    *,
    eval: Mapping[str, Any] | None = None,
    key: Array | None = None,
    state: TrainState | None = None,
    callback: Callable[[dict[str, list]], None] | None = None,
    **overrides,
) -> tuple[TrainState, dict[str, list]]:
    """Trains ``net`` and returns ``(final state, per-epoch history)``.

    Args:
      net: the network spec.
      optimizer: any optax ``GradientTransformation``, or a full-batch solver
        (``funcbp.optim.make("lbfgs")``, ...: ``batch_size=None``, one iteration an epoch).
      train: a ``funcbp.data.Dataset`` (weighted when its ``sample_weight`` is set),
        an ``(x, y)`` pair or an ``(x, y, sample_weight)`` triple.
      options: how to train (``FitOptions``: epochs, batch_size, engine, patience,
        dtype, epochs_per_call, diagnostics_every, devices).
      eval: ``{name: dataset}`` evaluated after every epoch (never dropping out; a
        weighted set's loss is the weighted mean, its accuracy unweighted); the
        first one is monitored for early stopping.
      key: seeds the initial parameters and the shuffling.
      state: continue from this state instead of initialising one.
      callback: called with the history after each block of epochs.
      **overrides: ``FitOptions`` fields (``epochs=5, batch_size=32``), replacing
        those of ``options``, or making them without it; and ``sample_weight``
        ``[n]``, the training rows' weights (finite, ``>= 0``, not all zero): each
        step's loss is their weighted mean.

    Returns:
      The final ``TrainState`` (best parameters when early stopping restored them)
      and ``{"epoch": [...], "train_loss": [...], "<eval>_loss": [...],
      "<eval>_accuracy": [...]}``; with ``diagnostics_every``, the mean of each
      statistic over an epoch's sampled steps too, and ``DiagnosticWarning``s when
      they show a known failure. With a solver, its per-iteration counts
      (``function_evaluations``, ``gradient_evaluations``, ...) and, once it stops,
      ``"stop_reason"`` (a name of ``funcbp.optim.STOP_REASONS``); a ``SolverWarning``
      when it stopped for want of a step that lowers the loss.

    Raises:
      TrainingDiverged: a training loss was NaN or infinite (training stops there).
    """
    weights = overrides.pop("sample_weight", None)
    options = with_overrides(FitOptions, options, overrides, "fit")
    if options.epochs_per_call is None and callback is None:  # no one to report to
        options = dataclasses.replace(options, epochs_per_call=options.epochs)
    history: dict[str, list] = {"epoch": [], "train_loss": []}
    blocks = fit_blocks(net, optimizer, train, options, eval=eval, key=key, state=state,
                        sample_weight=weights)  # fmt: skip
    for block in blocks:
        for name, values in block.columns.items():
            history.setdefault(name, []).extend(values)
        if block.diverged:
            _warn_findings(history, net)  # exploding gradients, say, before the NaN
            raise TrainingDiverged(*block.diverged, history)
        if block.solver_stop:
            history["stop_reason"] = block.solver_stop[1]
            if message := optim.stop_warning(optimizer.name, block.state.opt_state):
                warnings.warn(message, SolverWarning, stacklevel=2)
        if callback is not None:
            callback(history)
        state, progress = block.state, block.progress
    if options.patience is not None and bool(progress.stopped):
        state = state._replace(params=progress.best_params)
        history["best_epoch"] = int(progress.best_epoch)
    _warn_findings(history, net)
    return state, history


def fit_blocks(
    net: MLP,
    optimizer: optax.GradientTransformation | optim.Solver,
    train,
    options: FitOptions | None = None,
    *,
    eval: Mapping[str, Any] | None = None,
    key: Array | None = None,
    state: TrainState | None = None,
    progress: Progress | None = None,
    **overrides,
) -> Iterator[Block]:
    """``fit`` one compiled block of epochs at a time, for callers that act in between.

    Arguments are those of ``fit``; ``progress`` (with ``state``) continues a run
    saved after an earlier block, which then goes on exactly as it would have.
    ``epochs_per_call`` defaults to about 50 blocks per run. Stops after the
    block in which a loss is not finite, with ``Block.diverged`` set.
    ``devices`` (default: all) are trained on data-parallel (``funcbp.sharding``);
    the batch size must divide over them. Data already split over a mesh
    (``sharding.rows_from_processes``) trains on that mesh's devices.
    """
    weights = overrides.pop("sample_weight", None)
    options = with_overrides(FitOptions, options, overrides, "fit_blocks")
    run = _prepare(net, optimizer, (train, weights), options, eval, key, state, progress)
    # Arguments are checked above, when fit_blocks is called; training runs as it is iterated.
    return _blocks(run)


def lower_block(
    net: MLP,
    optimizer: optax.GradientTransformation | optim.Solver,
    train,
    options: FitOptions | None = None,
    *,
    eval: Mapping[str, Any] | None = None,
    **overrides,
) -> jax.stages.Lowered:
    """The first compiled block ``fit_blocks`` would run, lowered, to inspect.

    Arguments as ``fit_blocks``'; ``.compile().as_text()`` is the program XLA runs
    (how it splits the data over the devices, which kernels it fuses).
    """
    weights = overrides.pop("sample_weight", None)
    options = with_overrides(FitOptions, options, overrides, "lower_block")
    run = _prepare(net, optimizer, (train, weights), options, eval, None, None, None)
    with sharding.on_mesh(run.mesh):
        return run.program.lower(run.state, run.progress, run.limit, *run.data)


class _Run(NamedTuple):
    """A checked, placed run: the compiled block and what it is called with."""

    program: Callable
    optimizer: optax.GradientTransformation | optim.Solver
    mesh: Mesh | None
    state: TrainState
    progress: Progress
    limit: Array  # shape=(), int32: the run's epochs
    data: tuple  # (x, y, w or None, {name: (x, y[, w])}): training rows and eval sets, placed


def _prepare(net, optimizer, train, options: FitOptions, eval, key, state, progress) -> _Run:
    """Checks the data (``train``: the data set and ``sample_weight=``) against ``net``
    and ``options``, places it, and finds the block."""
    if eval is not None and not isinstance(eval, Mapping):
        raise ValueError(
            f"eval must be a mapping {{name: dataset}}, such as {{'test': (x, y)}}, got "
            f"{type(eval).__name__}"
        )
    check_optimizer(optimizer)
    x, y, w = checked_arrays(train[0], net, "train", sample_weight=train[1])
    eval_arrays = {name: checked_arrays(dataset, net, f"eval[{name!r}]")
                   for name, dataset in (eval or {}).items()}  # fmt: skip
    batch_size = options.batch_size
    check_batch_size(batch_size, len(x))
    if optim.is_solver(optimizer):
        check_solver_run(net, optimizer, batch_size, options.engine, options.diagnostics_every)
    steps = options.epochs * (len(x) // batch_size if batch_size else 1)
    if steps > MAX_COUNT:  # TrainState.step is an int32
        raise ValueError(
            f"epochs: {options.epochs} epochs of {steps // options.epochs} steps make {steps} "
            "steps, more than an int32 step counter holds (2**31 - 1); use fewer epochs or a "
            "larger batch_size"
        )
    if options.patience is not None and not eval_arrays:
        raise ValueError("patience (early stopping) needs an eval dataset to monitor")
    mesh = _mesh_of(x, options.devices)
    sharding.check_divides(mesh, batch_size or len(x), "batch_size" if batch_size else "full batch")
    rule = rule_of(options.engine)
    if state is not None:
        check_state(net, optimizer, state, rule)
    devices = list(mesh.devices.flat) if mesh is not None else options.devices
    dtype = options.dtype if state is None else jnp.result_type(state.params[0]["w"])
    needs = _memory.training_bytes(net, optimizer, dtype, data=[(x, y, w), *eval_arrays.values()],
                                   batch=batch_size, patience=options.patience,
                                   devices=len(devices or [None]), rule=rule)  # fmt: skip
    # A given state's arrays are already in memory, and the run reuses them.
    held = {id(a): a.nbytes for a in jax.tree.leaves((state, progress)) if isinstance(a, jax.Array)}
    refuse_unless_fits(
        "fit_blocks: the run",
        needs,
        devices,
        sum(held.values()),
        "use narrower or fewer layers, a smaller batch_size or less data",
    )
    if state is None:
        key = jax.random.key(0) if key is None else key
        state = init_state(net, optimizer, key, options.dtype, rule)
    if progress is None:
        progress = init_progress(state, options.patience)
    dtype = jnp.result_type(state.params[0]["w"])
    eval_rows, device_eval = eval_sets_on_devices(eval_arrays, dtype, mesh)
    program = block_program(net, optimizer, options, eval_rows, mesh, len(x))
    state, progress = sharding.replicate((state, progress), mesh)
    # The training rows split over the devices (padded to divide), as the evaluation sets.
    xs, ys, ws = placed((x, y, w), dtype, mesh)
    limit = jnp.asarray(options.epochs, jnp.int32)
    return _Run(program, optimizer, mesh, state, progress, limit, (xs, ys, ws, device_eval))


def check_state(
    net: MLP,
    optimizer: optax.GradientTransformation | optim.Solver,
    state: TrainState,
    rule: _rules.Rule = BACKPROP,
) -> None:
    """Refuses (``ValueError``) a ``state`` whose parameters do not fit ``net``, whose
    optimizer state is not the one ``optimizer`` makes (another optimizer's) or, for a
    ``rule`` with state, whose ``rule_state`` is not the one ``rule`` makes (a rule
    without state, backprop's, passes any ``rule_state`` on unchanged)."""
    if not isinstance(state, TrainState):
        raise ValueError(f"state must be a TrainState (init_state), got {type(state).__name__}")
    net.check_call(state.params, np.zeros((1, net.sizes[0]), np.float32))
    dtype = jnp.result_type(state.params[0]["w"])
    expected = _memory.opt_state_shapes(optimizer, net, dtype)
    if not _same_layout(expected, state.opt_state):
        raise ValueError(
            f"state: its optimizer state ({_state_kind(state.opt_state)}) is not what the "
            f"optimizer makes ({_state_kind(expected)}); it seems to come from another "
            "optimizer: pass the optimizer it was trained with, or a fresh init_state(net, "
            "optimizer, key)"
        )
    if not _rules.has_state(rule):
        return
    expected = _memory.rule_state_shapes(rule, net, dtype)
    if not _same_layout(expected, state.rule_state):
        have, want = len(jax.tree.leaves(state.rule_state)), len(jax.tree.leaves(expected))
        raise ValueError(
            f"state: its rule_state ({have} arrays) is not what the learning rule "
            f"{rule.name!r} makes ({want} arrays); pass the engine it was trained "
            f"with, or a fresh init_state(net, optimizer, key, rule=...)"
        )


def _same_layout(expected, tree) -> bool:
    """Whether ``tree`` has ``expected``'s structure and each leaf its shape and dtype."""
    shapes = [(np.shape(a), _dtype(a)) for a in jax.tree.leaves(tree)]
    wanted = [(a.shape, a.dtype) for a in jax.tree.leaves(expected)]
    return jax.tree.structure(expected) == jax.tree.structure(tree) and shapes == wanted


def _dtype(a) -> np.dtype:
    return a.dtype if hasattr(a, "dtype") else np.asarray(a).dtype


def _state_kind(opt_state) -> str:
    """The optax state types in ``opt_state``, as ``"ScaleByAdamState, EmptyState"``."""
    nodes = jax.tree.leaves(
        opt_state, is_leaf=lambda n: isinstance(n, tuple) and hasattr(n, "_fields")
    )
    names = [type(n).__name__ for n in nodes if hasattr(n, "_fields")]
    return ", ".join(dict.fromkeys(names)) or "no state"


def _mesh_of(x, devices: Sequence[jax.Device] | None):
    """The mesh ``fit`` trains on: that of data split over one, else one over ``devices``."""
    if not sharding.is_split_rows(x):
        return sharding.data_mesh(devices)
    mesh = x.sharding.mesh
    if devices is not None and set(devices) != set(mesh.devices.flat):
        raise ValueError(
            f"devices: the data is split over {mesh.size} other devices; pass devices=None"
        )
    return mesh


def _blocks(run: _Run) -> Iterator[Block]:
    state, progress, epochs = run.state, run.progress, int(run.limit)
    while (done := int(progress.epoch)) < epochs and not bool(progress.stopped):
        with sharding.on_mesh(run.mesh):
            state, progress, outcome = run.program(state, progress, run.limit, *run.data)
        metrics, ran, nonfinite_step, params_finite = jax.device_get(outcome)  # once per block
        ran = int(ran)
        # NumPy's tolist: Python ints, floats, bools and (per-layer) lists, at C speed.
        columns = {"epoch": list(range(done + 1, done + ran + 1))}
        for name in ["train_loss", *sorted(set(metrics) - {"train_loss"})]:
            column = metrics[name][:ran]
            columns[name] = column.astype(_PLAIN.get(column.dtype.kind)).tolist()
        diverged = None
        if nonfinite_step:  # the run stopped after the epoch it happened in
            diverged = (done + ran, int(nonfinite_step), "loss")
        elif not params_finite:  # the block's last update
            diverged = (done + ran, int(state.step), "parameters")
        stop = None
        if optim.is_solver(run.optimizer) and not diverged:
            reason = optim.stop_reason(state.opt_state)
            stop = None if reason is None else (done + ran, *reason)
        yield Block(state, progress, columns, diverged, stop)
        if diverged:
            return


# Metrics as records hold Python float (not float32), int and bool values.
_PLAIN = {"f": np.float64, "i": np.int64, "b": np.bool_}


def _warn_findings(history: dict[str, list], net: MLP) -> None:
    for finding in _diagnostics.findings(history, net):
        warnings.warn(finding, _diagnostics.DiagnosticWarning, stacklevel=3)
