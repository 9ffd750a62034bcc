"""Training with a backward rule (state in TrainState, checkpointed), dropout and sample
weights: each against the plain run it must equal, in float64."""

import json
import math
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import funcbp
from funcbp import data
from funcbp.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from funcbp.train import _memory

from ._compare import assert_trees_close
from ._xla_compiles import assert_refused_before_compiling

F64 = jnp.float64
NET = funcbp.MLP((4, 8, 6, 3), activation="tanh", cost="softmax_cross_entropy")
DROPPING = funcbp.MLP((4, 8, 6, 3), activation="tanh", cost="softmax_cross_entropy",
                      dropout=(0.5, 0.25))  # fmt: skip
X = np.random.default_rng(0).normal(size=(24, 4))
Y = np.arange(24) % 3
KEY = jax.random.key(0)  # made here: a key made in a test compiles its seeding
FIT_KEY = jax.random.key(1)
META = {"net": NET, "optimizer": {"name": "momentum", "learning_rate": 0.05, "options": {}}}


def _opt():
    return funcbp.optim.make("momentum", 0.05)


def _fit(net=NET, train=(X, Y), **changes):
    run = {"epochs": 3, "batch_size": 8, "dtype": F64, "key": FIT_KEY, **changes}
    return funcbp.fit(net, run.pop("optimizer", _opt()), train, **run)


# --- backward rules ---------------------------------------------------------------------


def _transpose(params, state, layer):
    return params[layer]["w"].T


COPY = funcbp.BackwardRule("my-backprop", _transpose)  # backprop under another name


def _mirror_init(key, net, params):
    keys = jax.random.split(key, len(params))
    feedback = [jax.random.normal(k, p["w"].T.shape, p["w"].dtype) / math.sqrt(p["w"].shape[1])
                for k, p in zip(keys, params, strict=True)]  # fmt: skip
    return {"B": feedback, "updates": jnp.zeros((), jnp.int32)}


def _mirror_feedback(params, state, layer):
    return state["B"][layer]


def _mirror_update(state, before, after):
    """Fixed random B that follows every change of W (B - W^T stays what init drew)."""
    moved = [b + (new["w"] - old["w"]).T for b, old, new in zip(state["B"], before, after,
                                                               strict=True)]  # fmt: skip
    return {"B": moved, "updates": state["updates"] + 1}


MIRROR = funcbp.BackwardRule("feedback-mirror", _mirror_feedback, _mirror_init, _mirror_update)


def test_a_rule_that_is_backprop_trains_as_backprop():
    (bp, bp_history), (rule, rule_history) = _fit(), _fit(engine=COPY)
    assert rule_history == bp_history  # the same operations: bit for bit
    assert_trees_close(rule.params, bp.params, 1e-12, "params")
    assert rule.rule_state == () and bp.rule_state == ()
    # With diagnostics too (the statistics' step runs the rule's pass), which add the
    # rule's alignment with the exact gradient: none to speak of, and B_l is W_l^T.
    ruled, exact = _fit(engine=COPY, diagnostics_every=2)[1], _fit(diagnostics_every=2)[1]
    alignment = {name: ruled.pop(name) for name in funcbp.diagnostics.ALIGNMENT_STATS}
    np.testing.assert_equal(ruled, exact)
    # arccos near 1 magnifies the last bit of the cosine: 1e-16 becomes ~1e-6 degrees.
    np.testing.assert_allclose(alignment["alignment_angle"], 0.0, atol=1e-5)
    np.testing.assert_allclose(alignment["feedback_angle"], 0.0, atol=1e-5)
    np.testing.assert_allclose(alignment["norm_ratio"], 1.0, rtol=1e-12)


def test_engines_are_names_or_hashable_rules():
    options = funcbp.train.FitOptions(epochs=1, batch_size=4, engine=MIRROR)
    assert options.engine is MIRROR and hash(options) == hash(options)
    assert funcbp.train.FitOptions(epochs=1, batch_size=4, engine=funcbp.BACKPROP).engine == (
        "backprop"
    )
    for engine in ("torch", object(), None):
        with pytest.raises(ValueError, match=r"engine must be one of backprop, autodiff, "
                                             r"feedback_alignment, .*, forward_gradient, or a "
                                             r"funcbp.BackwardRule or funcbp.rules.LearningRule, "
                                             r"got"):  # fmt: skip
            funcbp.make_train_step(NET, _opt(), engine)


