"""Learning rules beyond backprop: each against exact backprop in float64 where the theory
says they meet, their alignment statistics against ones computed outside the step, and
each learning digits."""

import json
import os
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcbp
from funcbp import data, rules
from funcbp.backprop import backprop, backprop_with_cache

from ._xla_compiles import assert_refused_before_compiling

F64 = jnp.float64
NET = funcbp.MLP((5, 7, 6, 4), activation="tanh", cost="softmax_cross_entropy")
X = np.random.default_rng(0).normal(size=(16, 5))
Y = np.arange(16) % 4
KEY = jax.random.key(0)
STATEFUL = ("feedback_alignment", "direct_feedback_alignment", "kolen_pollack",
            "forward_gradient")  # fmt: skip


def _params(net=NET):
    return net.init(KEY, F64)


def _exact(net, params, x=X, y=Y):
    return backprop(net, params, jnp.asarray(x, F64), jnp.asarray(y)).grads


def _opt():
    return funcbp.optim.make("sgd", 0.1)


def _transposes(params):
    return tuple(p["w"].T for p in params)


# --- exactness: where each rule is backprop ------------------------------------------------


def test_feedback_alignment_with_b_equal_to_w_transposed_is_backprop():
    params = _params()
    rule = rules.feedback_alignment()
    result = backprop(NET, params, X, Y, rule=rule, rule_state=_transposes(params))
    chex.assert_trees_all_close(result.grads, _exact(NET, params), rtol=0, atol=1e-12)


def test_direct_feedback_with_one_hidden_layer_and_d_equal_to_w_transposed_is_backprop():
    net = funcbp.MLP((5, 7, 4), activation="relu", cost="softmax_cross_entropy")
    params = _params(net)
    state = rules.direct_feedback_alignment().init(KEY, net, params)
    assert [d.shape for d in state] == [(4, 5), (4, 7)]  # [n_out_L, n_in_l]
    result = backprop(net, params, X, Y, rule=rules.direct_feedback_alignment(),
                      rule_state=(state[0], params[1]["w"].T))  # fmt: skip
    chex.assert_trees_all_close(result.grads, _exact(net, params), rtol=0, atol=1e-12)


def test_kolen_pollacks_first_step_from_symmetric_matrices_is_backprops():
    start = funcbp.init_state(NET, _opt(), KEY, F64, rule=rules.kolen_pollack())
    symmetric = start._replace(rule_state=_transposes(start.params))
    kp = jax.jit(funcbp.make_train_step(NET, _opt(), "kolen_pollack"))(symmetric, X, Y)[0]
    bp = jax.jit(funcbp.make_train_step(NET, _opt()))(start, X, Y)[0]
    chex.assert_trees_all_close(kp.params, bp.params, rtol=0, atol=1e-12)
    # B took W's update: it is W^T again (B - W^T = 0 decays to 0).
    chex.assert_trees_all_close(kp.rule_state, _transposes(kp.params), rtol=0, atol=1e-12)


def test_kolen_pollack_shrinks_b_minus_w_transposed_by_one_minus_decay_per_step():
    rule = rules.kolen_pollack(decay=0.2)
    start = funcbp.init_state(NET, _opt(), KEY, F64, rule=rule)
    step = jax.jit(funcbp.make_train_step(NET, _opt(), rule))
    state = start
    for _ in range(3):
        state, _ = step(state, X, Y)
    for b0, p0, b, p in zip(start.rule_state, start.params, state.rule_state, state.params,
                            strict=True):  # fmt: skip
        np.testing.assert_allclose(b - p["w"].T, 0.8**3 * (b0 - p0["w"].T), rtol=1e-10,
                                   atol=1e-14)  # fmt: skip


# Every built-in hidden activation, one per layer of one deep network.
HIDDEN = ("relu", "leaky_relu", "elu", "gelu", "silu", "softplus", "sigmoid", "tanh", "identity")


@pytest.mark.parametrize(
    ("output", "cost", "y"),
    [
        ("identity", "softmax_cross_entropy", Y),
        (
            "identity",
            "sigmoid_binary_cross_entropy",
            (np.arange(48).reshape(16, 3) % 2).astype(float),
        ),
        ("sigmoid", "mse", np.linspace(0, 1, 48).reshape(16, 3)),
    ],
)
def test_predictive_coding_with_fixed_predictions_and_t_equal_to_l_is_backprop(output, cost, y):
    net = funcbp.MLP((5, *[6] * len(HIDDEN), 3 if y.ndim == 2 else 4), activation=HIDDEN,
                     output_activation=output, cost=cost)  # fmt: skip
    params = _params(net)
    rule = rules.predictive_coding(steps=net.num_layers, step_size=1.0, fixed_prediction=True)
    loss, grads = jax.jit(lambda p: rule.gradient(net, p, (), X, y))(params)
    exact = backprop(net, params, X, y)
    chex.assert_trees_all_close(grads, exact.grads, rtol=0, atol=1e-10)
    np.testing.assert_allclose(loss, exact.loss, rtol=1e-14)


