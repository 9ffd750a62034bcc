"""Data parallelism over a one-axis ``data`` mesh: each batch split, the rest replicated.

``fit`` puts the parameters, optimizer state and the (device-resident) data on
every device of the mesh and constrains each mini-batch inside the compiled
epoch to be split along its first axis; XLA's partitioner then computes each
device's part of the forward and backward pass and inserts the all-reduce that
turns the per-device gradient sums into the batch mean. One device needs no
mesh: the program is the single-device one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

AXIS = "data"


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh | None:
    """A one-axis ``data`` mesh over ``devices`` (default: all), or ``None`` for one device."""
    devices = list(jax.devices() if devices is None else devices)
    if len(devices) == 1:
        return None
    # Auto axes: shardings are constraints for XLA's partitioner, not part of the types.
    return jax.make_mesh((len(devices),), (AXIS,), (AxisType.Auto,), devices=devices)


def check_divides(mesh: Mesh | None, size: int, what: str) -> None:
    """Raises ``ValueError`` unless ``size`` samples split evenly over the mesh's devices."""
    if mesh is not None and size % mesh.size:
        raise ValueError(
            f"{what} {size} does not divide over {mesh.size} devices; use a multiple of "
            f"{mesh.size}, or fewer devices"
        )


def replicate(tree: Any, mesh: Mesh | None) -> Any:
    """``tree`` with every array on every device of ``mesh`` (unchanged without one).

    Across processes (``jax.distributed``) each process passes the same values,
    which become one global array.
    """
    if mesh is None:
        return tree
    everywhere = NamedSharding(mesh, PartitionSpec())
    if jax.process_count() == 1:
        return jax.device_put(tree, everywhere)

    def global_array(leaf):
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            bits = global_array(jax.random.key_data(leaf))
            return jax.random.wrap_key_data(bits, impl=jax.random.key_impl(leaf))
        return jax.make_array_from_process_local_data(everywhere, np.asarray(leaf))

    return jax.tree.map(global_array, tree)


def split_batch(batch: Any, mesh: Mesh | None) -> Any:
    """Inside ``jit``: ``batch`` arrays ``[batch, ...]`` split along the ``data`` axis."""
    if mesh is None:
        return batch
    return jax.lax.with_sharding_constraint(batch, NamedSharding(mesh, PartitionSpec(AXIS)))