def test_a_rules_state_is_drawn_apart_and_leaves_backprops_keys_alone():
    plain = funcbp.init_state(NET, _opt(), KEY, F64)
    ruled = funcbp.init_state(NET, _opt(), KEY, F64, rule=MIRROR)
    assert plain.rule_state == ()
    np.testing.assert_array_equal(jax.random.key_data(ruled.key), jax.random.key_data(plain.key))
    assert_trees_close(ruled.params, plain.params, 0.0, "params")
    feedback = ruled.rule_state["B"]
    assert [b.shape for b in feedback] == [p["w"].T.shape for p in plain.params]
    assert all(b.dtype == F64 for b in feedback) and int(ruled.rule_state["updates"]) == 0
    assert not np.allclose(feedback[1], plain.params[1]["w"].T)  # random, not W^T
    stateless = funcbp.init_state(NET, _opt(), KEY, F64, rule=COPY)
    assert stateless.rule_state == ()
    with pytest.raises(ValueError, match=r"rule must be a funcbp.BackwardRule"):
        funcbp.init_state(NET, _opt(), KEY, F64, rule="backprop")


def test_a_stateful_rule_keeps_its_state_in_the_train_state():
    start = funcbp.init_state(NET, _opt(), FIT_KEY, F64, rule=MIRROR)
    state, history = _fit(engine=MIRROR)
    assert int(state.rule_state["updates"]) == int(state.step) == 9  # 3 epochs of 3 steps
    # update ran after every step: B moved by exactly W's change.
    for b0, b, w0, w in zip(start.rule_state["B"], state.rule_state["B"], start.params,
                            state.params, strict=True):  # fmt: skip
        np.testing.assert_allclose(b - b0, (w["w"] - w0["w"]).T, rtol=0, atol=1e-12)
    assert history["train_loss"] != _fit()[1]["train_loss"]  # not the exact gradient
    # A step by hand does what fit does.
    step = jax.jit(funcbp.make_train_step(NET, _opt(), MIRROR))
    new, _ = step(start, X[:8], Y[:8])
    assert int(new.rule_state["updates"]) == 1


def test_a_state_of_another_rule_is_refused_before_compiling():
    plain = funcbp.init_state(NET, _opt(), KEY, F64)
    assert_refused_before_compiling(
        lambda: _fit(engine=MIRROR, state=plain),
        ValueError,
        r"rule_state .* 'feedback-mirror' makes",
    )


def test_rule_state_survives_a_checkpoint_and_a_resumed_run_equals_one_run(tmp_path):
    run = dict(epochs=4, batch_size=8, dtype=F64, key=jax.random.key(2), engine=MIRROR,
               epochs_per_call=2, eval={"test": (X[:9], Y[:9])})  # fmt: skip
    whole = list(funcbp.train.fit_blocks(NET, _opt(), (X, Y), **run))
    first = whole[0]
    path = save_checkpoint(tmp_path / "c.npz", first.state, first.progress,
                           {**META, "rule": MIRROR})  # fmt: skip
    stored = np.load(path)
    assert {"rule_state/000", "rule_state/003"} <= set(stored.files)
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["rule"] == "feedback-mirror"
    assert meta["arrays"]["rule_state/003"] == {"dtype": "int32", "shape": []}

    saved = load_checkpoint(path, rule=MIRROR)
    assert_trees_close(saved.state.rule_state, first.state.rule_state, 0.0, "rule_state")
    assert_trees_close(saved.state.params, first.state.params, 0.0, "params")
    resumed = list(funcbp.train.fit_blocks(NET, _opt(), (X, Y), state=saved.state,
                                           progress=saved.progress, **run))  # fmt: skip
    assert resumed[-1].records == whole[-1].records
    assert_trees_close(resumed[-1].state.rule_state, whole[-1].state.rule_state, 0.0, "rule")
    assert_trees_close(resumed[-1].state.params, whole[-1].state.params, 0.0, "params")

    like = load_checkpoint(path, (first.state, first.progress))  # a template needs no rule
    assert_trees_close(like.state.rule_state, first.state.rule_state, 0.0, "rule_state")
    message = r"state of the learning rule 'feedback-mirror'; pass it: load_checkpoint\(path, rule="
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match=r"trained with the learning rule 'feedback-mirror', "
                                              r"not 'my-backprop'"):  # fmt: skip
        load_checkpoint(path, rule=COPY)


def test_a_checkpoint_without_rule_state_loads_with_none(tmp_path):
    state, _ = _fit(epochs=1)
    progress = funcbp.train.init_progress(state)
    path = save_checkpoint(tmp_path / "c.npz", state, progress, META)
    assert not [name for name in np.load(path).files if name.startswith("rule_state")]
    assert load_checkpoint(path).state.rule_state == ()
    assert load_checkpoint(path, rule=COPY).state.rule_state == ()  # a rule without state


