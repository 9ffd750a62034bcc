"""Training: a ``TrainState`` pytree, a pure train step, scan-fused epochs, ``fit``.

The building blocks are pure functions a research script can ``jax.jit`` itself:
``make_train_step`` (gradient by either engine + optax update) and
``make_epoch`` (one pass over the data: an on-device shuffle, then ``lax.scan``
over the mini-batches). ``fit`` compiles one program that runs a block of
epochs, evaluates after each and keeps the early-stopping bookkeeping on the
device, so the host synchronises once per block, not once per step.

Mini-batches: each epoch draws a fresh permutation and cuts it into
``n // batch_size`` full batches; the ``n % batch_size`` samples left over are
skipped for that epoch (a different set each epoch), so every step sees a batch
of the same shape and the epoch compiles once.
"""

from __future__ import annotations

import functools
import math
import numbers
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from funcbp import data as _data
from funcbp import diagnostics as _diagnostics
from funcbp import sharding
from funcbp._jax.shared_program import SharedProgram
from funcbp.backprop import backprop_with_cache
from funcbp.mlp import MLP, check_key, initial_params

Array = jax.Array
Params = list[dict[str, Array]]
ENGINES = ("backprop", "autodiff")


class TrainState(NamedTuple):
    """Everything that changes during training; a pytree."""

    params: Params  # [{"w": [n_in, n_out], "b": [n_out]}, ...]
    opt_state: optax.OptState
    step: Array  # shape=(), int32: optimizer steps taken
    key: Array  # jax.random.key: shuffling


def init_state(
    net: MLP, optimizer: optax.GradientTransformation, key: Array, dtype=jnp.float32
) -> TrainState:
    """Fresh parameters (``net.init``) and optimizer state; ``key`` seeds both.

    ``key``: ``jax.random.key(seed)`` (a legacy ``jax.random.PRNGKey`` works too).
    """
    check_key(key)
    params, opt_state, k_train = _initializer(net.init_rules, optimizer, jnp.dtype(dtype))(key)
    return TrainState(params, opt_state, np.zeros((), np.int32), k_train)


@functools.lru_cache(maxsize=32)
def _initializer(init_rules, optimizer, dtype) -> SharedProgram:
    """One program: parameters, optimizer state and the training key from ``key``.

    A new but identical optimizer object (``optax.adam(...)`` in a loop) traces it
    again and reuses the executable.
    """

    def initialize(key: Array):
        k_params, k_train = jax.random.split(key)
        params = initial_params(init_rules, k_params, dtype)
        return params, optimizer.init(params), k_train

    return SharedProgram(initialize)


def _engine(net: MLP, engine: str) -> Callable:
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    return net.backprop if engine == "backprop" else net.autodiff


def make_train_step(
    net: MLP,
    optimizer: optax.GradientTransformation,
    engine: str = "backprop",
    diagnostics: bool = False,
) -> Callable[[TrainState, Array, Array], tuple[TrainState, Any]]:
    """``step(state, x [batch, n_in], y) -> (state, loss)``: gradient, update, apply.

    With ``diagnostics=True`` it returns ``(state, (loss, stats))``, ``stats``
    being ``funcbp.diagnostics``' per-layer statistics of this step. The
    hand-derived engine computes every ingredient anyway; the autodiff engine
    runs the hand-derived pass beside ``jax.grad`` for them.
    """
    value_and_grad = _engine(net, engine)

    def apply(state: TrainState, grads: Params) -> TrainState:
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return TrainState(params, opt_state, state.step + 1, state.key)

    def step(state: TrainState, x: Array, y: Array) -> tuple[TrainState, Array]:
        loss, grads = value_and_grad(state.params, x, y)
        return apply(state, grads), loss

    def step_with_stats(state: TrainState, x: Array, y: Array):
        result, cache = backprop_with_cache(net, state.params, x, y)
        loss, grads = result.loss, result.grads
        if engine == "autodiff":
            loss, grads = value_and_grad(state.params, x, y)
        new = apply(state, grads)
        stats = _diagnostics.layer_stats(net, state.params, cache, result.deltas, grads, new.params)
        return new, (loss, stats)

    return step_with_stats if diagnostics else step


