"""The compiled block of epochs ``fit_blocks`` runs, keyed by its ``FitOptions``.

One jitted call runs up to ``epochs_per_call`` epochs (a ``lax.while_loop``), each
followed by evaluation and the early-stopping bookkeeping, all on the device,
so the host synchronises once per block, not once per step.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from funcbp import diagnostics as _diagnostics
from funcbp import optim
from funcbp._jax.caches import bounded_cache
from funcbp._jax.shared_program import SharedProgram
from funcbp.mlp import MLP
from funcbp.train._full_batch import make_solver_epoch
from funcbp.train._options import FitOptions
from funcbp.train._step import evaluate_sets, make_epoch


def block_options(options: FitOptions) -> FitOptions:
    """``options`` as far as they shape the compiled block's program.

    ``epochs_per_call`` resolved (``None``: about 50 blocks per run) and ``epochs``
    set to it (a run's length is an argument of the block, not part of it);
    ``dtype`` (the state's own decides) and ``devices`` (the mesh does) at their
    defaults. Equal results mean the same program.
    """
    per_call = options.epochs_per_call or max(1, math.ceil(options.epochs / 50))
    return dataclasses.replace(options, epochs=per_call, epochs_per_call=per_call,
                               dtype=jnp.float32, devices=None)  # fmt: skip


def block_program(
    net: MLP,
    optimizer: optax.GradientTransformation,
    options: FitOptions,
    eval_rows: tuple[tuple[str, int], ...],
    mesh: Mesh | None,
    samples: int,
) -> SharedProgram:
    """``run(state, progress, limit, x, y, w, eval_data) -> (state, progress, outcome)``.

    Up to ``options.epochs_per_call`` epochs on the first ``samples`` rows of ``x``
    (the rest pad it to divide over ``mesh``), weighted by ``w`` ``[n]`` (``None``:
    unweighted), each then evaluated on ``eval_data`` (``{name: (x, y)}`` or
    ``(x, y, w)``, the first ``n`` rows of each as
    ``eval_rows`` ``((name, n), ...)`` says), fewer when ``progress.epoch`` reaches
    ``limit`` or the run stops. ``outcome``: ``(columns, ran, nonfinite_step,
    params_finite)``, ``columns`` ``{metric: [epochs_per_call]}``.

    Cached by ``block_options(options)`` and the other arguments, so a second
    ``fit`` with the same network, optimizer object and settings reuses the
    compiled program; with an identical new optimizer object it traces again but
    reuses XLA's executable (``SharedProgram``).
    """
    return _compile_block(net, optimizer, block_options(options), eval_rows, mesh, samples)


@bounded_cache(maxsize=32)
def _compile_block(net, optimizer, options: FitOptions, eval_rows, mesh, samples) -> SharedProgram:
    per_call, patience = options.epochs_per_call, options.patience
    solver = optim.is_solver(optimizer)
    if solver:  # its aux: the iteration's counts, columns as they are
        epoch_fn = make_solver_epoch(net, optimizer, options.engine, mesh, samples)
    else:
        epoch_fn = make_epoch(net, optimizer, batch_size=options.batch_size, engine=options.engine,
                              diagnostics_every=options.diagnostics_every, mesh=mesh,
                              samples=samples)  # fmt: skip
    monitor = f"{eval_rows[0][0]}_loss" if eval_rows else None

    def one_epoch(state, progress, x, y, w, eval_data):
        """One epoch, then evaluation: ``(state, progress, metrics, nonfinite_step)``.

        ``nonfinite_step`` is the 1-based number of the first step whose loss is not
        finite, 0 when all are.
        """
        steps_before = state.step
        state, (losses, aux) = epoch_fn(state, x, y, w)
        finite = jnp.isfinite(losses)
        nonfinite_step = jnp.where(
            finite.all(), 0, steps_before + jnp.argmin(finite).astype(jnp.int32) + 1
        )
        summary = aux if solver else _diagnostics.epoch_summary(aux)
        metrics = {"train_loss": jnp.mean(losses), **summary}
        for name, values in evaluate_sets(net, state.params, eval_rows, eval_data).items():
            metrics.update({f"{name}_{metric}": value for metric, value in values.items()})
        stopped = nonfinite_step > 0
        if solver:  # converged, or failed with the best parameters kept
            stopped |= state.opt_state.stop > 0
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

    def block(state, progress, limit, x, y, w, eval_data):
        # Up to per_call epochs, fewer when the run reaches `limit` or stops (early
        # stopping, a non-finite loss): a while loop, so no epoch is skipped in a branch.
        shapes = jax.eval_shape(one_epoch, state, progress, x, y, w, eval_data)[2]
        columns = jax.tree.map(lambda s: jnp.zeros((per_call, *s.shape), s.dtype), shapes)

        def more(carry):
            ran, _, progress, _, _ = carry
            return (ran < per_call) & (progress.epoch < limit) & ~progress.stopped

        def epoch(carry):
            ran, state, progress, columns, _ = carry
            state, progress, metrics, nonfinite_step = one_epoch(state, progress, x, y, w,
                                                                 eval_data)  # fmt: skip
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