def test_plain_predictive_coding_approaches_backprop_as_t_grows():
    x = np.random.default_rng(1).normal(size=(64, 5))
    y = np.arange(64) % 4
    params = _params()
    exact = _exact(NET, params, x, y)

    def angles(steps):
        rule = rules.predictive_coding(steps=steps, step_size=0.1)
        _, grads = jax.jit(lambda p: rule.gradient(NET, p, (), x, y))(params)
        return np.array([funcbp.diagnostics.angle(g["w"], e["w"]) for g, e in
                         zip(grads, exact, strict=True)])  # fmt: skip

    # The hidden layers' errors climb towards backprop's; the nodes' equilibrium moves the
    # output's prediction a little, so its layer drifts off by a few degrees meanwhile.
    few, more, many = angles(10), angles(50), angles(400)
    assert np.all(many[:-1] < more[:-1]) and np.all(more[:-1] < few[:-1]), (few, more, many)
    assert many.max() < more.max() < few.max()
    assert np.all(many < 3.0), many  # degrees


def test_the_mean_of_many_forward_gradients_is_the_gradient():
    params = _params()
    rule = rules.forward_gradient()
    keys = jax.random.split(jax.random.key(7), 10_000)
    samples = jax.jit(jax.vmap(lambda k: rule.gradient(NET, params, jax.random.key_data(k),
                                                       X, Y)[1]))(keys)  # fmt: skip
    exact = _exact(NET, params)
    for sample, g in zip(jax.tree.leaves(samples), jax.tree.leaves(exact), strict=True):
        mean, error = sample.mean(axis=0), sample.std(axis=0, ddof=1) / np.sqrt(len(keys))
        assert np.all(error > 0)
        assert np.all(np.abs(mean - g) <= 4 * error), np.max(np.abs(mean - g) / error)
    # directions=k averages k of them: the estimate's spread shrinks like 1/sqrt(k).
    many = rules.forward_gradient(directions=100)
    spread = np.std([float(many.gradient(NET, params, jax.random.key_data(k), X, Y)[1][0]
                           ["w"][0, 0]) for k in keys[:20]])  # fmt: skip
    assert spread < 0.3 * float(samples[0]["w"][:, 0, 0].std())


def test_sign_symmetry_feeds_back_the_signs_of_w():
    params = _params()
    uniform, random = rules.sign_symmetry(), rules.sign_symmetry("random")
    state = random.init(KEY, NET, params)
    for layer, p in enumerate(params):
        for rule, s in ((uniform, ()), (random, state)):
            b = rule.feedback(params, s, layer)
            chex.assert_shape(b, p["w"].T.shape)
            np.testing.assert_array_equal(np.sign(b), np.sign(p["w"].T))
        n_in, n_out = p["w"].shape
        np.testing.assert_allclose(np.abs(uniform.feedback(params, (), layer)),
                                   np.sqrt(2 / (n_in + n_out)))  # fmt: skip
        assert len(np.unique(np.abs(random.feedback(params, state, layer)))) > 1


# --- alignment in the step ---------------------------------------------------------------


def _degrees(u, v):
    u, v = np.ravel(u), np.ravel(v)
    return np.degrees(np.arccos(np.clip(u @ v / np.linalg.norm(u) / np.linalg.norm(v), -1, 1)))


@pytest.mark.parametrize("name", rules.NAMES)
def test_alignment_in_the_step_equals_alignment_computed_outside_it(name):
    rule = rules.make(name)
    state = funcbp.init_state(NET, _opt(), KEY, F64, rule=rule)
    step = jax.jit(funcbp.make_train_step(NET, _opt(), rule, diagnostics=True))
    _, (_, stats) = step(state, X, Y)
    exact = jax.grad(NET.loss)(state.params, X, Y)
    if isinstance(rule, funcbp.BackwardRule):
        update = backprop_with_cache(NET, state.params, X, Y, rule=rule,
                                     rule_state=state.rule_state)[0].grads  # fmt: skip
    else:
        update = rule.gradient(NET, state.params, state.rule_state, X, Y)[1]
    for layer, (u, g) in enumerate(zip(update, exact, strict=True)):
        np.testing.assert_allclose(stats["alignment_angle"][layer], _degrees(u["w"], g["w"]),
                                   rtol=0, atol=1e-8)  # fmt: skip
        np.testing.assert_allclose(
            stats["norm_ratio"][layer], np.linalg.norm(u["w"]) / np.linalg.norm(g["w"]), rtol=1e-12
        )
        if isinstance(rule, funcbp.BackwardRule) and not rule.from_output:
            b = rule.feedback(state.params, state.rule_state, layer)
            np.testing.assert_allclose(
                stats["feedback_angle"][layer], _degrees(b, state.params[layer]["w"].T), atol=1e-8
            )
        else:
            assert np.isnan(stats["feedback_angle"][layer])
    # The output layer's delta is exact under the feedback rules.
    if isinstance(rule, funcbp.BackwardRule):
        assert stats["alignment_angle"][-1] < 1e-5


