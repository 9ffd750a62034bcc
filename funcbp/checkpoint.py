"""Checkpoints: a training run's state in one ``.npz`` file that cannot run code on load.

A checkpoint holds a ``TrainState`` (parameters, optimizer state, step, RNG key)
and the ``Progress`` of ``fit`` as named arrays, read back with
``np.load(allow_pickle=False)``: no pickle anywhere. Its JSON metadata is stored
inside the file and beside it as ``NAME.json`` for people and tools.

Every file is written under a temporary name, flushed to disk and renamed over
its final name, so a crash mid-write leaves the previous file or the new one,
never a truncated one. In a directory, ``save_rotating`` keeps the last N
checkpoints as ``step-<step>.npz`` and the best as ``best.npz``.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from funcbp import optim
from funcbp._jax import atomic
from funcbp.errors import CheckpointError
from funcbp.mlp import MLP
from funcbp.train import Progress, TrainState, init_progress, init_state

FORMAT = "funcbp.checkpoint/1"
_META = "__meta__"
_STEP_FILE = re.compile(r"step-(\d+)\.npz")


class Checkpoint(NamedTuple):
    state: TrainState
    progress: Progress
    meta: dict[str, Any]  # format, step, epoch, net, optimizer, ... (JSON)
    net: MLP | None  # the network spec, when the metadata names one


def save_checkpoint(
    path: str | Path, state: TrainState, progress: Progress, meta: dict[str, Any] | None = None
) -> Path:
    """Writes ``state`` and ``progress`` to ``path`` (``.npz``) and ``path.json``, atomically.

    ``meta`` is any JSON-ready dict; give it ``net`` (``MLP`` fields) and ``optimizer``
    (``{"name", "learning_rate", "options"}`` of ``funcbp.optim.make``) so that
    ``load_checkpoint`` can rebuild the state without a template.
    """
    path = Path(path)
    arrays = {}
    dtypes = {}
    for name, leaf in _named_leaves(state, progress):
        if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            dtypes[name] = f"key<{jax.random.key_impl(leaf)}>"
            leaf = jax.random.key_data(leaf)
        else:
            dtypes[name] = str(leaf.dtype)
        arrays[name] = np.asarray(leaf)
        if arrays[name].dtype.kind == "V":  # bfloat16 and friends: saved as their bits
            arrays[name] = arrays[name].view(f"u{arrays[name].itemsize}")
    meta = {
        **(meta or {}),
        "format": FORMAT,
        "step": int(state.step),
        "epoch": int(progress.epoch),
        "dtypes": dtypes,
    }
    text = json.dumps(meta, indent=2) + "\n"
    atomic.write(path.with_suffix(".json"), text.encode())
    atomic.write(path, lambda f: np.savez(f, **arrays, **{_META: np.array(text)}))
    return path


def load_checkpoint(
    path: str | Path, like: tuple[TrainState, Progress] | None = None, *, which: str = "latest"
) -> Checkpoint:
    """Reads a checkpoint file, or the ``which`` ("latest"/"best") one of a run directory.

    ``like`` is a ``(TrainState, Progress)`` of arrays or ``jax.ShapeDtypeStruct``s
    to fill; without it the structure is rebuilt from the metadata's ``net`` and
    ``optimizer`` (as ``funcbp train`` writes them).

    Raises:
      CheckpointError: no checkpoint there, a truncated or foreign file, or one
        whose arrays do not fit ``like``.
    """
    path = find(path, which)
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{path} is not a checkpoint (not an .npz archive: truncated or foreign)"
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            names = set(npz.files)
            if _META not in names:
                raise CheckpointError(f"{path} is not a funcbp checkpoint (no metadata)")
            meta = json.loads(str(npz[_META]))
            stored = {name: npz[name] for name in names - {_META}}
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError) as err:
        raise CheckpointError(
            f"{path} is not a readable checkpoint (truncated or corrupt: {err})"
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a {FORMAT} checkpoint")
    try:  # metadata written by another version, or edited by hand
        net = None
        if "net" in meta:
            net = MLP(**{**meta["net"], "sizes": tuple(meta["net"]["sizes"])})
        if like is None:
            like = _template(path, meta, net)
        state, progress = _fill(path, like, stored, meta["dtypes"])
    except CheckpointError:
        raise
    except (TypeError, KeyError, ValueError, AttributeError) as err:
        raise CheckpointError(
            f"{path} has metadata this funcbp cannot use ({type(err).__name__}: {err})"
        ) from None
    return Checkpoint(state, progress, meta, net)


def find(path: str | Path, which: str = "latest") -> Path:
    """The checkpoint file ``path`` names: itself, or the ``which`` one in a (run) directory."""
    path = Path(path)
    if path.is_file():
        return path
    if which not in ("latest", "best"):
        raise ValueError(f"which must be 'latest' or 'best', got {which!r}")
    directory = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    found = directory / "best.npz" if which == "best" else _latest(directory)
    if found is None or not found.is_file():
        raise CheckpointError(f"no {which} checkpoint in {directory}")
    return found


def save_rotating(
    directory: str | Path,
    state: TrainState,
    progress: Progress,
    meta: dict[str, Any],
    *,
    keep: int,
    best: bool,
) -> Path:
    """Saves ``step-<step>.npz`` in ``directory``, keeps the last ``keep``, links ``best.npz``."""
    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob(".*.tmp"):  # left by a crash mid-write
        stale.unlink(missing_ok=True)
    path = save_checkpoint(directory / f"step-{int(state.step):09d}.npz", state, progress, meta)
    if best:
        for suffix in (".json", ".npz"):  # the .npz last: it is what load_checkpoint reads
            atomic.link(path.with_suffix(suffix), directory / f"best{suffix}")
    for old in sorted(directory.glob("step-*.npz"))[:-keep]:
        old.unlink()
        old.with_suffix(".json").unlink(missing_ok=True)
    return path


def _latest(directory: Path) -> Path | None:
    steps = [p for p in directory.glob("step-*.npz") if _STEP_FILE.fullmatch(p.name)]
    return max(steps, key=lambda p: int(_STEP_FILE.fullmatch(p.name)[1]), default=None)


def _named_leaves(state: TrainState, progress: Progress) -> list[tuple[str, Any]]:
    tree = {"state": state, "progress": progress}
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [(jax.tree_util.keystr(p), leaf) for p, leaf in leaves]


def _template(path: Path, meta: dict, net: MLP | None) -> tuple[TrainState, Progress]:
    if net is None or "optimizer" not in meta:
        raise CheckpointError(
            f"{path} does not name its network and optimizer; pass like=(state, progress)"
        )
    o = meta["optimizer"]
    optimizer = optim.make(o["name"], o["learning_rate"], **o.get("options", {}))
    dtype = jnp.dtype(meta["dtypes"]["['state'].params[0]['w']"])

    def fresh():
        state = init_state(net, optimizer, jax.random.key(0), dtype)
        return state, init_progress(state, meta.get("patience"))

    return jax.eval_shape(fresh)


def _fill(path: Path, like, stored: dict[str, np.ndarray], dtypes: dict[str, str]):
    state, progress = like
    named = _named_leaves(state, progress)
    missing = [name for name, _ in named if name not in stored]
    extra = sorted(set(stored) - {name for name, _ in named})
    if missing or extra:
        raise CheckpointError(
            f"{path} does not fit this network and optimizer: "
            + (f"missing {missing[0]}" if missing else f"unexpected {extra[0]}")
        )
    leaves = []
    for name, want in named:
        array = stored[name]
        if jnp.issubdtype(want.dtype, jax.dtypes.prng_key):
            impl = dtypes[name].removeprefix("key<").removesuffix(">")
            leaf = jax.random.wrap_key_data(array, impl=impl)
        else:
            if array.dtype.kind == "u" and dtypes[name] != str(array.dtype):
                array = array.view(jnp.dtype(dtypes[name]))
            leaf = jnp.asarray(array)
        if leaf.shape != want.shape or leaf.dtype != want.dtype:
            raise CheckpointError(
                f"{path}: {name} is {leaf.dtype}{list(leaf.shape)}, "
                f"expected {want.dtype}{list(want.shape)}"
            )
        leaves.append(leaf)
    treedef = jax.tree.structure({"state": state, "progress": progress})
    tree = jax.tree.unflatten(treedef, leaves)
    return tree["state"], tree["progress"]
