"""User activations and costs, dropout and sample weights: every gradient path checked.

Tolerances as in ``test_engines.py``: in float64 the hand-derived pass and jax.grad
sum the same terms in different orders, so they differ by a modest multiple of
eps = 2.2e-16; 1e-10 (normwise relative, ``_compare.py``) still catches any wrong
factor, sign or transpose. Where both sides compute the same sums in the same
order (weights all one against no weights), 1e-12 is the bound.
"""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcbp
from funcbp import losses, optim
from funcbp.backprop import forward
from funcbp.checkpoint import net_from_spec, net_spec

from ._compare import assert_trees_close
from ._xla_compiles import XlaCompiles
from .test_engines import RTOL64, assert_engines_agree, make_problem, make_targets


def _mish(z):
    return z * jnp.tanh(jax.nn.softplus(z))


def _mish_grad(z, a):
    # d/dz [z tanh(softplus z)] = t + z (1 - t^2) sigmoid(z),  t = tanh(softplus z)
    t = jnp.tanh(jax.nn.softplus(z))
    return t + z * (1.0 - t) * (1.0 + t) * jax.nn.sigmoid(z)


MISH = funcbp.Activation("mish", _mish, _mish_grad, init="he_normal")
# tanh under another name: saturating, so diagnostics report its saturated fraction.
MY_TANH = funcbp.Activation("my_tanh", jnp.tanh, lambda z, a: (1.0 - a) * (1.0 + a), max_grad=1.0)
MY_RELU = funcbp.Activation(
    "my_relu",
    jax.nn.relu,
    lambda z, a: (z > 0).astype(z.dtype),
    kinks=(0.0,),
    can_die=True,
    init="he_normal",
)


def _log_cosh(out, y):
    # log cosh d = logaddexp(d, -d) - log 2: finite for any d
    d = out - y
    return jnp.mean(jnp.logaddexp(d, -d) - math.log(2.0))


LOG_COSH = funcbp.Cost("log_cosh", _log_cosh, lambda out, y: jnp.tanh(out - y) / out.size)


def _bce_on_probabilities(a, y):
    return -jnp.mean(y * jnp.log(a) + (1.0 - y) * jnp.log1p(-a))


def _uniform_targets(key, shape, dtype):
    return jax.random.uniform(key, shape, dtype)


# out = sigmoid(z): dLoss/dz = (a - y) / size, fused (dLoss/da alone divides by a(1 - a)).
SIGMOID_BCE = funcbp.Cost(
    "bce_on_sigmoid",
    _bce_on_probabilities,
    lambda a, y: (a - y) / a.size,
    fused_activation="sigmoid",
    targets=_uniform_targets,
)

ACTIVATIONS = {
    "mish": MISH,
    "my_tanh": MY_TANH,
    "mish,relu": (MISH, "relu"),
    "relu,my_tanh": ("relu", MY_TANH),
    "my_relu,mish": (MY_RELU, MISH),
}


def _name(piece):
    return getattr(piece, "name", piece)


def _net(activation, **fields):
    fields = {"output_activation": "identity", "cost": "mse", **fields}
    return funcbp.MLP((5, 7, 6, 3), activation=activation, **fields)


# --- user activations --------------------------------------------------------------


@pytest.mark.parametrize("activation", ACTIVATIONS.values(), ids=ACTIVATIONS)
@pytest.mark.parametrize(
    ("output", "cost"), [("identity", "softmax_cross_entropy"), (MY_TANH, "mse"), (MISH, "mse")]
)
def test_user_activations_backprop_equals_autodiff(activation, output, cost):
    net = _net(activation, output_activation=output, cost=cost, l2=0.1)
    params, x, y = make_problem(net, jax.random.key(1), batch=9)
    assert_engines_agree(net, params, x, y, RTOL64)


@pytest.mark.parametrize("activation", ACTIVATIONS.values(), ids=ACTIVATIONS)
def test_apply_custom_vjp_gradients_equal_jax_grad_of_apply(activation):
    net = _net(activation, output_activation=MY_TANH)
    params, x, _ = make_problem(net, jax.random.key(2), batch=9)

    def scalar(apply):
        return lambda p, x: jnp.sum(jnp.sin(apply(p, x)))

    got = jax.grad(scalar(net.apply_custom_vjp), (0, 1))(params, x)
    want = jax.grad(scalar(net.apply), (0, 1))(params, x)
    assert_trees_close(got, want, RTOL64, "apply_custom_vjp")


