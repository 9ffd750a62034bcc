"""Writes the ``funcbp.checkpoint/1`` files in this folder with funcbp 0.x's own code.

Run once, with the python of a checkout of the last release that wrote that
format (commit ec84115), from the root of this repository::

    /tmp/before/.venv/bin/python tests/data/make_v1_checkpoints.py

It trains two small networks a few steps, saves each as ``funcbp train`` did
(``net`` and ``optimizer`` metadata) and writes what the current code must
read back into ``checkpoint-v1.expected.json``. See ``README.md`` here.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import pathlib

import jax
import numpy as np

import funcbp
from funcbp import checkpoint, optim

OUT = pathlib.Path(__file__).resolve().parent
FORMAT = "funcbp.checkpoint/1"


def data(n_in: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows both runs train on: ``x`` [16, n_in] float32, ``y`` [16] in {0, 1, 2}."""
    x = np.random.default_rng(0).normal(size=(16, n_in)).astype(np.float32)
    return x, np.arange(16) % 3


def digest(tree) -> str:
    """sha256 of the leaves' bytes in flatten order (keys as their bits)."""
    h = hashlib.sha256()
    for leaf in jax.tree.leaves(tree):
        if jax.numpy.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        h.update(np.ascontiguousarray(leaf).tobytes())
    return h.hexdigest()


def write(name: str, net: funcbp.MLP, epochs: int, patience: int | None) -> dict:
    opt = {"name": "adam", "learning_rate": 0.01, "options": {}}
    optimizer = optim.make(opt["name"], opt["learning_rate"])
    x, y = data(net.sizes[0])
    # Labels the training makes worse: early stopping fires, best_params are not the last.
    eval_sets = {"validation": (x[:6], (y[:6] + 1) % 3)} if patience else None
    *_, block = funcbp.fit_blocks(
        net, optimizer, (x, y), epochs=epochs, batch_size=8, eval=eval_sets,
        patience=patience, key=jax.random.key(0),
    )  # fmt: skip
    state, progress = block.state, block.progress
    meta = {  # as funcbp train's _checkpoint_meta wrote it
        "net": {**net.__dict__, "sizes": list(net.sizes)},
        "optimizer": opt,
        "patience": patience,
        "versions": {n: importlib.metadata.version(n) for n in ("funcbp", "jax", "optax")},
    }
    checkpoint.save_checkpoint(OUT / f"{name}.npz", state, progress, meta)
    expected = {
        "step": int(state.step),
        "epoch": int(progress.epoch),
        "key_data": np.asarray(jax.random.key_data(state.key)).tolist(),
        "params_sha256": digest(state.params),
        "opt_state_sha256": digest(state.opt_state),
        "train_loss": float(net.loss(state.params, x, y)),
    }
    if patience:
        expected.update(
            best_params_sha256=digest(progress.best_params),
            best_epoch=int(progress.best_epoch),
            best=float(progress.best),
        )
    return expected


def main() -> None:
    here = OUT.parent.parent  # this repository: its funcbp writes another format
    if pathlib.Path(checkpoint.__file__).is_relative_to(here) or checkpoint.FORMAT != FORMAT:
        raise SystemExit(f"run this with the python of a checkout that writes {FORMAT}")
    plain = funcbp.MLP((4, 8, 3), "tanh", cost="softmax_cross_entropy")
    stopping = funcbp.MLP((4, 8, 6, 3), ("tanh", "relu"), cost="softmax_cross_entropy")
    expected = {
        "checkpoint-v1": write("checkpoint-v1", plain, epochs=3, patience=None),
        "checkpoint-v1-early-stopping": write(
            "checkpoint-v1-early-stopping", stopping, epochs=4, patience=2
        ),
    }
    text = json.dumps(expected, indent=2) + "\n"
    (OUT / "checkpoint-v1.expected.json").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