def test_the_memory_estimate_counts_the_rules_state():
    needs = _memory.training_bytes(NET, _opt(), F64, rule=MIRROR)
    feedback = sum(n_in * n_out for n_in, n_out, _ in NET.init_rules)
    assert needs["rule state"] == feedback * 8 + 4
    assert "rule state" not in _memory.training_bytes(NET, _opt(), F64, rule=COPY)


# --- dropout ------------------------------------------------------------------------------


def test_training_draws_fresh_dropout_masks_each_step_from_the_state_key():
    # A zero learning rate: every step sees the same parameters, so only the masks differ.
    opt = optax.sgd(0.0)
    state = funcbp.init_state(DROPPING, opt, KEY, F64)
    step = jax.jit(funcbp.make_train_step(DROPPING, opt))
    first, (loss_1, _) = step(state, X, Y)
    _, (loss_2, _) = step(first, X, Y)
    plain = float(DROPPING.loss(state.params, X, Y))  # no key: no dropout
    assert len({float(loss_1), float(loss_2), plain}) == 3
    assert not np.array_equal(jax.random.key_data(first.key), jax.random.key_data(state.key))
    again, (loss_again, _) = step(state, X, Y)  # the same key: the same masks
    assert float(loss_again) == float(loss_1)
    np.testing.assert_array_equal(jax.random.key_data(again.key), jax.random.key_data(first.key))


def test_a_network_without_dropout_leaves_the_key_alone():
    state = funcbp.init_state(NET, _opt(), KEY, F64)
    new, _ = jax.jit(funcbp.make_train_step(NET, _opt()))(state, X, Y)
    np.testing.assert_array_equal(jax.random.key_data(new.key), jax.random.key_data(state.key))


@pytest.mark.parametrize("engine", ["autodiff", COPY], ids=["autodiff", "rule"])
def test_a_dropout_step_by_backprop_equals_the_other_engines(engine):
    state = funcbp.init_state(DROPPING, _opt(), KEY, F64)
    bp, (loss_bp, _) = jax.jit(funcbp.make_train_step(DROPPING, _opt()))(state, X, Y)
    other, (loss, _) = jax.jit(funcbp.make_train_step(DROPPING, _opt(), engine))(state, X, Y)
    np.testing.assert_allclose(loss, loss_bp, rtol=1e-10)
    assert_trees_close(other.params, bp.params, 1e-10, "params")


def test_dropout_training_evaluates_without_dropping():
    state, history = _fit(DROPPING, eval={"test": (X, Y)})
    _, autodiff_history = _fit(DROPPING, eval={"test": (X, Y)}, engine="autodiff")
    np.testing.assert_allclose(history["train_loss"], autodiff_history["train_loss"], rtol=1e-10)
    evaluated = funcbp.train.evaluate(DROPPING, state.params, X, Y)
    np.testing.assert_allclose(history["test_loss"][-1], evaluated["loss"], rtol=1e-12)
    np.testing.assert_allclose(evaluated["loss"], NET.loss(state.params, X, Y), rtol=1e-12)
    assert history["train_loss"] != _fit()[1]["train_loss"]


# --- sample weights -----------------------------------------------------------------------


def test_weights_of_one_train_as_no_weights():
    state, history = _fit(eval={"test": (X[:9], Y[:9])})
    for train, extra in [((X, Y, np.ones(24)), {}), ((X, Y), {"sample_weight": np.ones(24)})]:
        weighted, weighted_history = _fit(train=train, eval={"test": (X[:9], Y[:9], np.ones(9))},
                                          **extra)  # fmt: skip
        for name, values in history.items():
            np.testing.assert_allclose(weighted_history[name], values, rtol=1e-12, err_msg=name)
        assert_trees_close(weighted.params, state.params, 1e-12, "params")


def test_a_weight_of_two_is_the_row_twice():
    w = np.ones(24)
    w[[3, 10]] = 2.0
    twice = np.concatenate([np.arange(24), [3, 10]])
    state = funcbp.init_state(NET, _opt(), KEY, F64)
    step = jax.jit(funcbp.make_train_step(NET, _opt()))
    weighted, (loss_w, _) = step(state, X, Y, w)
    duplicated, (loss_d, _) = step(state, X[twice], Y[twice])
    np.testing.assert_allclose(loss_w, loss_d, rtol=1e-12)
    assert_trees_close(weighted.params, duplicated.params, 1e-12, "params")
    # And through fit's full-batch epochs (weights placed with the data).
    full = {"batch_size": None, "epochs": 4}
    a, history_a = _fit(train=(X, Y, w), **full)
    b, history_b = _fit(train=(X[twice], Y[twice]), **full)
    np.testing.assert_allclose(history_a["train_loss"], history_b["train_loss"], rtol=1e-12)
    assert_trees_close(a.params, b.params, 1e-12, "params")


