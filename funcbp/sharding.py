"""Data parallelism over a one-axis ``data`` mesh: the data split by rows, the rest replicated.

``fit`` puts the parameters, optimizer state and learning rule state
(``TrainState``) on every device of the mesh and the training and evaluation
rows (with their sample weights, if any) split along ``data``: each device holds
``n / devices`` of them and each process copies only its own devices' rows.
Inside the compiled epoch every mini-batch is gathered from the split rows (XLA
gathers locally, then all-reduces the batch, never the data set) and constrained
to be split along its first axis; XLA's partitioner then computes each device's
part of the forward and backward pass and inserts the all-reduce that turns the
per-device gradient sums into the batch mean. One device needs no mesh: the
program is the single-device one. ``fit`` traces and runs under
``jax.set_mesh(mesh)``, so code inside it (a custom optax transformation, say)
may use bare ``PartitionSpec``\\ s.

Several processes (``jax.distributed``) either all pass the same host arrays to
``fit`` (each copies its rows to its devices) or each passes only the rows it
loaded, joined into global arrays by ``rows_from_processes``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

AXIS = "data"


def check_devices(devices: Any) -> tuple[jax.Device, ...]:
    """``devices`` as a tuple, refused (``ValueError``, naming the first bad one) unless
    distinct ``jax.Device`` objects, at least one, all of one platform."""
    listed = (
        tuple(devices) if isinstance(devices, Sequence) and not isinstance(devices, str) else None
    )
    if listed is None or not all(isinstance(d, jax.Device) for d in listed):
        bad = (
            devices if listed is None else next(d for d in listed if not isinstance(d, jax.Device))
        )
        raise ValueError(
            f"devices must be jax.Device objects, such as jax.devices()[:2], or None for all; "
            f"{bad!r} is not one (got {devices!r})"
        )
    if not listed or len(set(listed)) < len(listed):
        raise ValueError(f"devices must be distinct devices, at least one, got {list(listed)}")
    platforms = sorted({d.platform for d in listed})
    if len(platforms) > 1:
        raise ValueError(f"devices must all be of one platform, got {', '.join(platforms)}")
    return listed


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh | None:
    """A one-axis ``data`` mesh over ``devices`` (default: all), or ``None`` for one device."""
    devices = list(check_devices(jax.devices() if devices is None else devices))
    if len(devices) == 1:
        return None
    # Auto axes: shardings are constraints for XLA's partitioner, not part of the types.
    return jax.make_mesh((len(devices),), (AXIS,), (AxisType.Auto,), devices=devices)


@contextlib.contextmanager
def on_mesh(mesh: Mesh | None) -> Iterator[None]:
    """``jax.set_mesh(mesh)`` for the block; nothing without a mesh."""
    if mesh is None:
        yield
        return
    with jax.set_mesh(mesh):
        yield


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


def split_rows(tree: Any, mesh: Mesh | None) -> Any:
    """Host arrays ``[n, ...]`` as global arrays split by rows along ``data``.

    Every process passes all ``n`` rows and copies only those of its own devices.
    When ``n`` does not divide over the devices, zero rows pad it to the next
    multiple (the caller must not train on them: ``make_epoch(samples=n)``; padded
    sample weights are 0, so they would count in no weighted mean either).
    Without a mesh the arrays go to the one device as they are.
    """
    if mesh is None:
        return jax.device_put(tree)
    split = NamedSharding(mesh, PartitionSpec(AXIS))

    def global_array(a: np.ndarray) -> jax.Array:
        n = a.shape[0]
        padded = -(-n // mesh.size) * mesh.size
        dtype = jax.dtypes.canonicalize_dtype(a.dtype)  # int64 is int32 unless x64 is on

        def rows(index: tuple[slice, ...]) -> np.ndarray:
            start, stop, _ = index[0].indices(padded)
            block = np.asarray(a[start : min(stop, n)], dtype)
            return np.pad(block, [(0, stop - start - len(block))] + [(0, 0)] * (a.ndim - 1))

        return jax.make_array_from_callback((padded, *a.shape[1:]), split, rows, dtype=dtype)

    return jax.tree.map(global_array, tree)


def rows_from_processes(tree: Any, mesh: Mesh | None = None) -> Any:
    """Each process's own rows ``[k, ...]`` joined into global arrays split along ``data``.

    For a multi-process run in which every process loaded a different part of the
    data: process 0's rows come first, then process 1's, and so on. Every process
    must pass the same number ``k`` of rows, a multiple of its local device count
    (``ValueError`` otherwise, raised in every process). ``fit`` takes the result
    as its ``train`` or ``eval`` data. ``mesh`` defaults to ``data_mesh()``.
    """
    mesh = data_mesh() if mesh is None else mesh
    leaves = [np.asarray(leaf) for leaf in jax.tree.leaves(tree)]
    rows = {len(leaf) for leaf in leaves}
    if len(rows) != 1:
        raise ValueError(f"rows_from_processes: arrays of different lengths {sorted(rows)}")
    k = rows.pop()
    counts = from_every_process(np.int64(k)).tolist()
    if len(set(counts)) != 1:
        raise ValueError(
            "rows_from_processes: every process must pass the same number of rows, got "
            + ", ".join(f"{c} from process {i}" for i, c in enumerate(counts))
        )
    local = jax.local_device_count()
    if k % local:
        raise ValueError(
            f"rows_from_processes: {k} rows per process do not divide over the {local} "
            "devices of each process"
        )
    if mesh is None:  # one process with one device
        return jax.device_put(tree)
    split = NamedSharding(mesh, PartitionSpec(AXIS))
    return jax.tree.map(
        lambda leaf: jax.make_array_from_process_local_data(split, np.asarray(leaf)), tree
    )


def from_every_process(value: np.ndarray) -> np.ndarray:
    """``value`` as each process passed it, stacked in process order (a collective).

    Every process passes an array of the same shape and dtype; the result is
    ``[processes, *value.shape]``, bit for bit (64-bit values travel as 32-bit words).
    """
    value = np.asarray(value)
    if jax.process_count() == 1:
        return value[None]
    from jax.experimental import multihost_utils

    words = np.ascontiguousarray(value).reshape(-1).view(np.uint32)
    gathered = np.asarray(multihost_utils.process_allgather(words))
    return gathered.view(value.dtype).reshape(-1, *value.shape)


def is_split_rows(tree: Any) -> bool:
    """Whether ``tree`` has leaves and each is a ``jax.Array`` split by rows along ``data``."""

    def split(leaf) -> bool:
        if not isinstance(leaf, jax.Array):
            return False
        s = leaf.sharding
        return isinstance(s, NamedSharding) and tuple(s.spec)[:1] == (AXIS,)

    leaves = jax.tree.leaves(tree)
    return bool(leaves) and all(split(leaf) for leaf in leaves)


def local_rows(array: jax.Array) -> np.ndarray:
    """The rows of a row-split global array that this process's devices hold, in order."""
    shards = sorted(array.addressable_shards, key=lambda shard: shard.index[0].start or 0)
    return np.concatenate([np.asarray(shard.data) for shard in shards])


def split_batch(batch: Any, mesh: Mesh | None) -> Any:
    """Inside ``jit``: ``batch`` arrays ``[batch, ...]`` split along the ``data`` axis."""
    if mesh is None:
        return batch
    return jax.lax.with_sharding_constraint(batch, NamedSharding(mesh, PartitionSpec(AXIS)))