@pytest.mark.parametrize("activation", [MISH, (MISH, MY_TANH)], ids=["mish", "mish,my_tanh"])
def test_check_gradients_and_check_hvp_pass_for_user_activations(activation):
    net = funcbp.MLP((3, 4, 4, 2), activation=activation, output_activation=MY_TANH, cost=LOG_COSH)
    params, x, y = make_problem(net, jax.random.key(3), batch=5)
    report = funcbp.check_gradients(net, params, x, y)
    assert report.ok, str(report)
    hvp = funcbp.check_hvp(net, params, x, y, vectors=2)
    assert hvp.ok, str(hvp)


def test_diagnostics_count_saturated_and_dead_units_of_user_activations():
    # Layer 1 my_relu (can_die), layer 2 my_tanh (max_grad 1), layer 3 mish (neither).
    net = funcbp.MLP((5, 7, 6, 4, 3), activation=(MY_RELU, MY_TANH, MISH), cost="mse")
    opt = optim.make("sgd", 0.01)
    state = funcbp.init_state(net, opt, jax.random.key(0), jnp.float64)
    params = state.params
    params[0]["b"] = params[0]["b"].at[:3].set(-50.0)  # three units dead for any input
    params[1]["w"] = params[1]["w"] * 8.0  # saturate some tanh units
    state = state._replace(params=params)
    x = jax.random.normal(jax.random.key(1), (16, 5), jnp.float64)
    y = jax.random.normal(jax.random.key(2), (16, 3), jnp.float64)
    _, (_, stats) = jax.jit(funcbp.make_train_step(net, opt, diagnostics=True))(state, x, y)
    pre = forward(net, params, x).pre
    dead = float(jnp.mean(jnp.all(pre[0] <= 0, axis=0)))
    saturated = float(jnp.mean(1.0 - jnp.tanh(pre[1]) ** 2 < 0.05))
    assert dead >= 3 / 7 and 0 < saturated < 1
    np.testing.assert_allclose(stats["dead_fraction"][0], dead, rtol=1e-12)
    np.testing.assert_allclose(stats["saturated_fraction"][1], saturated, rtol=1e-12)
    # Neither counted where the activation does not say it can die or saturate.
    assert np.isnan(stats["saturated_fraction"][0]) and np.isnan(stats["dead_fraction"][1])
    assert np.isnan(stats["dead_fraction"][2]) and np.isnan(stats["saturated_fraction"][2])
    assert np.isnan(stats["dead_fraction"][3]) and np.isnan(stats["saturated_fraction"][3])


def test_networks_with_user_pieces_are_hashable_static_jit_arguments():
    net = _net((MISH, "relu"), output_activation=MY_TANH, cost=LOG_COSH)
    twin = _net((MISH, "relu"), output_activation=MY_TANH, cost=LOG_COSH)
    assert net == twin and hash(net) == hash(twin)
    assert net != _net((MY_TANH, "relu"), output_activation=MY_TANH, cost=LOG_COSH)
    traces = []

    def engine(net, params, x, y):
        traces.append(net)
        return net.backprop(params, x, y)

    run = jax.jit(engine, static_argnums=0)
    params, x, y = make_problem(net, jax.random.key(4), batch=6)
    loss, grads = run(net, params, x, y)
    run(twin, params, x, y)  # an equal spec: the same compiled program
    assert len(traces) == 1
    want_loss, want_grads = net.autodiff(params, x, y)
    assert_trees_close((loss, grads), (want_loss, want_grads), RTOL64, "jit static net")


# --- user costs -------------------------------------------------------------------


@pytest.mark.parametrize("output", ["identity", "tanh", MISH], ids=["identity", "tanh", "mish"])
def test_user_cost_backprop_equals_autodiff(output):
    net = _net("tanh", output_activation=output, cost=LOG_COSH, l2=0.05)
    params, x, y = make_problem(net, jax.random.key(5), batch=9)
    assert_engines_agree(net, params, x, y, RTOL64)


