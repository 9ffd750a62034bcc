"""An epoch of a full-batch solver: one iteration of ``funcbp.optim.Solver`` on all the rows.

Where ``make_epoch`` runs optax updates over mini-batches, a solver's epoch builds the
``funcbp.optim.Objective`` of the whole training set (split over the mesh's devices,
as a full batch is) and lets the solver take one iteration, line search or damped
trials included, inside the same compiled block. The epoch's loss is the one the
iteration started from, as a first-order full-batch step reports the loss before its
update; ``aux`` holds the rest of the iteration's ``info``, its counts
(``function_evaluations``, ...), each a column of the history as it is.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
from jax.sharding import Mesh

from funcbp import optim, sharding
from funcbp.mlp import MLP
from funcbp.train._step import TrainState

Array = jax.Array


def make_solver_epoch(
    net: MLP, solver: optim.Solver, engine: str, mesh: Mesh | None, samples: int | None
) -> Callable[..., tuple[TrainState, tuple[Array, dict[str, Array]]]]:
    """``epoch(state, x [n, n_in], y, sample_weight=None) -> (state, (loss [1], counts))``
    on the first ``samples`` rows (all when ``None``); ``engine``: ``"backprop"`` or
    ``"autodiff"`` (``funcbp.optim.objective``)."""

    def epoch(state: TrainState, x: Array, y: Array, sample_weight: Array | None = None):
        n = x.shape[0] if samples is None else samples
        rows = tuple(None if a is None else a[:n] for a in (x, y, sample_weight))
        x, y, w = sharding.split_batch(rows, mesh)
        objective = optim.objective(net, x, y, w, engine)
        params, opt_state, info = solver.update(objective, state.params, state.opt_state)
        state = state._replace(params=params, opt_state=opt_state, step=state.step + 1)
        counts = {name: value for name, value in info.items() if name != "loss"}
        return state, (info["loss"][None], counts)

    return epoch


def check_solver_run(net: MLP, solver: optim.Solver, batch_size, engine, diagnostics_every) -> None:
    """Refuses (``ValueError``, naming the setting) what a full-batch solver cannot do."""
    name = solver.name
    if batch_size is not None:
        raise ValueError(
            f"batch_size: optimizer {name!r} trains full batch (batch_size=None; in a run file "
            f'train.batch_size = "full"), got {batch_size!r}'
        )
    if engine not in ("backprop", "autodiff"):
        raise ValueError(
            f"engine: optimizer {name!r} needs the exact gradient (engine 'backprop' or "
            f"'autodiff'), got the learning rule {getattr(engine, 'name', engine)!r}"
        )
    if any(net.hidden_dropout):
        raise ValueError(
            f"dropout: optimizer {name!r} needs a deterministic loss (its line search or "
            "damping compares losses at trial points); train without dropout"
        )
    if diagnostics_every is not None:
        raise ValueError(
            f"diagnostics_every: optimizer {name!r} records its own per-iteration counts; "
            "the per-layer statistics are for first-order training"
        )
    solver.check(net)