def make_epoch(
    net: MLP,
    optimizer: optax.GradientTransformation,
    *,
    batch_size: int | None,
    engine: str = "backprop",
    diagnostics_every: int | None = None,
    mesh: Mesh | None = None,
    samples: int | None = None,
) -> Callable[[TrainState, Array, Array], tuple[TrainState, Any]]:
    """``epoch(state, x [n, n_in], y) -> (state, losses [steps])``, one loss per step.

    ``batch_size=None`` trains full-batch: one step on all ``n`` samples, no shuffle.
    ``mesh`` (``funcbp.sharding.data_mesh``) splits every batch over its devices.
    ``samples``: train on the first ``samples`` rows only (default: all ``n``), as
    when ``funcbp.sharding.split_rows`` padded the data to divide over the devices.

    With ``diagnostics_every=N`` the output is ``(losses, (stats, sampled))``:
    steps 0, N, 2N, ... of each epoch take ``funcbp.diagnostics``' statistics
    (but not in the last ``steps % N``; an epoch of fewer than N steps samples its first),
    ``stats`` stacks them ``[k, ...]`` and ``sampled`` ``[k]`` marks the real
    ones. The pattern is static, so the other steps are the plain step with no
    branch (full-batch training samples the epochs with ``state.step % N == 0``).
    """
    every = diagnostics_every

    def on_devices(step):
        """``step`` with its batch split over the mesh."""
        return lambda state, x, y: step(state, *sharding.split_batch((x, y), mesh))

    step = on_devices(make_train_step(net, optimizer, engine))
    step_with_stats = on_devices(make_train_step(net, optimizer, engine, diagnostics=True))

    def full_batch(state: TrainState, x: Array, y: Array):
        if every is None:
            state, loss = step(state, x, y)
            return state, loss[None]

        def sample(state):
            state, (loss, stats) = step_with_stats(state, x, y)
            return state, (loss, stats, jnp.ones((), bool))

        def plain(state):
            new, loss = step(state, x, y)
            return new, (loss, _diagnostics.empty_stats(state.params), jnp.zeros((), bool))

        state, (loss, stats, sampled) = jax.lax.cond(state.step % every == 0, sample, plain, state)
        return state, (loss[None], jax.tree.map(lambda a: a[None], (stats, sampled)))

    def steps(state: TrainState, x: Array, y: Array, batches: Array):
        """Plain steps over ``batches`` ``[k, size]`` (k may be 0)."""
        return jax.lax.scan(lambda s, rows: step(s, x[rows], y[rows]), state, batches)

    def sampled_group(state: TrainState, x: Array, y: Array, batches: Array):
        """A step with statistics on ``batches[0]``, then plain steps on the rest."""
        state, (loss, stats) = step_with_stats(state, x[batches[0]], y[batches[0]])
        state, losses = steps(state, x, y, batches[1:])
        return state, (jnp.concatenate([loss[None], losses]), stats)

    def epoch(state: TrainState, x: Array, y: Array) -> tuple[TrainState, Any]:
        n = x.shape[0] if samples is None else samples
        _check_batch_size(batch_size, n)
        size = n if batch_size is None else batch_size
        if size == n:
            return full_batch(state, x[:n], y[:n])
        key, shuffle = jax.random.split(state.key)
        batches = jax.random.permutation(shuffle, n)[: (n // size) * size].reshape(-1, size)
        state = state._replace(key=key)
        if every is None:
            return steps(state, x, y, batches)
        # Groups of `every` steps, each opened by a sampled step; the steps left over
        # at the end of the epoch run plain (an epoch shorter than `every` is one group).
        size_of_group = min(every, batches.shape[0])
        groups = batches.shape[0] // size_of_group
        state, (losses, stats) = jax.lax.scan(
            lambda s, b: sampled_group(s, x, y, b),
            state,
            batches[: groups * size_of_group].reshape(groups, size_of_group, size),
        )
        state, tail_losses = steps(state, x, y, batches[groups * size_of_group :])
        losses = jnp.concatenate([losses.reshape(-1), tail_losses])
        return state, (losses, (stats, jnp.ones(groups, bool)))

    return epoch


def evaluate(net: MLP, params: Params, x: Array, y: Array) -> dict[str, Array]:
    """``{"loss": ..., "accuracy": ...}`` (accuracy only for classification costs)."""
    out = net.apply(params, x)
    metrics = {"loss": net.loss(params, x, y)}
    if net.cost == "softmax_cross_entropy":
        labels = y if y.ndim == 1 else jnp.argmax(y, axis=-1)
        metrics["accuracy"] = jnp.mean(jnp.argmax(out, axis=-1) == labels)
    elif net.cost == "sigmoid_binary_cross_entropy":
        metrics["accuracy"] = jnp.mean((out > 0) == (y > 0.5))
    return metrics


class Progress(NamedTuple):
    """What ``fit`` carries from epoch to epoch on the device besides the ``TrainState``."""

    epoch: Array  # shape=(), int32: epochs run
    best_params: Params | None  # early stopping only: parameters of the best epoch
    best: Array  # shape=(), float32 (float64 for float64 parameters): best monitored loss
    best_epoch: Array  # shape=(), int32
    stopped: Array  # shape=(), bool: early stopping fired, or a loss was not finite


def init_progress(state: TrainState, patience: int | None = None) -> Progress:
    """The progress of a run that has not started."""
    # NumPy scalars: jnp ones would each compile a tiny program before training starts.
    loss_dtype = np.promote_types(state.params[0]["w"].dtype, np.float32)
    return Progress(
        np.zeros((), np.int32),
        state.params if patience else None,
        np.asarray(np.inf, loss_dtype),
        np.zeros((), np.int32),
        np.zeros((), bool),
    )


class Block(NamedTuple):
    """What ``fit_blocks`` yields after each compiled call."""

    state: TrainState
    progress: Progress
    columns: dict[str, list]  # per epoch run: epoch, train_loss, <eval>_<metric>, ...
    diverged: tuple[int, int, str] | None  # TrainingDiverged's (epoch, step, what)

    @property
    def records(self) -> list[dict[str, Any]]:
        """``columns`` as one record per epoch run."""
        names = list(self.columns)
        return [
            dict(zip(names, row, strict=True)) for row in zip(*self.columns.values(), strict=True)
        ]


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


def _checked_arrays(dataset, net: MLP) -> tuple[Any, Any]:
    """``(x, y)`` of a ``Dataset`` or pair, refused (``ValueError``) unless they fit ``net``.

    Host data comes back as NumPy arrays. Global arrays split by rows
    (``sharding.rows_from_processes``) stay where they are; the rows this process
    holds are the ones checked.
    """
    if sharding.is_split_rows(dataset):  # never a Dataset: not a pytree of jax.Arrays
        x, y = dataset
        _data.check_fits((sharding.local_rows(x), sharding.local_rows(y)), net)
        return x, y
    if not isinstance(dataset, _data.Dataset):
        dataset = tuple(np.asarray(a) for a in dataset)
    _data.check_fits(dataset, net)
    return (dataset.x, dataset.y) if isinstance(dataset, _data.Dataset) else dataset


def fit_blocks(
    net: MLP,
    optimizer: optax.GradientTransformation,
    train,
    *,
    epochs: int,
    batch_size: int | None,
    engine: str = "backprop",
    eval: Mapping[str, Any] | None = None,
    key: Array | None = None,
    patience: int | None = None,
    state: TrainState | None = None,
    progress: Progress | None = None,
    dtype=jnp.float32,
    epochs_per_call: int | None = None,
    diagnostics_every: int | None = None,
    devices: Sequence[jax.Device] | None = None,
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
    if eval is not None and not isinstance(eval, Mapping):
        raise ValueError(
            f"eval must be a mapping {{name: dataset}}, such as {{'test': (x, y)}}, got "
            f"{type(eval).__name__}"
        )
    eval = dict(eval or {})
    x, y = _checked_arrays(train, net)
    eval_arrays = {name: _checked_arrays(dataset, net) for name, dataset in eval.items()}
    _check_counts(epochs=epochs, patience=patience, epochs_per_call=epochs_per_call,
                  diagnostics_every=diagnostics_every)  # fmt: skip
    _check_batch_size(batch_size, len(x))
    if patience is not None and not eval:
        raise ValueError("patience (early stopping) needs an eval dataset to monitor")
    mesh = _mesh_of(x, devices)
    sharding.check_divides(mesh, batch_size or len(x), "batch_size" if batch_size else "full batch")
    if state is None:
        state = init_state(net, optimizer, jax.random.key(0) if key is None else key, dtype)
    if progress is None:
        progress = init_progress(state, patience)

    per_call = epochs_per_call or max(1, math.ceil(epochs / 50))
    dtype = jnp.result_type(state.params[0]["w"])
    eval_rows, device_eval = eval_sets_on_devices(eval_arrays, dtype, mesh)
    run = _compile_block(net, optimizer, engine, batch_size, per_call, eval_rows, patience,
                         diagnostics_every, mesh, len(x))  # fmt: skip
    state, progress = sharding.replicate((state, progress), mesh)
    # The training rows split over the devices (padded to divide), as the evaluation sets.
    xs, ys = inputs_in_dtype(x, y, dtype, functools.partial(sharding.split_rows, mesh=mesh))
    # Arguments are checked above, when fit_blocks is called; training runs as it is iterated.
    return _blocks(run, mesh, state, progress, epochs, xs, ys, device_eval)


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


def inputs_in_dtype(x, y, dtype, place: Callable) -> tuple[Array, Array]:
    """Inputs (and targets, unless integer labels) in ``dtype`` on the devices, as ``fit`` has them.

    Host arrays are cast on the host, then ``place``d; global arrays are cast where they are.
    """
    if isinstance(x, jax.Array):  # already placed: sharding.rows_from_processes
        return x.astype(dtype), y if y.ndim == 1 else y.astype(dtype)
    return place((np.asarray(x, dtype), y if y.ndim == 1 else np.asarray(y, dtype)))


def eval_sets_on_devices(
    eval_arrays: Mapping[str, tuple[Any, Any]], dtype, mesh: Mesh | None
) -> tuple[tuple[tuple[str, int], ...], dict[str, tuple[Array, Array]]]:
    """Evaluation sets ``{name: (x, y)}`` as ``fit`` holds them: ``(rows, on_devices)``.

    ``on_devices``: each set in ``dtype`` (``inputs_in_dtype``), split by rows over
    the devices and padded to divide, so each device evaluates its share;
    ``rows``: ``((name, n), ...)``, each set's real rows, for ``evaluate_sets``.
    """
    split = functools.partial(sharding.split_rows, mesh=mesh)
    rows = tuple((name, len(x)) for name, (x, _) in eval_arrays.items())
    return rows, {name: inputs_in_dtype(x, y, dtype, split) for name, (x, y) in eval_arrays.items()}


def evaluate_sets(net: MLP, params: Params, rows, on_devices) -> dict[str, dict[str, Array]]:
    """``{name: evaluate(...)}`` on each set's first ``n`` rows (the rest only pad it).

    ``rows`` and ``on_devices`` as ``eval_sets_on_devices`` gives them.
    """
    return {name: evaluate(net, params, *(a[:n] for a in on_devices[name])) for name, n in rows}


def _blocks(run, mesh, state, progress, epochs, xs, ys, device_eval) -> Iterator[Block]:
    limit = jnp.asarray(epochs, jnp.int32)
    while (done := int(progress.epoch)) < epochs and not bool(progress.stopped):
        with sharding.on_mesh(mesh):
            state, progress, outcome = run(state, progress, limit, xs, ys, device_eval)
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
        yield Block(state, progress, columns, diverged)
        if diverged:
            return


# Metrics as records hold Python float (not float32), int and bool values.
_PLAIN = {"f": np.float64, "i": np.int64, "b": np.bool_}


def fit(
    net: MLP,
    optimizer: optax.GradientTransformation,
    train,
    *,
    epochs: int,
    batch_size: int | None,
    engine: str = "backprop",
    eval: Mapping[str, Any] | None = None,
    key: Array | None = None,
    patience: int | None = None,
    state: TrainState | None = None,
    dtype=jnp.float32,
    epochs_per_call: int | None = None,
    diagnostics_every: int | None = None,
    devices: Sequence[jax.Device] | None = None,
    callback: Callable[[dict[str, list]], None] | None = None,
) -> tuple[TrainState, dict[str, list]]:
    """Trains ``net`` and returns ``(final state, per-epoch history)``.

    Args:
      net: the network spec.
      optimizer: any optax ``GradientTransformation`` (see ``funcbp.optim``).
      train: a ``funcbp.data.Dataset`` or an ``(x, y)`` pair.
      epochs: passes over ``train``.
      batch_size: samples per step, or ``None`` for full-batch training.
      engine: ``"backprop"`` (hand-derived) or ``"autodiff"`` (``jax.grad``).
      eval: ``{name: dataset}`` evaluated after every epoch; the first one is
        monitored for early stopping.
      key: seeds the initial parameters and the shuffling.
      patience: stop after this many epochs without a better monitored loss and
        restore the best parameters (needs ``eval``).
      state: continue from this state instead of initialising one.
      dtype: parameter dtype for a fresh state.
      epochs_per_call: epochs compiled into one call (default: all of them, or
        about 50 blocks when a ``callback`` wants progress).
      diagnostics_every: record ``funcbp.diagnostics``' per-layer statistics every
        this many steps (history: their mean over each epoch's sampled steps) and
        warn (``DiagnosticWarning``) when they show a known failure.
      devices: train data-parallel over these (default: all devices; see
        ``funcbp.sharding``); the batch size must divide over them.
      callback: called with the history after each block of epochs.

    Returns:
      The final ``TrainState`` (best parameters when early stopping restored them)
      and ``{"epoch": [...], "train_loss": [...], "<eval>_loss": [...],
      "<eval>_accuracy": [...]}``.

    Raises:
      TrainingDiverged: a training loss was NaN or infinite (training stops there).
    """
    history: dict[str, list] = {"epoch": [], "train_loss": []}
    blocks = fit_blocks(
        net, optimizer, train, epochs=epochs, batch_size=batch_size, engine=engine, eval=eval,
        key=key, patience=patience, state=state, dtype=dtype, diagnostics_every=diagnostics_every,
        devices=devices,
        epochs_per_call=epochs_per_call or (None if callback else epochs),
    )  # fmt: skip
    for block in blocks:
        for name, values in block.columns.items():
            history.setdefault(name, []).extend(values)
        if block.diverged:
            _warn_findings(history, net)  # exploding gradients, say, before the NaN
            raise TrainingDiverged(*block.diverged, history)
        if callback is not None:
            callback(history)
        state, progress = block.state, block.progress
    if patience is not None and bool(progress.stopped):
        state = state._replace(params=progress.best_params)
        history["best_epoch"] = int(progress.best_epoch)
    _warn_findings(history, net)
    return state, history


def _warn_findings(history: dict[str, list], net: MLP) -> None:
    for finding in _diagnostics.findings(history, net):
        warnings.warn(finding, _diagnostics.DiagnosticWarning, stacklevel=3)


def _is_count(value: Any, most: float = math.inf) -> bool:
    """An integer (Python's or NumPy's, not a bool) in ``[1, most]``."""
    integer = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    return integer and 1 <= value <= most


def _check_counts(**counts) -> None:
    for name, value in counts.items():
        if value is None and name != "epochs":
            continue
        if not _is_count(value):
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_batch_size(batch_size: int | None, n: int) -> None:
    if batch_size is not None and not _is_count(batch_size, n):
        raise ValueError(
            f"batch_size must be an integer in [1, {n}] (the training set size) or None "
            f"for full batch, got {batch_size!r}"
        )


@functools.lru_cache(maxsize=32)
def _compile_block(net, optimizer, engine, batch_size, per_call, eval_rows, patience, every,
                   mesh, samples):  # fmt: skip
    """One jitted call: ``per_call`` epochs on the first ``samples`` rows, each then evaluated.

    ``eval_rows``: ``((name, rows), ...)``, each evaluation set's real rows (as for
    training, rows beyond them only pad the data to divide over the devices).

    Cached, so a second ``fit`` with the same network, optimizer object and settings
    reuses the compiled program instead of tracing and compiling it again; with an
    identical new optimizer object it traces again but reuses XLA's executable.
    """
    epoch_fn = make_epoch(net, optimizer, batch_size=batch_size, engine=engine,
                          diagnostics_every=every, mesh=mesh, samples=samples)  # fmt: skip
    monitor = f"{eval_rows[0][0]}_loss" if eval_rows else None

    def one_epoch(state, progress, x, y, eval_data):
        """One epoch, then evaluation: ``(state, progress, metrics, nonfinite_step)``.

        ``nonfinite_step`` is the 1-based number of the first step whose loss is not
        finite, 0 when all are.
        """
        steps_before = state.step
        state, outputs = epoch_fn(state, x, y)
        losses = outputs if every is None else outputs[0]
        finite = jnp.isfinite(losses)
        nonfinite_step = jnp.where(
            finite.all(), 0, steps_before + jnp.argmin(finite).astype(jnp.int32) + 1
        )
        metrics = {"train_loss": jnp.mean(losses)}
        if every is not None:
            stats, sampled = outputs[1]
            metrics.update(_diagnostics.epoch_summary(stats, sampled))
        for name, values in evaluate_sets(net, state.params, eval_rows, eval_data).items():
            metrics.update({f"{name}_{metric}": value for metric, value in values.items()})
        stopped = nonfinite_step > 0
        if patience is not None:
            score = metrics[monitor].astype(progress.best.dtype)
            better = score < progress.best
            best_params = jax.tree.map(
                lambda new, old: jnp.where(better, new, old), state.params, progress.best_params
            )
            best = jnp.where(better, score, progress.best)
            best_epoch = jnp.where(better, progress.epoch + 1, progress.best_epoch)
            stopped |= progress.epoch + 1 - best_epoch >= patience
            progress = progress._replace(best_params=best_params, best=best, best_epoch=best_epoch)
        progress = progress._replace(epoch=progress.epoch + 1, stopped=stopped)
        return state, progress, metrics, nonfinite_step

    # Jitted, so the loop body reuses the trace made for the metrics' shapes (XLA
    # inlines the call: the compiled program is the same).
    one_epoch = jax.jit(one_epoch)

    def block(state, progress, limit, x, y, eval_data):
        # Up to per_call epochs, fewer when the run reaches `limit` or stops (early
        # stopping, a non-finite loss): a while loop, so no epoch is skipped in a branch.
        shapes = jax.eval_shape(one_epoch, state, progress, x, y, eval_data)[2]
        columns = jax.tree.map(lambda s: jnp.zeros((per_call, *s.shape), s.dtype), shapes)

        def more(carry):
            ran, _, progress, _, _ = carry
            return (ran < per_call) & (progress.epoch < limit) & ~progress.stopped

        def epoch(carry):
            ran, state, progress, columns, _ = carry
            state, progress, metrics, nonfinite_step = one_epoch(state, progress, x, y, eval_data)
            columns = jax.tree.map(
                lambda c, value: jax.lax.dynamic_update_index_in_dim(c, value, ran, 0),
                columns,
                metrics,
            )
            return ran + 1, state, progress, columns, nonfinite_step

        start = (jnp.int32(0), state, progress, columns, jnp.int32(0))
        ran, state, progress, columns, nonfinite_step = jax.lax.while_loop(more, epoch, start)
        # A step's loss is taken before its update, so a non-finite update shows in the
        # next step's loss, except for the block's last step: its parameters tell.
        leaves = jax.tree.leaves(state.params)
        params_finite = jnp.all(jnp.stack([jnp.isfinite(p).all() for p in leaves]))
        return state, progress, (columns, ran, nonfinite_step, params_finite)

    return SharedProgram(block)