@pytest.mark.parametrize("hidden", ["relu", MISH], ids=["relu", "mish"])
def test_fused_user_cost_backprop_equals_autodiff(hidden):
    net = _net(hidden, output_activation="sigmoid", cost=SIGMOID_BCE)
    params, x, y = make_problem(net, jax.random.key(6), batch=9)
    assert float(jnp.min(y)) >= 0 and float(jnp.max(y)) <= 1  # from the cost's targets
    assert_engines_agree(net, params, x, y, RTOL64)


def test_fused_cost_for_a_user_output_activation():
    my_sigmoid = funcbp.Activation("my_sigmoid", jax.nn.sigmoid, lambda z, a: a * (1.0 - a))
    cost = SIGMOID_BCE._replace(name="bce_on_my_sigmoid", fused_activation="my_sigmoid")
    net = _net("tanh", output_activation=my_sigmoid, cost=cost)
    params, x, y = make_problem(net, jax.random.key(7), batch=9)
    assert_engines_agree(net, params, x, y, RTOL64)


@pytest.mark.parametrize("output", ["identity", "tanh", MY_TANH], ids=["identity", "tanh", "my"])
def test_fused_cost_with_another_output_activation_is_refused(output):
    with pytest.raises(ValueError, match=r"bce_on_sigmoid.*'sigmoid'.*output_activation"):
        _net("relu", output_activation=output, cost=SIGMOID_BCE)


@pytest.mark.parametrize(
    "piece",
    [
        funcbp.Activation("relu", jnp.tanh, lambda z, a: 1.0 - a**2),
        funcbp.Activation("tanh", jnp.tanh, lambda z, a: 1.0 - a**2),  # the same functions
        funcbp.Cost("mse", _log_cosh, LOG_COSH.output_delta),
    ],
    ids=["activation relu", "activation tanh", "cost mse"],
)
def test_user_piece_named_like_a_built_in_is_refused(piece):
    fields = {"cost": piece} if isinstance(piece, funcbp.Cost) else {"activation": piece}
    with pytest.raises(ValueError, match=rf"{piece.name!r}: the name of a built-in"):
        _net(**{"activation": "relu", **fields})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", ""),
        ("name", "a:b"),
        ("name", 3),
        ("fn", "tanh"),
        ("grad", None),
        ("kinks", [0.0]),
        ("kinks", ("zero",)),
        ("max_grad", -1.0),
        ("max_grad", 0),
        ("can_die", 1),
        ("init", None),
    ],
)
def test_malformed_activation_is_refused_naming_the_field(field, value):
    act = MISH._replace(**{field: value})
    with pytest.raises(ValueError, match=rf"Activation .*: {field} must be"):
        _net(act)
    with pytest.raises(ValueError, match=rf"Activation .*: {field} must be"):
        _net("relu", output_activation=act)


def test_activation_with_an_unknown_initializer_is_refused():
    with pytest.raises(ValueError, match="no_such_init"):
        _net(MISH._replace(init="no_such_init"))


@pytest.mark.parametrize(
    ("field", "value"),
    [("name", ""), ("loss", 1.0), ("output_delta", None), ("check_targets", "shape"),
     ("fused_activation", 1), ("targets", 2)],
)  # fmt: skip
def test_malformed_cost_is_refused_naming_the_field(field, value):
    with pytest.raises(ValueError, match=rf"Cost .*: {field} must be"):
        _net("relu", cost=LOG_COSH._replace(**{field: value}))


# --- checkpoints -------------------------------------------------------------------


def test_net_spec_round_trip_needs_the_user_pieces():
    net = funcbp.MLP((5, 7, 6, 3), activation=(MISH, "relu"), output_activation=MY_TANH,
                     cost=LOG_COSH, dropout=(0.2, 0.0))  # fmt: skip
    spec = json.loads(json.dumps(net_spec(net)))  # JSON-ready
    assert spec["activation"] == ["mish", "relu"]
    assert spec["output_activation"] == "my_tanh" and spec["cost"] == "log_cosh"
    with pytest.raises(ValueError, match=r"activation 'mish'.*pieces"):
        net_from_spec(spec)
    with pytest.raises(ValueError, match=r"activation 'my_tanh'"):
        net_from_spec(spec, pieces=[MISH, LOG_COSH])
    with pytest.raises(ValueError, match=r"cost 'log_cosh'"):
        net_from_spec(spec, pieces=[MISH, MY_TANH])
    rebuilt = net_from_spec(spec, pieces=[LOG_COSH, MY_TANH, MISH])
    assert rebuilt == net and hash(rebuilt) == hash(net)


