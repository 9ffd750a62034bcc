"""Checkpoints: exact round trips, stable names, the previous format, no pickle, atomic writes,
rotation, refusals."""

import dataclasses
import hashlib
import json
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcbp
from funcbp import checkpoint, optim
from funcbp._jax import atomic
from funcbp.checkpoint import (
    CheckpointError,
    load_checkpoint,
    net_from_spec,
    net_spec,
    save_checkpoint,
    save_rotating,
)

NET = funcbp.MLP((3, 5, 2), activation="tanh", cost="softmax_cross_entropy")
META = {
    "net": NET,
    "optimizer": {"name": "adam", "learning_rate": 1e-2, "options": {}},
    "patience": 2,
}
DATA = Path(__file__).parent / "data"
V1_EXPECTED = json.loads((DATA / "checkpoint-v1.expected.json").read_text())
V1_NETS = {  # as tests/data/make_v1_checkpoints.py trained them, with their patience
    "checkpoint-v1": (funcbp.MLP((4, 8, 3), "tanh", cost="softmax_cross_entropy"), None),
    "checkpoint-v1-early-stopping": (
        funcbp.MLP((4, 8, 6, 3), ("tanh", "relu"), cost="softmax_cross_entropy"),
        2,
    ),
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


def _digest(tree) -> str:
    """sha256 of the leaves' bytes in flatten order, as make_v1_checkpoints.py computes it."""
    h = hashlib.sha256()
    for leaf in jax.tree.leaves(_key_bits(tree)):
        h.update(np.ascontiguousarray(leaf).tobytes())
    return h.hexdigest()


def _rewrite(path, change):
    """Rewrites the checkpoint at ``path`` with ``change(meta)`` as its metadata, as an older
    or newer funcbp, or a hand edit, might have written it."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    meta = json.loads(str(arrays.pop("__meta__")))
    change(meta)
    np.savez(path, **arrays, __meta__=np.array(json.dumps(meta)))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64, jnp.bfloat16])
def test_round_trip_is_exact_without_a_template(tmp_path, dtype):
    state, progress = _trained(dtype)
    path = save_checkpoint(tmp_path / "c.npz", state, progress, META)
    loaded = load_checkpoint(path)
    chex.assert_trees_all_equal(_key_bits(loaded.state), _key_bits(state))
    chex.assert_trees_all_equal(_key_bits(loaded.progress), _key_bits(progress))
    chex.assert_trees_all_equal_dtypes(loaded.state, state)
    chex.assert_trees_all_equal_dtypes(loaded.progress, progress)
    assert loaded.net == NET and loaded.meta["step"] == int(state.step) == 4
    assert loaded.meta["format"] == checkpoint.FORMAT == "funcbp.checkpoint/2"
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


def test_a_legacy_uint32_key_round_trips_without_a_template(tmp_path):
    state = funcbp.init_state(NET, optim.make("sgd", 0.1), jax.random.PRNGKey(3))
    progress = funcbp.train.init_progress(state)
    meta = {"net": NET, "optimizer": {"name": "sgd", "learning_rate": 0.1}}
    loaded = load_checkpoint(save_checkpoint(tmp_path / "c.npz", state, progress, meta))
    chex.assert_trees_all_equal(loaded.state, state)
    assert loaded.meta["arrays"]["key"] == {"dtype": "uint32", "shape": [2]}
    assert loaded.meta["optimizer"]["options"] == {}  # stored in the spec form


def test_arrays_are_stored_under_stable_names_with_their_dtypes_and_shapes(tmp_path):
    state, progress = _trained(jnp.bfloat16)
    path = save_checkpoint(tmp_path / "c.npz", state, progress, META)
    with np.load(path, allow_pickle=False) as npz:  # an object array would raise here
        arrays = {name: npz[name] for name in npz.files}
    assert not any(a.dtype.hasobject for a in arrays.values())
    n_opt = len(jax.tree.leaves(state.opt_state))
    layers = [f"{p}/{i}/{k}" for p in ("params", "progress/best_params")
              for i in (0, 1) for k in ("w", "b")]  # fmt: skip
    scalars = [
        "step",
        "key",
        *(f"progress/{f}" for f in ("epoch", "best", "best_epoch", "stopped")),
    ]
    names = {*layers, *scalars, *(f"opt_state/{j:03d}" for j in range(n_opt))}
    assert set(arrays) == names | {"__meta__"}
    meta = json.loads(path.with_suffix(".json").read_text())
    assert set(meta["arrays"]) == names
    assert meta["arrays"]["params/0/w"] == {"dtype": "bfloat16", "shape": [3, 5]}
    assert arrays["params/0/w"].dtype == np.uint16  # bfloat16 as its bits: .npy has no name for it
    assert meta["arrays"]["key"] == {"dtype": "key", "impl": "threefry2x32", "shape": []}
    assert meta["arrays"]["step"] == {"dtype": "int32", "shape": []}
    assert meta["net"] == net_spec(NET) and meta["optimizer"] == META["optimizer"]


def test_net_given_as_its_old_dict_of_fields_is_stored_as_its_spec(tmp_path):
    state, progress = _trained()
    fields = {**NET.__dict__, "sizes": list(NET.sizes)}  # what funcbp train wrote in 0.1
    path = save_checkpoint(tmp_path / "c.npz", state, progress, {**META, "net": fields})
    assert load_checkpoint(path).meta["net"] == net_spec(NET)
    with pytest.raises(ValueError, match="'momentum' is not an MLP field"):
        save_checkpoint(
            tmp_path / "d.npz", state, progress, {**META, "net": {**fields, "momentum": 1}}
        )
    with pytest.raises(ValueError, match="unknown option 'b9' for optimizer 'adam'"):
        meta = {**META, "optimizer": {**META["optimizer"], "options": {"b9": 1.0}}}
        save_checkpoint(tmp_path / "d.npz", state, progress, meta)
    assert not (tmp_path / "d.npz").exists()


PER_LAYER = funcbp.MLP(
    (4, 8, 6, 3), ("tanh", "relu"), "sigmoid", "sigmoid_binary_cross_entropy", l2=1e-3,
    initializer="glorot_uniform", compute_dtype="bfloat16",
)  # fmt: skip


@pytest.mark.parametrize("net", [NET, PER_LAYER])
def test_net_spec_round_trips_through_json_and_records_every_field(net):
    spec = json.loads(json.dumps(net_spec(net)))
    assert net_from_spec(spec) == net
    assert set(spec) == {f.name for f in dataclasses.fields(funcbp.MLP)}  # a new field: add it
    if not isinstance(net.activation, str):
        assert spec["activation"] == ["tanh", "relu"]
    assert net_from_spec({"sizes": [2, 1]}) == funcbp.MLP((2, 1))  # absent fields: defaults


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"sizes": [2, 1], "momentum": 0.5}, "'momentum' is not an MLP field"),
        ({"activation": "tanh"}, "needs 'sizes'"),
        (
            {"sizes": [2, 3, 1], "activation": "swish"},
            r"uses the activation 'swish', which is not built in; pass it: "
            r"load_checkpoint\(path, pieces=\[swish\]\)",
        ),
        ([2, 1], "must be a mapping, got list"),
    ],
)
def test_net_from_spec_refuses_what_mlp_cannot_build(spec, match):
    with pytest.raises(ValueError, match=match):
        net_from_spec(spec)


@pytest.mark.parametrize("name", sorted(V1_EXPECTED))
@pytest.mark.parametrize("template", [False, True])
def test_a_checkpoint_of_the_previous_format_loads_with_its_values(tmp_path, name, template):
    """Files funcbp 0.1 wrote (tests/data/README.md says how): every value as it saved it."""
    net, patience = V1_NETS[name]
    want = V1_EXPECTED[name]
    like = None
    if template:
        fresh = funcbp.init_state(net, optim.make("adam", 0.01), jax.random.key(1))
        like = (fresh, funcbp.train.init_progress(fresh, patience))
    saved = load_checkpoint(DATA / f"{name}.npz", like)
    assert saved.meta["format"] == "funcbp.checkpoint/1" and saved.net == net
    state, progress = saved.state, saved.progress
    assert (int(state.step), int(progress.epoch)) == (want["step"], want["epoch"])
    assert jax.random.key_data(state.key).tolist() == want["key_data"]
    assert _digest(state.params) == want["params_sha256"]
    assert _digest(state.opt_state) == want["opt_state_sha256"]  # leaves in their own places
    x = np.random.default_rng(0).normal(size=(16, net.sizes[0])).astype(np.float32)
    y = np.arange(16) % 3  # the rows it was trained on
    loss = net.loss(state.params, x, y)  # each array in its place
    assert float(loss) == pytest.approx(want["train_loss"], rel=1e-6)
    if patience:
        assert _digest(progress.best_params) == want["best_params_sha256"]
        assert int(progress.best_epoch) == want["best_epoch"]
        assert float(progress.best) == pytest.approx(want["best"], rel=1e-7)
    else:
        assert progress.best_params is None
    # It trains on, and saves in today's format.
    state, _ = funcbp.fit(
        net, optim.make("adam", 0.01), (x, y), epochs=1, batch_size=8, state=state
    )
    assert int(state.step) == want["step"] + 2
    meta = {"net": saved.net, "optimizer": saved.meta["optimizer"]}
    again = load_checkpoint(save_checkpoint(tmp_path / "c.npz", state, progress, meta))
    assert again.meta["format"] == "funcbp.checkpoint/2"
    chex.assert_trees_all_equal(_key_bits(again.state), _key_bits(state))


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
    like = (other, funcbp.train.init_progress(other, 2))
    with pytest.raises(
        CheckpointError, match=r"c\.npz: params/0/b is float32\[5\], expected float32\[6\]"
    ):
        load_checkpoint(path, like=like)
    sgd = funcbp.init_state(NET, optim.make("sgd", 1e-2), jax.random.key(0))
    with pytest.raises(
        CheckpointError, match="does not fit this network and optimizer: unexpected opt_state/"
    ):
        load_checkpoint(path, like=(sgd, funcbp.train.init_progress(sgd, 2)))
    with pytest.raises(CheckpointError, match="no latest checkpoint"):
        load_checkpoint(tmp_path / "empty-dir-does-not-exist")


def test_an_array_that_disagrees_with_its_recorded_shape_or_dtype_is_refused_by_name(tmp_path):
    state, progress = _trained()
    path = save_checkpoint(tmp_path / "c.npz", state, progress, META)
    _rewrite(path, lambda meta: meta["arrays"]["opt_state/002"].update(shape=[5, 3]))
    with pytest.raises(
        CheckpointError,
        match=r"c\.npz: opt_state/002 has shape \[3, 5\], its metadata says \[5, 3\]",
    ):
        load_checkpoint(path)
    _rewrite(path, lambda meta: meta["arrays"]["opt_state/002"].update(shape=[3, 5], dtype="int32"))
    with pytest.raises(
        CheckpointError, match=r"opt_state/002 is stored as float32, its metadata says int32"
    ):
        load_checkpoint(path)


def test_a_float64_checkpoint_without_64_bit_arrays_is_refused_not_truncated(tmp_path):
    state, progress = _trained(jnp.float64)
    path = save_checkpoint(tmp_path / "c.npz", state, progress, META)
    like = jax.eval_shape(lambda: (state, progress))
    with (
        jax.enable_x64(False),
        pytest.raises(CheckpointError, match=r"params/0/b is float64; enable 64-bit"),
    ):
        load_checkpoint(path, like=like)


def test_a_newer_format_is_refused_with_what_this_funcbp_reads(tmp_path):
    state, progress = _trained()
    path = save_checkpoint(tmp_path / "c.npz", state, progress, META)
    _rewrite(path, lambda meta: meta.update(format="funcbp.checkpoint/3"))
    with pytest.raises(
        CheckpointError,
        match=r"c\.npz is a funcbp\.checkpoint/3 checkpoint; this funcbp reads "
        r"funcbp\.checkpoint/2 and funcbp\.checkpoint/1 \(a newer funcbp",
    ):
        load_checkpoint(path)
    _rewrite(path, lambda meta: meta.update(format="orbax/1"))
    with pytest.raises(CheckpointError, match=r"c\.npz is not a funcbp\.checkpoint/2 checkpoint"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "change",
    [
        lambda meta: meta["net"].update(momentum=0.5),  # a field this MLP does not have
        lambda meta: meta["optimizer"].pop("learning_rate"),
        lambda meta: meta["optimizer"]["options"].update(b9=1.0),
        lambda meta: meta["arrays"].pop("params/1/b"),
    ],
)
def test_metadata_this_version_cannot_use_is_refused_by_name(tmp_path, change):
    state, progress = _trained()
    path = save_checkpoint(tmp_path / "c.npz", state, progress, META)
    _rewrite(path, change)
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
