"""The pure, jit-able building blocks of training: state, step, epoch, evaluation, progress.

``make_train_step`` is one gradient (by an engine: ``"backprop"``, ``"autodiff"`` or a
learning rule of ``funcbp.rules``, by name or value) and optax update;
``make_epoch`` one pass over the data: an on-device shuffle, then ``lax.scan``
over the mini-batches. Both return ``(state, (loss or losses, aux))``, ``aux``
a mapping that is empty unless diagnostics are on, so a caller never branches
on that flag. Nothing here touches the host: ``funcbp.train._fit`` drives them.

Mini-batches: each epoch draws a fresh permutation and cuts it into
``n // batch_size`` full batches; the ``n % batch_size`` samples left over are
skipped for that epoch (a different set each epoch), so every step sees a batch
of the same shape and the epoch compiles once.

Sample weights ``[n]`` (optional) travel with the rows, sliced by the same
permutation, and make each step's loss their weighted mean. A network with
dropout draws each step's masks from a key split off ``TrainState.key``; one
without dropout splits nothing (its program is the plain one).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from funcbp import diagnostics as _diagnostics
from funcbp import rules as _rules
from funcbp import sharding
from funcbp._jax.caches import bounded_cache
from funcbp._jax.memory import refuse_unless_fits
from funcbp._jax.shared_program import SharedProgram
from funcbp.backprop import (
    BACKPROP,
    BackwardRule,
    backprop_with_cache,
    backward,
    with_weight_penalty,
)
from funcbp.mlp import MLP, check_key, initial_params
from funcbp.train import _memory
from funcbp.train._engine import Engine, check_engine, gradient

Array = jax.Array
Params = list[dict[str, Array]]
Aux = dict[str, Array]  # {} without diagnostics; funcbp.diagnostics' statistics with them


class TrainState(NamedTuple):
    """Everything that changes during training; a pytree."""

    params: Params  # [{"w": [n_in, n_out], "b": [n_out]}, ...]
    opt_state: optax.OptState
    step: Array  # shape=(), int32: optimizer steps taken
    key: Array  # jax.random.key: shuffling and dropout masks
    rule_state: Any = ()  # the learning rule's state (its init's pytree); () for backprop


def init_state(
    net: MLP,
    optimizer: optax.GradientTransformation,
    key: Array,
    dtype=jnp.float32,
    rule: _rules.Rule = BACKPROP,
) -> TrainState:
    """Fresh parameters (``net.init``), optimizer state and ``rule``'s state; ``key`` seeds all.

    ``key``: ``jax.random.key(seed)`` (a legacy ``jax.random.PRNGKey`` works too).
    ``rule``: a ``funcbp.BackwardRule`` or ``funcbp.rules.LearningRule`` whose ``init``
    makes ``rule_state`` from
    ``jax.random.fold_in(k_params, 1)``, a key split off the parameters' own; a
    rule without state (``BACKPROP``) draws nothing, so its parameters and
    training key are those of ``init_state(net, optimizer, key)``.
    """
    check_key(key)
    check_optimizer(optimizer)
    if not _rules.is_rule(rule):
        raise ValueError("rule must be a funcbp.BackwardRule (such as funcbp.BACKPROP) or a "
                         f"funcbp.rules.LearningRule, got {rule!r}")  # fmt: skip
    dtype = jnp.dtype(dtype)
    needs = _memory.training_bytes(net, optimizer, dtype, rule=rule)
    refuse_unless_fits(f"init_state: the network {net.sizes}", needs)
    stateful = _rules.has_state(rule)
    program = _initializer(net.init_rules, optimizer, dtype, *((net, rule) if stateful else ()))
    params, opt_state, k_train, rule_state = program(key)
    return TrainState(params, opt_state, np.zeros((), np.int32), k_train, rule_state)


@bounded_cache(maxsize=32)
def _initializer(init_rules, optimizer, dtype, net=None, rule=None) -> SharedProgram:
    """One program: parameters, optimizer state, the training key and (with a ``rule``
    that has state) the rule's state from ``key``.

    A new but identical optimizer object (``optax.adam(...)`` in a loop) traces it
    again and reuses the executable.
    """

    def initialize(key: Array):
        k_params, k_train = jax.random.split(key)
        params = initial_params(init_rules, k_params, dtype)
        rule_state = () if rule is None else rule.init(jax.random.fold_in(k_params, 1), net, params)
        return params, optimizer.init(params), k_train, rule_state

    return SharedProgram(initialize)


# Epochs and steps are counted in int32 on the device (``TrainState.step``, ``Progress.epoch``).
MAX_COUNT = 2**31 - 1


def is_count(value: Any, most: float = MAX_COUNT) -> bool:
    """An integer (Python's or NumPy's, not a bool) in ``[1, most]`` (default: an int32's range)."""
    integer = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    return integer and 1 <= value <= most


def check_count(name: str, value: Any) -> int:
    """``value`` as a Python int, refused (``ValueError``) unless ``is_count``."""
    if not is_count(value):
        raise ValueError(f"{name} must be an integer in [1, 2**31 - 1] (counted in int32), "
                         f"got {value!r}")  # fmt: skip
    return int(value)


def check_optimizer(optimizer: Any) -> None:
    """Refuses (``ValueError``) an optimizer that is not an optax ``GradientTransformation``."""
    if not (callable(getattr(optimizer, "init", None)) and callable(getattr(optimizer, "update",
                                                                            None))):  # fmt: skip
        raise ValueError(
            "optimizer must be an optax GradientTransformation, such as "
            f"funcbp.optim.make('adam', 1e-3) or optax.adam(1e-3), got {optimizer!r}"
        )


def check_batch_size(batch_size: int | None, n: int | None = None) -> None:
    """Refuses (``ValueError``) a batch size that is not ``None`` or in ``[1, n]``."""
    if batch_size is not None and not is_count(batch_size, MAX_COUNT if n is None else n):
        most = "[1, the training set size]" if n is None else f"[1, {n}] (the training set size)"
        raise ValueError(
            f"batch_size must be an integer in {most} or None for full batch, got {batch_size!r}"
        )


def _extras(sample_weight: Array | None, key: Array | None) -> dict[str, Array]:
    return {k: v for k, v in {"sample_weight": sample_weight, "key": key}.items() if v is not None}


def make_train_step(
    net: MLP,
    optimizer: optax.GradientTransformation,
    engine: Engine = "backprop",
    diagnostics: bool = False,
) -> Callable[..., tuple[TrainState, tuple[Array, Aux]]]:
    """``step(state, x [batch, n_in], y, sample_weight=None) -> (state, (loss, aux))``:
    gradient, update, apply.

    ``engine``: ``"backprop"`` (hand-derived), ``"autodiff"`` (``jax.grad``) or a learning
    rule (``funcbp.rules``, by name or value): a ``BackwardRule`` runs the hand-derived
    pass with its ``B_l`` from ``state.rule_state``, a ``LearningRule`` its own
    ``gradient``; ``rule.update(rule_state, params before, params after)`` then
    advances the state. ``sample_weight`` ``[batch]``: the loss is their weighted
    mean. With dropout (``net.hidden_dropout``), the step splits ``state.key`` and
    draws its masks from one half.

    ``aux`` is ``{}``, or with ``diagnostics=True`` ``funcbp.diagnostics``' per-layer
    statistics of this step (each ``[L]``). The hand-derived engine computes every
    ingredient anyway; the autodiff engine runs the hand-derived pass beside
    ``jax.grad`` for them; a rule runs the exact pass beside its own and adds the
    alignment of its update with the exact gradient (``diagnostics.alignment_stats``).
    """
    engine = check_engine(engine)
    value_and_grad = gradient(net, engine)
    rule = engine if _rules.is_rule(engine) else None
    dropout = any(net.hidden_dropout)

    def draw(state: TrainState) -> tuple[TrainState, Array | None]:
        """The state with its key moved on, and this step's dropout key (none without dropout)."""
        if not dropout:
            return state, None
        key, masks = jax.random.split(state.key)
        return state._replace(key=key), masks

    def apply(state: TrainState, grads: Params) -> TrainState:
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        rule_state = state.rule_state
        if rule is not None:
            rule_state = rule.update(rule_state, state.params, params)
        return TrainState(params, opt_state, state.step + 1, state.key, rule_state)

    def step(state: TrainState, x: Array, y: Array, sample_weight: Array | None = None):
        state, key = draw(state)
        loss, grads = value_and_grad(state, x, y, _extras(sample_weight, key))
        return apply(state, grads), (loss, {})

    def step_with_stats(state: TrainState, x: Array, y: Array, sample_weight: Array | None = None):
        state, key = draw(state)
        extras = _extras(sample_weight, key)
        exact, cache = backprop_with_cache(net, state.params, x, y, **extras)
        loss, grads, deltas = exact.loss, exact.grads, exact.deltas
        if isinstance(engine, BackwardRule):  # its deltas, from the same cache and delta_L
            grads, _, deltas = backward(net, state.params, cache, exact.deltas[-1], engine,
                                        state.rule_state)  # fmt: skip
            grads = with_weight_penalty(net, state.params, grads)
        elif engine != "backprop":
            loss, grads = value_and_grad(state, x, y, extras)
        new = apply(state, grads)
        stats = _diagnostics.layer_stats(net, state.params, cache, deltas, grads, new.params)
        if rule is not None:
            stats |= _diagnostics.alignment_stats(state.params, grads, exact.grads, rule,
                                                  state.rule_state)  # fmt: skip
        return new, (loss, stats)

    return step_with_stats if diagnostics else step


def make_epoch(
    net: MLP,
    optimizer: optax.GradientTransformation,
    *,
    batch_size: int | None,
    engine: Engine = "backprop",
    diagnostics_every: int | None = None,
    mesh: Mesh | None = None,
    samples: int | None = None,
) -> Callable[..., tuple[TrainState, tuple[Array, Aux]]]:
    """``epoch(state, x [n, n_in], y, sample_weight=None) -> (state, (losses [steps], aux))``,
    a loss per step (``make_train_step``'s, ``engine`` as it takes it).

    ``batch_size=None`` trains full-batch: one step on all ``n`` samples, no shuffle.
    ``mesh`` (``funcbp.sharding.data_mesh``) splits every batch over its devices.
    ``samples``: train on the first ``samples`` rows only (default: all ``n``), as
    when ``funcbp.sharding.split_rows`` padded the data to divide over the devices.
    ``sample_weight`` ``[n]``: each batch's rows keep their weights (``None``: unweighted).

    ``aux`` is ``{}``, or with ``diagnostics_every=N`` ``funcbp.diagnostics``'
    statistics of steps 0, N, 2N, ... of the epoch (but not in the last
    ``steps % N``; an epoch of fewer than N steps samples its first), each stacked
    ``[k, ...]``, and ``"sampled"`` ``[k]`` marking the real ones
    (``diagnostics.epoch_summary`` reads it). The pattern is static, so the other
    steps are the plain step with no branch (full-batch training samples the
    epochs with ``state.step % N == 0``).
    """
    every = diagnostics_every
    engine = check_engine(engine)

    def on_devices(step):
        """``step`` with its batch (and its weights, if any) split over the mesh."""

        def split(state, x, y, w=None):
            return step(state, *sharding.split_batch((x, y) if w is None else (x, y, w), mesh))

        return split

    step = on_devices(make_train_step(net, optimizer, engine))
    step_with_stats = on_devices(make_train_step(net, optimizer, engine, diagnostics=True))

    def sampled(stats: Aux, mask: Array) -> Aux:
        return {**stats, "sampled": mask}

    def full_batch(state: TrainState, x: Array, y: Array, w: Array | None):
        if every is None:
            state, (loss, aux) = step(state, x, y, w)
            return state, (loss[None], aux)

        def sample(state):
            state, (loss, stats) = step_with_stats(state, x, y, w)
            return state, (loss, sampled(stats, jnp.ones((), bool)))

        def plain(state):
            new, (loss, _) = step(state, x, y, w)
            empty = _diagnostics.empty_stats(state.params, alignment=_rules.is_rule(engine))
            return new, (loss, sampled(empty, jnp.zeros((), bool)))

        state, (loss, aux) = jax.lax.cond(state.step % every == 0, sample, plain, state)
        return state, (loss[None], jax.tree.map(lambda a: a[None], aux))

    def rows_of(data: tuple, rows) -> tuple:
        """``(x, y, w)`` at ``rows`` (``w`` stays ``None`` when unweighted)."""
        return tuple(None if a is None else a[rows] for a in data)

    def steps(state: TrainState, data: tuple, batches: Array):
        """Plain steps over ``batches`` ``[k, size]`` (k may be 0): ``(state, losses [k])``."""
        state, (losses, _) = jax.lax.scan(lambda s, rows: step(s, *rows_of(data, rows)), state,
                                          batches)  # fmt: skip
        return state, losses

    def sampled_group(state: TrainState, data: tuple, batches: Array):
        """A step with statistics on ``batches[0]``, then plain steps on the rest."""
        first = (None if a is None else a[batches[0]] for a in data)  # each array indexed apart
        state, (loss, stats) = step_with_stats(state, *first)
        state, losses = steps(state, data, batches[1:])
        return state, (jnp.concatenate([loss[None], losses]), stats)

    def epoch(
        state: TrainState, x: Array, y: Array, sample_weight: Array | None = None
    ) -> tuple[TrainState, tuple[Array, Aux]]:
        n = x.shape[0] if samples is None else samples
        check_batch_size(batch_size, n)
        size = n if batch_size is None else batch_size
        data = (x, y, sample_weight)
        if size == n:
            return full_batch(state, *rows_of(data, slice(None, n)))
        key, shuffle = jax.random.split(state.key)
        batches = jax.random.permutation(shuffle, n)[: (n // size) * size].reshape(-1, size)
        state = state._replace(key=key)
        if every is None:
            state, losses = steps(state, data, batches)
            return state, (losses, {})
        # Groups of `every` steps, each opened by a sampled step; the steps left over
        # at the end of the epoch run plain (an epoch shorter than `every` is one group).
        size_of_group = min(every, batches.shape[0])
        groups = batches.shape[0] // size_of_group
        state, (losses, stats) = jax.lax.scan(
            lambda s, b: sampled_group(s, data, b),
            state,
            batches[: groups * size_of_group].reshape(groups, size_of_group, size),
        )
        state, tail_losses = steps(state, data, batches[groups * size_of_group :])
        losses = jnp.concatenate([losses.reshape(-1), tail_losses])
        return state, (losses, sampled(stats, jnp.ones(groups, bool)))

    return epoch


def evaluate(
    net: MLP, params: Params, x: Array, y: Array, sample_weight: Array | None = None
) -> dict[str, Array]:
    """``{"loss": ..., "accuracy": ...}`` (accuracy only for classification costs).

    Never drops out. With ``sample_weight`` ``[n]`` the loss is their weighted mean;
    the accuracy stays the plain fraction of rows right.
    """
    out = net.apply(params, x)
    metrics = {"loss": net.loss(params, x, y, sample_weight=sample_weight)}
    if net.cost == "softmax_cross_entropy":
        labels = y if y.ndim == 1 else jnp.argmax(y, axis=-1)
        metrics["accuracy"] = jnp.mean(jnp.argmax(out, axis=-1) == labels)
    elif net.cost == "sigmoid_binary_cross_entropy":
        metrics["accuracy"] = jnp.mean((out > 0) == (y > 0.5))
    return metrics


def evaluate_sets(
    net: MLP,
    params: Params,
    rows: tuple[tuple[str, int], ...],
    on_devices: Mapping[str, tuple[Array, Array]],
) -> dict[str, dict[str, Array]]:
    """``{name: evaluate(...)}`` on each set's first ``n`` rows (the rest only pad it).

    ``rows`` (``((name, n), ...)``) and ``on_devices`` (``{name: (x, y)}``, or
    ``(x, y, sample_weight)`` for a weighted set) as
    ``funcbp.train.eval_sets_on_devices`` gives them.
    """
    return {name: evaluate(net, params, *(a[:n] for a in on_devices[name])) for name, n in rows}


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