def test_checkpoint_file_round_trip_with_user_pieces(tmp_path):
    net = _net((MISH, "relu"), output_activation=MY_TANH, cost=LOG_COSH)
    opt_meta = {"name": "sgd", "learning_rate": 0.1, "options": {}}
    state = funcbp.init_state(net, optim.make("sgd", 0.1), jax.random.key(0), jnp.float64)
    progress = funcbp.train.init_progress(state)
    path = funcbp.save_checkpoint(tmp_path / "ckpt", state, progress,
                                  {"net": net, "optimizer": opt_meta})  # fmt: skip
    with pytest.raises(funcbp.CheckpointError, match="mish"):
        funcbp.load_checkpoint(path)
    loaded = funcbp.load_checkpoint(path, pieces=[MISH, MY_TANH, LOG_COSH])
    assert loaded.net == net
    assert_trees_close(loaded.state.params, state.params, 0.0, "params")


# --- dropout ----------------------------------------------------------------------


def _engines(net, params, x, y, **extras):
    return net.backprop(params, x, y, **extras), net.autodiff(params, x, y, **extras)


@pytest.mark.parametrize("rate", [(0.5, 0.0), 0.3], ids=["0.5,0", "0.3"])
@pytest.mark.parametrize("hidden", ["tanh", "relu", "sigmoid", MISH], ids=_name)
def test_dropout_backprop_equals_autodiff_with_a_fixed_key(hidden, rate):
    net = _net(hidden, cost="softmax_cross_entropy", dropout=rate, l2=0.1)
    params, x, y = make_problem(net, jax.random.key(8), batch=9)
    key = jax.random.key(9)
    (loss_bp, grads_bp), (loss_ad, grads_ad) = _engines(net, params, x, y, key=key)
    assert_trees_close(loss_bp, loss_ad, RTOL64, "loss")
    assert_trees_close(grads_bp, grads_ad, RTOL64, "grads")
    # The key changes the loss (dropout happened) but the same key gives the same one.
    assert float(loss_bp) != float(net.loss(params, x, y))
    assert float(net.loss(params, x, y, key=key)) == float(loss_bp)


def test_dropout_masks_differ_between_keys():
    net = _net("tanh", dropout=(0.5, 0.3))
    params, x, y = make_problem(net, jax.random.key(10), batch=9)
    first = forward(net, params, x, jax.random.key(0)).kept
    second = forward(net, params, x, jax.random.key(1)).kept
    again = forward(net, params, x, jax.random.key(0)).kept
    for a, b, c in zip(first, second, again, strict=True):
        assert not np.array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    grads_0 = net.backprop(params, x, y, key=jax.random.key(0))[1]
    grads_1 = net.backprop(params, x, y, key=jax.random.key(1))[1]
    assert not np.array_equal(grads_0[0]["w"], grads_1[0]["w"])


@pytest.mark.parametrize("hidden", ["relu", MISH], ids=_name)
def test_without_a_key_dropout_changes_nothing(hidden):
    net = _net(hidden, dropout=0.5)
    plain = _net(hidden)
    params, x, y = make_problem(net, jax.random.key(11), batch=9)
    np.testing.assert_array_equal(net.apply(params, x), plain.apply(params, x))
    np.testing.assert_array_equal(net.loss(params, x, y), plain.loss(params, x, y))
    for engine in ("backprop", "autodiff"):
        got = getattr(net, engine)(params, x, y)
        want = getattr(plain, engine)(params, x, y)
        jax.tree.map(np.testing.assert_array_equal, got, want)


