"""The closing summary of a run: the final losses and accuracies, and where it ran."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from funcbp import data as _data
from funcbp import sharding
from funcbp.mlp import MLP
from funcbp.train import TrainState, eval_sets_on_devices, evaluate_sets


def arrays(part: _data.Dataset | tuple[jax.Array, jax.Array]) -> tuple[Any, ...]:
    """``(x, y)`` of a data set on the host (``(x, y, sample_weight)`` if it has weights: its
    loss is their weighted mean), or global arrays (``process_data.global_parts``)."""
    if not isinstance(part, _data.Dataset):
        return part
    return (part.x, part.y) if part.sample_weight is None else (part.x, part.y, part.sample_weight)


def summarize(net: MLP, state: TrainState, history, parts, progress) -> dict[str, Any]:
    """The final losses and accuracies on ``parts`` (``{name: data set}``), and the devices."""
    # Inputs in the parameters' dtype, as fit evaluates them each epoch.
    dtype = jnp.result_type(state.params[0]["w"])
    mesh = sharding.data_mesh()
    # Global arrays stay where they are.
    rows, final = eval_sets_on_devices({n: arrays(p) for n, p in parts.items()}, dtype, mesh)
    with sharding.on_mesh(mesh):
        evaluated = _evaluate_splits(net, sharding.replicate(state.params, mesh), rows, final)
    summary: dict[str, Any] = {"status": "completed"}
    for name, metrics in jax.device_get(evaluated).items():
        summary.update({f"{name}_{k}": float(v) for k, v in metrics.items()})
    devices = jax.devices()
    stopped_early = bool(progress.stopped) and progress.best_params is not None
    summary.update(
        epochs=len(history["epoch"]),
        steps=int(state.step),
        best_epoch=int(progress.best_epoch) if stopped_early else None,
        device_kind=devices[0].device_kind,
        device_platform=devices[0].platform,
        device_count=len(devices),
    )
    return summary


# ``evaluate_sets`` on every split, compiled as one program.
_evaluate_splits = jax.jit(evaluate_sets, static_argnums=(0, 2))


def versions() -> dict[str, str]:
    """The versions of funcbp and what it runs on, as a run records them."""
    import importlib.metadata as md

    names = ("funcbp", "jax", "jaxlib", "optax", "numpy")
    return {name: md.version(name) for name in names}
