"""Checkpoints: exact round trips, no pickle, atomic writes, rotation, refusals."""

import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcbp
from funcbp import checkpoint, optim
from funcbp._jax import atomic
from funcbp.checkpoint import CheckpointError, load_checkpoint, save_checkpoint, save_rotating

NET = funcbp.MLP((3, 5, 2), activation="tanh", cost="softmax_cross_entropy")
META = {
    "net": {**NET.__dict__, "sizes": list(NET.sizes)},
    "optimizer": {"name": "adam", "learning_rate": 1e-2, "options": {}},
    "patience": 2,
}


def _trained(dtype=jnp.float32):
    """A state a few steps in (non-trivial optimizer moments, a split key)."""
    opt = optim.make("adam", 1e-2)
    x, y = np.random.default_rng(0).normal(size=(8, 3)), np.arange(8) % 2
    state, _ = funcbp.fit(NET, opt, (x, y), epochs=2, batch_size=4, dtype=dtype)
    return state, funcbp.train.init_progress(state, patience=2)


def _key_bits(tree):
    """The tree with typed keys as their bits, so trees compare with chex."""
    return jax.tree.map(
        lambda a: jax.random.key_data(a) if jnp.issubdtype(a.dtype, jax.dtypes.prng_key) else a,
        tree,
    )


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64, jnp.bfloat16])
def test_round_trip_is_exact_without_a_template(tmp_path, dtype):
    state, progress = _trained(dtype)
    path = save_checkpoint(tmp_path / "c.npz", state, progress, META)
    loaded = load_checkpoint(path)
    chex.assert_trees_all_equal(_key_bits(loaded.state), _key_bits(state))
    chex.assert_trees_all_equal(_key_bits(loaded.progress), _key_bits(progress))
    chex.assert_trees_all_equal_dtypes(loaded.state.params, state.params)
    assert loaded.net == NET and loaded.meta["step"] == int(state.step) == 4
    assert json.loads(path.with_suffix(".json").read_text()) == loaded.meta
    # The training key continues the same stream of random numbers.
    np.testing.assert_array_equal(
        jax.random.uniform(loaded.state.key, (3,)), jax.random.uniform(state.key, (3,))
    )


def test_round_trip_into_a_template_for_checkpoints_of_research_scripts(tmp_path):
    state, progress = _trained()
    path = save_checkpoint(tmp_path / "c.npz", state, progress)  # no net/optimizer metadata
    with pytest.raises(CheckpointError, match=r"pass like=\(state, progress\)"):
        load_checkpoint(path)
    like = jax.eval_shape(lambda: (state, progress))
    loaded = load_checkpoint(path, like=like)
    chex.assert_trees_all_equal(_key_bits(loaded.state), _key_bits(state))
    assert loaded.net is None


def test_the_file_reads_back_whole_with_pickle_refused(tmp_path):
    state, progress = _trained()
    path = save_checkpoint(tmp_path / "c.npz", state, progress, META)
    with np.load(path, allow_pickle=False) as npz:  # an object array would raise here
        arrays = {name: npz[name] for name in npz.files}
    assert not any(a.dtype.hasobject for a in arrays.values())
    assert len(arrays) == 1 + len(jax.tree.leaves((state, progress)))  # + the metadata


def test_truncated_foreign_and_mismatched_files_are_refused(tmp_path):
    state, progress = _trained()
    path = save_checkpoint(tmp_path / "c.npz", state, progress, META)
    data = path.read_bytes()
    (tmp_path / "truncated.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"truncated\.npz is not a checkpoint .*truncated"):
        load_checkpoint(tmp_path / "truncated.npz")
    np.savez(tmp_path / "foreign.npz", weights=np.zeros(3))
    with pytest.raises(CheckpointError, match="is not a funcbp checkpoint"):
        load_checkpoint(tmp_path / "foreign.npz")
    flipped = bytearray(data)
    flipped[len(data) // 3] ^= 0xFF  # inside an array: the zip CRC no longer matches
    (tmp_path / "flipped.npz").write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match=r"flipped\.npz is not a (readable )?checkpoint"):
        load_checkpoint(tmp_path / "flipped.npz")
    wider = funcbp.MLP((3, 6, 2), activation="tanh", cost="softmax_cross_entropy")
    other = funcbp.init_state(wider, optim.make("adam", 1e-2), jax.random.key(0))
    with pytest.raises(CheckpointError, match=r"params\[0\]\['b'\] is float32\[5\], expected"):
        load_checkpoint(path, like=(other, funcbp.train.init_progress(other, 2)))
    with pytest.raises(CheckpointError, match="no latest checkpoint"):
        load_checkpoint(tmp_path / "empty-dir-does-not-exist")


@pytest.mark.parametrize(
    "meta",
    [
        {**META, "net": {**META["net"], "dropout": 0.5}},  # a field this MLP does not have
        {**META, "optimizer": {"name": "adam"}},  # no learning rate
        {**META, "optimizer": {**META["optimizer"], "options": {"b9": 1.0}}},
    ],
)
def test_metadata_this_version_cannot_use_is_refused_by_name(tmp_path, meta):
    state, progress = _trained()
    path = save_checkpoint(tmp_path / "c.npz", state, progress, meta)
    with pytest.raises(CheckpointError, match=r"c\.npz has metadata this funcbp cannot use \("):
        load_checkpoint(path)


def test_rotation_keeps_the_last_n_and_the_best(tmp_path):
    state, progress = _trained()
    losses = [0.9, 0.3, 0.5, 0.6, 0.7]
    for i, loss in enumerate(losses, start=1):
        state = state._replace(step=jnp.asarray(i, jnp.int32))
        meta = {**META, "monitor": {"name": "train_loss", "value": loss}}
        save_rotating(tmp_path, state, progress, meta, keep=2, best=loss == min(losses[:i]))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["best.json", "best.npz", *[f"step-00000000{i}.{e}" for i in (4, 5)
                                                 for e in ("json", "npz")]]  # fmt: skip
    assert load_checkpoint(tmp_path, which="best").meta["step"] == 2
    assert load_checkpoint(tmp_path).meta["step"] == 5  # latest


def test_a_crash_mid_write_leaves_the_old_file_and_no_debris(tmp_path):
    target = tmp_path / "file.bin"
    atomic.write(target, b"old contents")

    def crash(f):
        f.write(b"half of the new")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic.write(target, crash)
    assert target.read_bytes() == b"old contents"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


def test_leftovers_of_a_killed_write_are_ignored_and_cleaned(tmp_path):
    state, progress = _trained()
    save_rotating(tmp_path, state, progress, META, keep=3, best=False)
    (tmp_path / ".step-000000009.npz.abc.tmp").write_bytes(b"PK\x03\x04 cut off")
    assert checkpoint.find(tmp_path).name == "step-000000004.npz"
    save_rotating(tmp_path, state, progress, META, keep=3, best=False)
    assert not list(tmp_path.glob(".*.tmp"))
