"""Checkpoints: a training run's state in one ``.npz`` file that cannot run code on load.

A checkpoint holds a ``TrainState`` (parameters, optimizer state, step, RNG key,
a learning rule's state) and the ``Progress`` of ``fit`` as arrays, read back with
``np.load(allow_pickle=False)``: no pickle anywhere. Its JSON metadata is stored
inside the file and beside it as ``NAME.json`` for people and tools.

The format, ``funcbp.checkpoint/2``, names each array by what it is, not by
where it sits in today's Python objects, so that files outlive refactors::

    params/<layer>/w, params/<layer>/b     [n_in, n_out], [n_out]
    opt_state/000, opt_state/001, ...      the optimizer state's leaves, in flatten order
    rule_state/000, rule_state/001, ...    a learning rule's state leaves, in flatten order
                                           (none for backprop and rules without state)
    step, key                              [] int32; the training key's bits
    progress/epoch, progress/best, progress/best_epoch, progress/stopped
    progress/best_params/<layer>/w, ...    early stopping only

Its metadata holds ``format``, ``step``, ``epoch``, ``net`` (``net_spec``),
``optimizer`` (``{"name", "learning_rate", "options"}`` of ``funcbp.optim.make``),
``rule`` (a learning rule's name, when the caller gives one), the caller's own
keys, and ``arrays``: each array's dtype and shape (and a key's impl), so that a
mismatch names the array. Files of the previous format,
``funcbp.checkpoint/1`` (funcbp 0.1: arrays named by pytree paths), load too.

Every file is written under a temporary name, flushed to disk and renamed over
its final name, so a crash mid-write leaves the previous file or the new one,
never a truncated one. In a directory, ``save_rotating`` keeps the last N
checkpoints as ``step-<step>.npz`` and the best as ``best.npz``.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from funcbp import optim
from funcbp import rules as _rules
from funcbp._jax import atomic
from funcbp.activations import Activation
from funcbp.backprop import BACKPROP
from funcbp.checkpoint import _format1
from funcbp.checkpoint._net_spec import net_from_spec, net_spec
from funcbp.errors import CheckpointError
from funcbp.losses import Cost
from funcbp.mlp import MLP
from funcbp.train import Progress, TrainState, init_progress, init_state

FORMAT = "funcbp.checkpoint/2"
_META = "__meta__"
_STEP_FILE = re.compile(r"step-(\d+)\.npz")
_PROGRESS_SCALARS = ("epoch", "best", "best_epoch", "stopped")


class Checkpoint(NamedTuple):
    """What ``load_checkpoint`` returns."""

    state: TrainState
    progress: Progress
    meta: dict[str, Any]  # the file's metadata as stored: format, step, epoch, net, ... (JSON)
    net: MLP | None  # the network, when the metadata names one


def save_checkpoint(
    path: str | Path, state: TrainState, progress: Progress, meta: dict[str, Any] | None = None
) -> Path:
    """Writes ``state`` and ``progress`` to ``path`` (``.npz``) and ``path.json``, atomically.

    ``meta`` is any JSON-ready dict; give it ``net`` (an ``MLP``, or its fields as
    ``net_spec`` writes them) and ``optimizer`` (``{"name", "learning_rate",
    "options"}`` of ``funcbp.optim.make``) so that ``load_checkpoint`` can rebuild
    the state without a template. Both are checked and stored in their spec form;
    ``rule`` (a learning rule of ``funcbp.rules`` or its name) is stored as its name.

    Raises:
      ValueError: ``meta``'s ``net`` or ``optimizer`` does not build one.
    """
    path = Path(path)
    arrays, entries = {}, {}
    for name, leaf in _named(state, progress).items():
        arrays[name], entries[name] = _encode(leaf)
    meta = dict(meta or {})
    if "net" in meta:
        net = meta["net"]
        meta["net"] = net_spec(net if isinstance(net, MLP) else net_from_spec(net))
    if "optimizer" in meta:
        meta["optimizer"], _ = _optimizer(meta["optimizer"])
    if _rules.is_rule(meta.get("rule")):
        meta["rule"] = meta["rule"].name
    meta.update(format=FORMAT, step=int(state.step), epoch=int(progress.epoch), arrays=entries)
    text = json.dumps(meta, indent=2) + "\n"
    atomic.write(path.with_suffix(".json"), text.encode())
    atomic.write(path, lambda f: np.savez(f, **arrays, **{_META: np.array(text)}))
    return path


def load_checkpoint(
    path: str | Path,
    like: tuple[TrainState, Progress] | None = None,
    *,
    which: str = "latest",
    pieces: Sequence[Activation | Cost] = (),
    rule: _rules.Rule | None = None,
) -> Checkpoint:
    """Reads a checkpoint file, or the ``which`` ("latest"/"best") one of a run directory.

    ``like`` is a ``(TrainState, Progress)`` of arrays or ``jax.ShapeDtypeStruct``s
    to fill; without it the structure is rebuilt from the metadata's ``net`` and
    ``optimizer`` (as ``funcbp train`` writes them), with ``pieces``: the user
    activations and costs its network names, and ``rule``: the learning rule it
    was trained with, needed when the file holds a rule state (``rule_state/...``)
    to rebuild it (a file without one loads with ``rule_state=()``). Reads formats
    ``funcbp.checkpoint/2`` and ``/1``.

    Raises:
      CheckpointError: no checkpoint there, a truncated, foreign or newer-format
        file, or one whose arrays do not fit ``like``; the message names the file
        (and the array).
    """
    path = find(path, which)
    meta, stored = _read(path)
    version = meta.get("format") if isinstance(meta, dict) else None
    if version not in (FORMAT, _format1.FORMAT):
        if isinstance(version, str) and version.startswith("funcbp.checkpoint/"):
            raise CheckpointError(
                f"{path} is a {version} checkpoint; this funcbp reads {FORMAT} and "
                f"{_format1.FORMAT} (a newer funcbp wrote it: upgrade funcbp)"
            )
        raise CheckpointError(f"{path} is not a {FORMAT} checkpoint")
    try:  # metadata written by another version, or edited by hand
        net = net_from_spec(meta["net"], pieces) if "net" in meta else None
        if version == _format1.FORMAT:
            stored, entries = _format1.upgrade(path, stored, meta["dtypes"])
        else:
            entries = meta["arrays"]
        rule = _rule(path, meta, entries, rule, needed=like is None)
        if like is None:
            like = _template(path, meta, net, entries, rule)
        state, progress = _fill(path, like, stored, entries)
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
    for old in _by_step(directory)[:-keep]:
        old.unlink()
        old.with_suffix(".json").unlink(missing_ok=True)
    return path


def _by_step(directory: Path) -> list[Path]:
    """The ``step-<step>.npz`` files in ``directory``, by step (past 10**9 steps their
    names grow a digit, and sort by name no longer)."""
    steps = [p for p in directory.glob("step-*.npz") if _STEP_FILE.fullmatch(p.name)]
    return sorted(steps, key=lambda p: int(_STEP_FILE.fullmatch(p.name)[1]))


def _latest(directory: Path) -> Path | None:
    return (_by_step(directory) or [None])[-1]


def _map_named(
    fn: Callable[[str, Any], Any], state: TrainState, progress: Progress
) -> tuple[TrainState, Progress]:
    """``(state, progress)`` with each array replaced by ``fn(stable name, array)``.

    The one place that decides the names a checkpoint stores (the module docstring
    lists them); keyword construction keeps them apart from field order.
    """

    def layers(prefix: str, params):
        return [{k: fn(f"{prefix}/{i}/{k}", layer[k]) for k in sorted(layer)}
                for i, layer in enumerate(params)]  # fmt: skip

    params = layers("params", state.params)  # first: a network that does not fit shows here

    def numbered(prefix: str, tree):
        leaves, treedef = jax.tree.flatten(tree)
        return jax.tree.unflatten(treedef, [fn(f"{prefix}/{j:03d}", leaf)
                                            for j, leaf in enumerate(leaves)])  # fmt: skip

    new_state = TrainState(
        params=params,
        opt_state=numbered("opt_state", state.opt_state),
        step=fn("step", state.step),
        key=fn("key", state.key),
        rule_state=numbered("rule_state", state.rule_state),
    )
    best_params = progress.best_params
    new_progress = Progress(
        best_params=None if best_params is None else layers("progress/best_params", best_params),
        **{f: fn(f"progress/{f}", getattr(progress, f)) for f in _PROGRESS_SCALARS},
    )
    return new_state, new_progress


def _named(state: TrainState, progress: Progress) -> dict[str, Any]:
    """``{stable name: array}`` in the order ``_map_named`` visits them."""
    named = {}
    _map_named(named.setdefault, state, progress)
    return named


def _encode(leaf) -> tuple[np.ndarray, dict[str, Any]]:
    """The array a file stores for ``leaf`` and its ``arrays`` metadata entry."""
    if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        entry = {"dtype": "key", "impl": str(jax.random.key_impl(leaf))}
        array = np.asarray(jax.random.key_data(leaf))
    else:
        entry = {"dtype": str(leaf.dtype)}
        array = np.asarray(leaf)
        if array.dtype.kind == "V":  # bfloat16 and friends: .npy has no name for them
            array = array.view(f"u{array.itemsize}")
    return array, {**entry, "shape": list(leaf.shape)}


def _decode(path: Path, name: str, array: np.ndarray, entry: Mapping[str, Any]) -> jax.Array:
    """The array ``name`` from its stored bits and its metadata ``entry``, checked."""
    if entry["dtype"] == "key":
        leaf = jax.random.wrap_key_data(array, impl=entry["impl"])
    else:
        dtype = jnp.dtype(entry["dtype"])
        if array.dtype.kind == "u" and dtype.kind == "V" and array.itemsize == dtype.itemsize:
            array = array.view(dtype)
        if array.dtype != dtype:
            raise CheckpointError(
                f"{path}: {name} is stored as {array.dtype}, its metadata says {dtype}"
            )
        if jax.dtypes.canonicalize_dtype(dtype) != dtype:  # jnp.asarray would truncate silently
            raise CheckpointError(
                f"{path}: {name} is {dtype}; enable 64-bit arrays first "
                "(jax.config.update('jax_enable_x64', True))"
            )
        leaf = jnp.asarray(array)
    if "shape" in entry and list(leaf.shape) != list(entry["shape"]):
        raise CheckpointError(
            f"{path}: {name} has shape {list(leaf.shape)}, its metadata says {entry['shape']}"
        )
    return leaf


def _fill(path: Path, like, stored: dict[str, np.ndarray], entries: Mapping[str, Any]):
    """``like`` (a ``(TrainState, Progress)``) filled with the stored arrays, each checked."""
    expected = _named(*like)
    missing = [name for name in expected if name not in stored]
    extra = sorted(set(stored) - set(expected))
    if missing or extra:
        raise CheckpointError(
            f"{path} does not fit this network and optimizer: "
            + (f"missing {missing[0]}" if missing else f"unexpected {extra[0]}")
        )

    def fetch(name: str, want):
        leaf = _decode(path, name, stored[name], entries[name])
        if leaf.shape != want.shape or leaf.dtype != want.dtype:
            raise CheckpointError(
                f"{path}: {name} is {leaf.dtype}{list(leaf.shape)}, "
                f"expected {want.dtype}{list(want.shape)}"
            )
        return leaf

    return _map_named(fetch, *like)


def _read(path: Path) -> tuple[Any, dict[str, np.ndarray]]:
    """The metadata and arrays of the ``.npz`` at ``path``, or ``CheckpointError``."""
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
            return meta, {name: npz[name] for name in names - {_META}}
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError) as err:
        raise CheckpointError(
            f"{path} is not a readable checkpoint (truncated or corrupt: {err})"
        ) from None


def _optimizer(spec: Mapping[str, Any]) -> tuple[dict[str, Any], optax.GradientTransformation]:
    """The stored form of ``{"name", "learning_rate", "options"}`` and its optimizer."""
    if not isinstance(spec, Mapping) or not {"name", "learning_rate"} <= spec.keys():
        raise ValueError(f"optimizer must be {{'name', 'learning_rate', 'options'}}, got {spec!r}")
    name, rate, options = spec["name"], spec["learning_rate"], dict(spec.get("options", {}))
    return {"name": name, "learning_rate": rate, "options": options}, optim.make(
        name, rate, **options
    )


def _template(path: Path, meta: dict, net: MLP | None, entries: Mapping[str, Any], rule):
    """The ``(TrainState, Progress)`` shapes the metadata's network, optimizer and (for a
    file with a rule state) ``rule`` give."""
    if net is None or "optimizer" not in meta:
        raise CheckpointError(
            f"{path} does not name its network and optimizer; pass like=(state, progress)"
        )
    _, optimizer = _optimizer(meta["optimizer"])
    dtype = jnp.dtype(entries["params/0/w"]["dtype"])
    key = entries["key"]
    seed = jax.random.key(0, impl=key["impl"]) if key["dtype"] == "key" else jax.random.PRNGKey(0)
    patience = 1 if "progress/best_params/0/w" in entries else None  # early stopping's copy

    def fresh():
        state = init_state(net, optimizer, seed, dtype, rule)
        return state, init_progress(state, patience)

    return jax.eval_shape(fresh)


def _rule(path: Path, meta: dict, entries: Mapping[str, Any], rule, needed: bool):
    """The rule whose state the file holds: ``rule``, checked against the metadata's name;
    ``needed`` (no template given): refused unless given for a file with a rule state."""
    named = meta.get("rule")
    if rule is not None and not _rules.is_rule(rule):
        raise CheckpointError(
            f"rule must be a funcbp.BackwardRule or funcbp.rules.LearningRule, got {rule!r}"
        )
    if rule is not None and named is not None and rule.name != named:
        raise CheckpointError(
            f"{path} was trained with the learning rule {named!r}, not {rule.name!r}"
        )
    if needed and rule is None and any(name.startswith("rule_state/") for name in entries):
        which = f"the learning rule {named!r}" if named else "a learning rule"
        raise CheckpointError(
            f"{path} holds the state of {which}; pass it: load_checkpoint(path, rule=...)"
        )
    return BACKPROP if rule is None else rule