def test_a_rule_with_diagnostics_trains_as_without_and_records_its_alignment():
    rule = rules.kolen_pollack()
    run = {"epochs": 2, "batch_size": 4, "dtype": F64, "key": KEY, "engine": rule}
    plain_state, plain = funcbp.fit(NET, _opt(), (X, Y), **run)
    state, history = funcbp.fit(NET, _opt(), (X, Y), diagnostics_every=2, **run)
    # The same updates; the statistics' step fuses its sums differently (~1 ulp).
    np.testing.assert_allclose(history["train_loss"], plain["train_loss"], rtol=1e-13)
    chex.assert_trees_all_close(state.rule_state, plain_state.rule_state, rtol=1e-12)
    for name in funcbp.diagnostics.ALIGNMENT_STATS:
        assert np.shape(history[name]) == (2, NET.num_layers), name


# --- bad input, before anything is compiled ------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: funcbp.fit(NET, _opt(), (X, Y), epochs=1, batch_size=4, engine="fa"),
            r"engine must be one of backprop, autodiff, feedback_alignment, direct_feedback_align",
        ),
        (
            lambda: funcbp.fit(
                funcbp.MLP((5, 4)),
                _opt(),
                (X, X[:, :4]),
                epochs=1,
                batch_size=4,
                engine="direct_feedback_alignment",
            ),
            r"direct_feedback_alignment needs a hidden layer: .* \[5, 4\]",
        ),
        (lambda: rules.predictive_coding(steps=0), r"steps \(T\) must be an integer in \[1, "),
        (lambda: rules.predictive_coding(step_size=1.5), r"step_size must be a number in \(0, 1\]"),
        (
            lambda: rules.make("feedback_alignment", decay=0.1),
            r"'decay' is not an option of rule 'feedback_alignment' \(its options: none\); it is "
            r"an option of kolen_pollack",
        ),
        (
            lambda: rules.make("kolen_pollack", steps=3),
            r"'steps' is not an option of rule 'kolen_pollack' \(its options: decay\); it is an "
            r"option of predictive_coding",
        ),
        (lambda: rules.kolen_pollack(decay=1.0), r"decay must be a number in \[0, 1\)"),
        # 0 is a valid decay and False is not: the cache of made rules keeps them apart.
        (lambda: (rules.kolen_pollack(0), rules.kolen_pollack(False)), r"decay must be a number"),
        (lambda: rules.sign_symmetry("fixed"), r"magnitude must be one of uniform, random"),
        (lambda: rules.forward_gradient(directions=0), r"directions must be an integer"),
        (
            lambda: funcbp.fit(
                funcbp.MLP((5, 7, 4), dropout=0.5),
                _opt(),
                (X, X[:, :4]),
                epochs=1,
                batch_size=4,
                engine="predictive_coding",
            ),
            r"predictive_coding does not drop out",
        ),
    ],
)
def test_bad_rules_are_refused_with_one_message_before_compiling(call, message):
    assert_refused_before_compiling(call, ValueError, message)


def test_equal_options_make_the_same_rule_and_reuse_the_compiled_block():
    assert rules.make("kolen_pollack", decay=0.05) is rules.kolen_pollack(0.05)
    assert rules.make("sign_symmetry") is rules.sign_symmetry(magnitude="uniform")
    assert rules.make("backprop") is funcbp.BACKPROP
    assert funcbp.FitOptions(epochs=1, batch_size=4, engine="kolen_pollack").engine is (
        rules.kolen_pollack()
    )


# --- state: checkpointed, resumed, replicated ---------------------------------------------