def _big_batch(rate):
    net = funcbp.MLP((8, 400, 3), activation="relu", dropout=rate)
    params, x, _ = make_problem(net, jax.random.key(12), batch=1000)
    return forward(net, params, x, jax.random.key(13))


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.5, 0.9])
def test_keep_fraction_is_one_minus_the_rate(rate):
    # n = 1000 x 400 independent Bernoulli(1 - p) draws: the kept fraction has standard
    # deviation sqrt(p (1 - p) / n) <= 0.5 / sqrt(4e5) = 7.9e-4; six of them (6 sigma:
    # a 2e-9 chance of a false failure, and the key is fixed, so it never flakes) bound
    # it, while a mask drawn at rate 1 - p, or scaled wrongly, is off by far more.
    kept = _big_batch(rate).kept[0]
    n = kept.size
    fraction = float(jnp.mean(kept > 0))
    assert abs(fraction - (1 - rate)) < 6 * math.sqrt(rate * (1 - rate) / n)
    # Kept units are scaled by exactly 1 / (1 - p), dropped ones are 0.
    np.testing.assert_allclose(np.unique(np.asarray(kept)), [0.0, 1 / (1 - rate)], rtol=1e-15)


@pytest.mark.parametrize("rate", [0.3, 0.5, 0.9])
def test_inverted_scaling_keeps_the_mean_activation(rate):
    # E[a m] = a (1 - p) / (1 - p) = a for each unit; the batch mean of a m over n
    # draws differs from that of a by at most 6 standard deviations,
    # sqrt(p / (1 - p) * mean(a^2) / n) (var of m is p / (1 - p)), except with a
    # 2e-9 chance. Unscaled dropout would be off by p * mean(a), far beyond the bound.
    cache = _big_batch(rate)
    a, dropped = cache.post[0], cache.layer_input(1)
    n = a.size
    bound = 6 * math.sqrt(rate / (1 - rate) * float(jnp.mean(a**2)) / n)
    assert abs(float(jnp.mean(dropped)) - float(jnp.mean(a))) < bound
    assert rate * float(jnp.mean(a)) > 5 * bound  # the test could see a missing 1 / (1 - p)


# --- sample weights -----------------------------------------------------------------


def _weighted_problem(cost, key=14, batch=9):
    net = funcbp.MLP((5, 7, 3), activation="tanh", cost=cost, l2=0.1)
    params, x, y = make_problem(net, jax.random.key(key), batch)
    return net, params, x, y


@pytest.mark.parametrize("cost", losses.NAMES)
def test_sample_weights_backprop_equals_autodiff(cost):
    net, params, x, y = _weighted_problem(cost)
    w = jax.random.uniform(jax.random.key(15), (x.shape[0],), jnp.float64, 0.1, 3.0)
    (loss_bp, grads_bp), (loss_ad, grads_ad) = _engines(net, params, x, y, sample_weight=w)
    assert_trees_close(loss_bp, loss_ad, RTOL64, "loss")
    assert_trees_close(grads_bp, grads_ad, RTOL64, "grads")
    assert abs(float(loss_bp) - float(net.loss(params, x, y))) > 1e-6  # the weights count
    # The weighted mean of the rows' losses, by hand.
    rows = [net.loss(params, x[i : i + 1], y[i : i + 1]) for i in range(x.shape[0])]
    penalty = float(losses.weight_penalty(params, net.l2))
    want = float(jnp.sum(w * (jnp.stack(rows) - penalty)) / jnp.sum(w)) + penalty
    np.testing.assert_allclose(float(loss_bp), want, rtol=1e-12)


@pytest.mark.parametrize("cost", losses.NAMES)
def test_unit_sample_weights_equal_no_weights(cost):
    net, params, x, y = _weighted_problem(cost)
    ones = jnp.ones(x.shape[0], jnp.float64)
    for engine in (net.backprop, net.autodiff):
        got, want = engine(params, x, y, sample_weight=ones), engine(params, x, y)
        assert_trees_close(got, want, 1e-12, engine.__name__)