def test_rows_weighted_zero_are_left_out():
    w = np.where(np.arange(24) < 6, 0.0, 1.0)
    full = {"batch_size": None, "epochs": 3, "eval": {"test": (X, Y, w)}}
    a, history_a = _fit(train=(X, Y, w), **full)
    b, history_b = _fit(train=(X[6:], Y[6:]), **{**full, "eval": {"test": (X[6:], Y[6:])}})
    for name in ("train_loss", "test_loss"):
        np.testing.assert_allclose(history_a[name], history_b[name], rtol=1e-12, err_msg=name)
    assert_trees_close(a.params, b.params, 1e-12, "params")
    # An epoch of mini-batches weighs each batch's rows: the loss of its weighted mean.
    assert _fit(train=(X, Y, w))[1]["train_loss"] != _fit()[1]["train_loss"]


def test_a_weighted_dataset_trains_as_its_arrays():
    weights = np.linspace(0.5, 2.0, 24).astype(np.float32)
    dataset = data.Dataset(X.astype(np.float32), Y, n_classes=3, sample_weight=weights)
    _, from_dataset = _fit(train=dataset, eval={"test": dataset})
    _, from_arrays = _fit(train=(dataset.x, Y, weights), eval={"test": (dataset.x, Y, weights)})
    assert from_dataset == from_arrays
    with pytest.raises(ValueError, match=r"train: sample_weight given twice"):
        _fit(train=dataset, sample_weight=weights)


def _bad(weights, where="train"):
    if where == "train":
        return lambda: _fit(train=(X, Y, weights))
    return lambda: _fit(eval={"test": (X, Y, weights)})


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (_bad(np.ones(23)), r"train: sample_weight has shape \(23,\), expected \(24,\)"),
        (_bad(np.ones((24, 1))), r"train: sample_weight has shape \(24, 1\), expected \(24,\)"),
        (_bad(-np.ones(24)), r"train: sample_weight\[0\] is -1; weights must be finite and >= 0"),
        (_bad(np.r_[np.ones(5), np.nan, np.ones(18)]), r"train: sample_weight\[5\] is nan"),
        (_bad(np.zeros(24)), r"train: sample_weight: every weight is 0"),
        (_bad(np.zeros(24), "eval"), r"eval\['test'\]: sample_weight: every weight is 0"),
        (_bad(np.array(["a"] * 24)), r"train: sample_weight has dtype <U1"),
        (lambda: _fit(sample_weight=np.ones(3)), r"train: sample_weight has shape \(3,\)"),
    ],
)
def test_bad_weights_are_refused_before_compiling(call, message):
    assert_refused_before_compiling(call, ValueError, message)


SCRIPT = r"""
import json, warnings
warnings.simplefilter("error")
import jax, jax.numpy as jnp, numpy as np
jax.config.update("jax_enable_x64", True)
import funcbp

assert jax.device_count() == 2, jax.devices()
net = funcbp.MLP((4, 8, 3), activation="tanh", cost="softmax_cross_entropy")
rng = np.random.default_rng(0)
x, y, w = rng.normal(size=(23, 4)), np.arange(23) % 3, rng.uniform(0.0, 2.0, 23)
out = {}
for devices in (jax.devices(), jax.devices()[:1]):
    for batch in (4, None):
        train = (x, y, w) if batch else (x[:22], y[:22], w[:22])
        state, history = funcbp.fit(net, funcbp.optim.make("adam", 1e-2), train, epochs=3,
                                    batch_size=batch, eval={"test": (x, y, w)}, dtype=jnp.float64,
                                    key=jax.random.key(0), devices=devices)
        out[f"{len(devices)}/{batch}"] = {"history": history,
                                          "w": np.asarray(state.params[0]["w"]).tolist()}
placed = funcbp.sharding.split_rows(w, funcbp.sharding.data_mesh())
out["padded"] = np.asarray(placed).tolist()
print(json.dumps(out))
"""


def test_weights_split_over_two_devices_give_the_one_device_run():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          env=env, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    assert len(out["padded"]) == 24 and out["padded"][-1] == 0.0  # the padding row weighs 0
    for batch in ("4", "None"):
        two, one = out[f"2/{batch}"], out[f"1/{batch}"]
        for name, values in one["history"].items():
            np.testing.assert_allclose(two["history"][name], values, rtol=1e-10, err_msg=name)
        np.testing.assert_allclose(two["w"], one["w"], rtol=1e-10, atol=1e-12)