@pytest.mark.parametrize("name", ["kolen_pollack", "forward_gradient"])
def test_a_rules_state_checkpoints_and_a_resumed_run_equals_one_run(tmp_path, name):
    run = {"epochs": 4, "batch_size": 4, "dtype": F64, "key": KEY, "engine": name,
           "epochs_per_call": 2}  # fmt: skip
    one = list(funcbp.fit_blocks(NET, _opt(), (X, Y), **run))
    first = one[0]
    path = tmp_path / "ckpt"
    funcbp.save_checkpoint(path, first.state, first.progress, {"rule": rules.make(name)})
    restored = funcbp.load_checkpoint(path, (first.state, first.progress), rule=rules.make(name))
    chex.assert_trees_all_equal(restored.state.rule_state, first.state.rule_state)
    resumed = list(funcbp.fit_blocks(NET, _opt(), (X, Y), state=restored.state,
                                     progress=restored.progress, **run))  # fmt: skip
    assert resumed[-1].columns == one[-1].columns
    chex.assert_trees_all_equal(resumed[-1].state.params, one[-1].state.params)
    chex.assert_trees_all_equal(resumed[-1].state.rule_state, one[-1].state.rule_state)


TWO_DEVICES = r"""
import json, warnings
warnings.simplefilter("error")
import jax, numpy as np
jax.config.update("jax_enable_x64", True)
import funcbp
assert jax.device_count() == 2
x = np.random.default_rng(0).normal(size=(16, 5)); y = np.arange(16) % 4
net = funcbp.MLP((5, 7, 6, 4), activation="tanh", cost="softmax_cross_entropy")
out = {}
for engine in NAMES:
    for devices in (jax.devices(), jax.devices()[:1]):
        state, history = funcbp.fit(net, funcbp.optim.make("sgd", 0.01), (x, y), epochs=2,
                                    batch_size=8, engine=engine, dtype=np.float64,
                                    key=jax.random.key(0), devices=devices,
                                    diagnostics_every=1)
        leaves = jax.tree.leaves(state.rule_state)
        out[f"{engine}/{len(devices)}"] = {
            "history": history, "w": np.asarray(state.params[0]["w"]).tolist(),
            "state": [np.asarray(a).tolist() for a in leaves],
            "replicated": all(a.sharding.is_fully_replicated and
                              len(a.sharding.device_set) == len(devices) for a in leaves)}
print(json.dumps(out))
"""


@pytest.mark.slow
def test_rules_train_over_two_devices_as_on_one_with_their_state_replicated():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    names = ("kolen_pollack", "forward_gradient", "predictive_coding")
    script = TWO_DEVICES.replace("NAMES", repr(names))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True,
                          text=True, env=env, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    for name in names:
        two, one = out[f"{name}/2"], out[f"{name}/1"]
        assert two["replicated"] and one["replicated"]
        # The batch's halves summed: rounding only (an angle near 0 magnifies it: arccos).
        for key, values in one["history"].items():
            np.testing.assert_allclose(np.array(two["history"][key], float),
                                       np.array(values, float), rtol=1e-9, atol=1e-5,
                                       err_msg=key)  # fmt: skip
        np.testing.assert_allclose(two["w"], one["w"], rtol=1e-9, atol=1e-12)
        for a, b in zip(two["state"], one["state"], strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


# --- learning ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    parts, _ = data.standardize(data.split(data.load("digits"), validation=0.0, test=0.2,
                                           seed=0))  # fmt: skip
    return parts


@pytest.mark.slow
@pytest.mark.parametrize("name", ["backprop", *rules.NAMES])
def test_every_rule_learns_digits_far_above_chance_in_a_few_epochs(digits, name):
    net = funcbp.MLP((64, 128, 128, 10), activation="tanh", cost="softmax_cross_entropy")
    # Forward gradients are noisy (their variance grows with the 26,000 parameters):
    # plain SGD with a small step; Adam would amplify the noise.
    optimizer = (funcbp.optim.make("sgd", 3e-3) if name == "forward_gradient"
                 else funcbp.optim.make("adam", 1e-3))  # fmt: skip
    epochs = 8 if name == "kolen_pollack" else 5  # B - W^T shrinks by 0.99 a step: 360 steps
    _, history = funcbp.fit(net, optimizer, digits.train, epochs=epochs, batch_size=32,
                            engine=name,
                            eval={"test": digits.test}, key=KEY,
                            diagnostics_every=20)  # fmt: skip
    accuracy = history["test_accuracy"][-1]
    assert accuracy > (0.4 if name == "forward_gradient" else 0.9), accuracy  # chance: 0.1
    if name == "kolen_pollack":  # B_l has come to W_l^T
        assert max(history["feedback_angle"][-1]) < 10.0, history["feedback_angle"]
    if name in ("feedback_alignment", "sign_symmetry"):  # W_l has come to align with B_l
        assert max(history["alignment_angle"][-1]) < 80.0, history["alignment_angle"]