@pytest.mark.parametrize("cost", losses.NAMES)
def test_integer_weight_two_equals_a_duplicated_row(cost):
    net, params, x, y = _weighted_problem(cost)
    w = jnp.ones(x.shape[0], jnp.int32).at[2].set(2)
    x2, y2 = jnp.concatenate([x, x[2:3]]), jnp.concatenate([y, y[2:3]])
    for engine in (net.backprop, net.autodiff):
        got, want = engine(params, x, y, sample_weight=w), engine(params, x2, y2)
        assert_trees_close(got, want, 1e-12, engine.__name__)


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        (np.ones(8), r"shape \(8,\), expected \(9,\)"),
        (np.ones((9, 1)), r"shape \(9, 1\)"),
        (np.r_[np.ones(8), -1.0], r"sample_weight\[8\] is -1"),
        (np.r_[np.nan, np.ones(8)], r"sample_weight\[0\] is nan"),
        (np.r_[np.ones(8), np.inf], r"sample_weight\[8\] is inf"),
        (np.zeros(9), "every weight is 0"),
        (np.array(["a"] * 9), "dtype"),
    ],
    ids=["short", "2-d", "negative", "nan", "inf", "all zero", "strings"],
)
@pytest.mark.parametrize("method", ["loss", "backprop", "backprop_full", "autodiff"])
def test_bad_sample_weights_are_refused(weights, match, method):
    net, params, x, y = _weighted_problem("mse")
    with pytest.raises(ValueError, match="sample_weight") as raised:
        getattr(net, method)(params, x, y, sample_weight=weights)
    assert raised.match(match)


# --- the new losses at and off their kinks ----------------------------------------------


@pytest.mark.parametrize("name", ["mae", "huber", "poisson"])
def test_new_losses_output_delta_equals_jax_grad_including_kinks(name):
    cost = losses.get(name)
    key_out, key_y = jax.random.split(jax.random.key(16))
    out = jax.random.normal(key_out, (6, 4), jnp.float64) * 2.0
    if name == "poisson":
        y = make_targets(funcbp.MLP((1, 4), cost=name), key_y, 6)
    else:
        y = jax.random.normal(key_y, (6, 4), jnp.float64)
        # Row 0: out == y (mae's kink, where jax.grad of |d| is +1); rows 1, 2:
        # |out - y| == 1 exactly (huber's switch from d^2/2 to |d| - 1/2).
        out = out.at[0].set(y[0]).at[1].set(y[1] + 1.0).at[2].set(y[2] - 1.0)
        assert np.all(np.abs(np.asarray(out[1:3] - y[1:3])) == 1.0)
    want = jax.grad(cost.loss)(out, y)
    got = cost.output_delta(out, y)
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-17)
    if name == "mae":  # +1 at d = 0, as jax.grad of jnp.abs
        np.testing.assert_array_equal(got[0], jnp.full(4, 1.0 / out.size))
    if name == "huber":  # clip(d, -1, 1) = +-1 at |d| = 1
        np.testing.assert_array_equal(got[1], jnp.full(4, 1.0 / out.size))
        np.testing.assert_array_equal(got[2], jnp.full(4, -1.0 / out.size))


@pytest.mark.parametrize(
    ("pieces", "message"),
    [
        (
            {"activation": funcbp.Activation("flat", lambda z: z.sum(1), lambda z, a: z)},
            r"Activation 'flat': fn maps z \[3, 5\] float32 to \[3\] float32; it must keep",
        ),
        (
            {"activation": funcbp.Activation("wide", jnp.tanh,
                                             lambda z, a: (1 - a**2).astype(jnp.float16))},
            r"Activation 'wide': grad maps z \[3, 5\] float32 to \[3, 5\] float16",
        ),
        (
            {"cost": funcbp.Cost("rows", lambda o, y: jnp.mean((o - y) ** 2, axis=1),
                                 lambda o, y: o - y)},
            r"Cost 'rows': loss returns shape \[3\] for out \[3, 2\] float32; it must return a "
            r"scalar",
        ),
        (
            {"cost": funcbp.Cost("thin", lambda o, y: jnp.mean((o - y) ** 2),
                                 lambda o, y: (o - y)[:, 0])},
            r"Cost 'thin': output_delta returns \[3\] float32 for out \[3, 2\] float32",
        ),
    ],
)  # fmt: skip
def test_a_piece_that_breaks_its_contract_is_refused_when_the_network_is_made(pieces, message):
    compiles = XlaCompiles()
    with compiles, pytest.raises(ValueError, match=message):
        funcbp.MLP((4, 5, 2), **pieces)
    assert compiles.count == 0
