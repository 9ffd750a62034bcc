"""A full-batch solver in a run: its checks as run-file keys, its stop in the summary."""

from __future__ import annotations

from typing import Any

from funcbp import optim
from funcbp.errors import ConfigError
from funcbp.mlp import MLP
from funcbp.train import check_solver_run

# check_solver_run's message names a setting first; the run file's key for each.
_KEYS = {"batch_size": "train.batch_size", "engine": "train.engine", "dropout": "model.dropout",
         "diagnostics_every": "train.diagnostics_every", "cost": "model.cost"}  # fmt: skip


def check(config, net: MLP, optimizer) -> None:
    """Refuses (``ConfigError`` naming the key) a run (``RunConfig``) that ``optimizer``, a
    full-batch solver, cannot train; a first-order optimizer passes."""
    if not optim.is_solver(optimizer):
        return
    t = config.train
    batch = None if t.batch_size == "full" else t.batch_size
    try:
        check_solver_run(net, optimizer, batch, config.engine(), t.diagnostics_every or None)
    except ValueError as err:
        setting, _, what = str(err).partition(": ")
        raise ConfigError(f"{_KEYS[setting]}: {what}") from None


def add_stop(summary: dict[str, Any], optimizer, state) -> None:
    """Adds a stopped solver's ``"stop_reason"`` (from its ``TrainState``) to ``summary``,
    and to its ``"warnings"`` the warning of a failed one; nothing for a first-order
    optimizer or a solver that ran out of epochs."""
    stop = optim.stop_reason(state.opt_state) if optim.is_solver(optimizer) else None
    if stop is None:
        return
    summary["stop_reason"] = stop[0]
    if message := optim.stop_warning(optimizer.name, state.opt_state):
        summary["warnings"].append(message)
