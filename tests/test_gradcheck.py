"""Gradient checks catch deliberately broken gradients ("mutants") and say where."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import pytest

import funcbp
from funcbp.backprop import forward
from funcbp.gradcheck import FD, CheckOptions, _checks

from .test_engines import make_problem

NET = funcbp.MLP((5, 6, 6, 3), activation="tanh", cost="mse")
PARAMS, X, Y = make_problem(NET, jax.random.key(0), batch=8)
LEAVES = ["[0]['w']", "[0]['b']", "[1]['w']", "[1]['b']", "[2]['w']", "[2]['b']"]


def loss(params):
    return NET.loss(params, X, Y)


def correct(params):
    return NET.backprop(params, X, Y)[1]


def with_leaf(grads, layer, name, new):
    grads = [dict(g) for g in grads]
    grads[layer][name] = new
    return grads


def wrong_tanh_derivative_in_layer_1(params):
    """The hidden layer 1 derivative written as ``1 - a`` instead of ``1 - a**2``."""
    cache = forward(NET, params, X)
    delta = 2.0 * (cache.out - Y) / cache.out.size
    grads = []
    for layer in (2, 1, 0):
        grads.insert(0, {"w": cache.layer_input(layer).T @ delta, "b": delta.sum(0)})
        if layer:
            a = cache.post[layer - 1]
            delta = (delta @ params[layer]["w"].T) * (1 - a if layer == 2 else 1 - a**2)
    return grads


def transposed_weight_gradient(params):
    g = correct(params)
    return with_leaf(g, 1, "w", g[1]["w"].T)


def missing_factor_of_two(params):
    g = correct(params)
    return with_leaf(g, 2, "w", g[2]["w"] / 2)


def bias_unit_sign_flipped(params):
    g = correct(params)
    return with_leaf(g, 1, "b", g[1]["b"].at[3].multiply(-1))


def missing_one_over_batch(params):
    return jax.tree.map(lambda g: g * X.shape[0], correct(params))


def one_weight_off(params):
    g = correct(params)
    return with_leaf(g, 0, "w", g[0]["w"].at[2, 4].add(0.01))


def failing_leaves(report):
    return {row.path for row in report.failures}


@pytest.mark.parametrize(
    ("mutant", "bad_leaves", "index"),
    [
        # layer 1's delta is wrong, and so is every delta below it
        (wrong_tanh_derivative_in_layer_1, set(LEAVES[:4]), None),
        (transposed_weight_gradient, {"[1]['w']"}, None),
        (missing_factor_of_two, {"[2]['w']"}, None),
        (bias_unit_sign_flipped, {"[1]['b']"}, (3,)),
        (missing_one_over_batch, set(LEAVES), None),
        (one_weight_off, {"[0]['w']"}, (2, 4)),
    ],
)
@pytest.mark.parametrize("mode", ["elementwise", "directional"])
def test_mutants_fail_and_name_the_leaf(mutant, bad_leaves, index, mode):
    report = funcbp.check_grad(loss, mutant, PARAMS, mode=mode)
    assert not report.ok
    assert failing_leaves(report) == bad_leaves, str(report)
    if index is not None:
        # The analytic comparison is elementwise in both modes, so it names the index.
        (row,) = [r for r in report.failures if r.reference == "autodiff"]
        assert row.error64.index == index
        if mode == "elementwise":
            (fd_row,) = [r for r in report.failures if r.reference == FD and r.method == "grad_fn"]
            assert fd_row.error64.index == index


@pytest.mark.parametrize("mode", ["elementwise", "directional"])
def test_correct_gradients_pass(mode):
    report = funcbp.check_grad(loss, correct, PARAMS, mode=mode)
    assert report.ok, str(report)
    assert report.mode == mode and report.kinks == 0
    assert {row.path for row in report.rows} == set(LEAVES)


def test_check_gradients_three_way_on_every_cost():
    for cost in funcbp.losses.NAMES:
        net = funcbp.MLP((4, 7, 3), activation="gelu", output_activation="tanh", cost=cost, l2=0.1)
        params, x, y = make_problem(net, jax.random.key(1), batch=6)
        report = funcbp.check_gradients(net, params, x, y)
        assert report.ok, str(report)
        pairs = {(row.method, row.reference) for row in report.rows}
        assert pairs == {("backprop", "autodiff"), ("backprop", FD), ("autodiff", FD)}


def test_auto_mode_picks_by_size():
    small = funcbp.check_gradients(NET, PARAMS, X, Y)
    large = funcbp.check_gradients(NET, PARAMS, X, Y, max_elementwise=NET.num_params - 1)
    assert (small.mode, large.mode) == ("elementwise", "directional")
    assert "mode directional" in str(large)


def test_float32_errors_are_reported_in_both_precisions():
    params32 = jax.tree.map(lambda p: p.astype(jnp.float32), PARAMS)
    report = funcbp.check_gradients(NET, params32, X.astype(jnp.float32), Y.astype(jnp.float32))
    assert report.ok and report.dtype == "float32"
    for row in report.rows:
        assert row.error64.max_rel < 1e-9  # float64: no error beyond the method's own
        assert row.error.max_rel > row.error64.max_rel  # float32 rounding shows up
        assert row.tolerance == funcbp.gradcheck.TOLERANCES["float32"] or row.reference == FD


def test_a_float64_bug_is_caught_even_when_float32_rounding_would_hide_it():
    # An error of 1e-6 relative hides inside float32 rounding but not in float64.
    def subtle(params):
        return jax.tree.map(lambda g: g * (1 + 1e-6), correct(params))

    params32 = jax.tree.map(lambda p: p.astype(jnp.float32), PARAMS)
    report = funcbp.check_grad(loss, subtle, params32)
    assert not report.ok
    assert all(row.error64.max_rel > row.tolerance64 for row in report.failures)


def test_a_float32_formula_that_loses_more_than_autodiff_to_rounding_fails():
    # 1e-3 off only where the arguments are float32: far beyond float32's own rounding.
    def sloppy_in_float32(params):
        grads = correct(params)
        return jax.tree.map(lambda g: g * (1 + 1e-3) if g.dtype == jnp.float32 else g, grads)

    params32 = jax.tree.map(lambda p: p.astype(jnp.float32), PARAMS)
    report = funcbp.check_grad(loss, sloppy_in_float32, params32)
    assert not report.ok and report.failures
    assert all(row.error64.max_rel < 1e-9 < row.error.max_rel for row in report.failures)


@pytest.mark.parametrize("mode", ["elementwise", "directional"])
def test_vanishing_gradients_pass_where_finite_differences_cannot_resolve_them(mode):
    # Ten sigmoid layers with small weights: layer 1's gradient is ~1e-9 of the last's,
    # below the loss's rounding over the step (u |f| / h ~ 5e-12). Both engines are
    # right; finite differences there are noise and must neither fail nor flag kinks.
    net = funcbp.MLP((16, *[16] * 9, 10), activation="sigmoid", cost="softmax_cross_entropy")
    params = [{"w": 0.3 * p["w"], "b": p["b"]} for p in net.init(jax.random.key(0), jnp.float64)]
    x = jax.random.normal(jax.random.key(1), (16, 16), jnp.float64)
    y = jnp.arange(16) % 10
    report = funcbp.check_gradients(net, params, x, y, mode=mode)
    assert report.ok and report.kinks == 0, str(report)
    unresolved = {row.path for row in report.rows if row.unresolved}
    assert "[0]['b']" in unresolved and "[9]['w']" not in unresolved
    assert "ok~" in str(report)
    # The analytic comparison still holds them to 1e-9.
    assert all(row.error64.max_rel < 1e-9 for row in report.rows if row.reference == "autodiff")


def test_saturated_tanh_in_float32_errs_as_autodiff_does_and_passes():
    # Pre-activations near 6: tanh' = (1 - a)(1 + a) ~ 2.5e-5 from a rounded near 1, so
    # both engines are ~1e-3 off the float64 value; that is float32's, not backprop's.
    net = funcbp.MLP((3, 4, 2), activation="tanh", cost="mse")
    params = net.init(jax.random.key(0))
    params = [{"w": params[0]["w"], "b": jnp.full(4, 6.0)}, params[1]]
    x = 0.3 * jax.random.normal(jax.random.key(1), (8, 3), jnp.float32)
    report = funcbp.check_gradients(net, params, x, jnp.zeros((8, 2), jnp.float32))
    assert report.ok, str(report)
    rows = [r for r in report.rows if r.reference == "autodiff" and r.path == "[0]['b']"]
    assert rows[0].error.max_rel > funcbp.gradcheck.TOLERANCES["float32"]  # what it allows


def test_relu_kinks_are_counted_not_judged():
    net = funcbp.MLP((3, 4, 2), activation="relu", cost="mse")
    params, x, y = make_problem(net, jax.random.key(2), batch=5)
    # Put unit 0 of the hidden layer exactly at its kink for example 0.
    b = params[0]["b"].at[0].set(-(x[0] @ params[0]["w"][:, 0]))
    params = [{"w": params[0]["w"], "b": b}, params[1]]
    report = funcbp.check_gradients(net, params, x, y)
    assert report.kinks > 0
    assert report.ok, str(report)
    assert "excluded" in str(report)
    kinked = {row.path for row in report.rows if row.kinks}
    assert "[0]['b']" in kinked


def test_vjp_that_ignores_an_input_is_named():
    def f(a, b):
        return {"out": a * jnp.sin(b), "sum": jnp.sum(a * b)}

    def good_vjp(a, b, ct):
        return (
            ct["out"] * jnp.sin(b) + ct["sum"] * b,
            ct["out"] * a * jnp.cos(b) + ct["sum"] * a,
        )

    def ignores_b(a, b, ct):
        return good_vjp(a, b, ct)[0], jnp.zeros_like(b)

    a = jnp.linspace(-1.0, 2.0, 6).reshape(2, 3)
    b = jnp.linspace(0.5, 3.0, 6).reshape(2, 3)
    assert funcbp.check_vjp(f, good_vjp, a, b).ok
    report = funcbp.check_vjp(f, ignores_b, a, b)
    assert failing_leaves(report) == {"[1]"}, str(report)


def test_single_primal_vjp():
    report = funcbp.check_vjp(jnp.tanh, lambda x, ct: ct * (1 - jnp.tanh(x) ** 2), jnp.ones(4))
    assert report.ok and {row.path for row in report.rows} == {""}


@pytest.mark.parametrize("activation", ["tanh", "softplus", "relu"])
def test_hessian_vector_products_of_backprop(activation):
    net = funcbp.MLP((3, 5, 2), activation=activation, cost="softmax_cross_entropy", l2=0.01)
    params, x, y = make_problem(net, jax.random.key(3), batch=4)
    report = funcbp.check_hvp(net, params, x, y)
    assert report.ok, str(report)
    assert any(row.method == "backprop" and row.reference == "autodiff" for row in report.rows)


def test_report_is_a_table_and_json():
    report = funcbp.check_grad(loss, bias_unit_sign_flipped, PARAMS)
    text = str(report)
    assert "FAIL" in text and "[1]['b']" in text and "[3]" in text
    data = json.loads(json.dumps(report.to_dict()))
    assert data["ok"] is False and data["mode"] == "elementwise"
    assert {row["path"] for row in data["rows"] if not row["ok"]} == {"[1]['b']"}


def test_assert_helpers_raise_with_the_report():
    funcbp.testing.assert_gradients_match(NET, PARAMS, X, Y)
    funcbp.testing.assert_grad_matches(loss, correct, PARAMS)
    with pytest.raises(AssertionError, match=r"(?s)FAIL.*\[2\]\['w'\]"):
        funcbp.testing.assert_grad_matches(loss, missing_factor_of_two, PARAMS)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"grad_fn\[1\]\['w'\] has shape \(6, 3\), expected"):
        funcbp.check_grad(loss, lambda p: with_leaf(correct(p), 1, "w", p[2]["w"]), PARAMS)
    with pytest.raises(ValueError, match="only floating-point inputs"):
        funcbp.check_grad(lambda n: n * 1.0, lambda n: n, jnp.arange(3))
    with pytest.raises(ValueError, match="mode must be"):
        funcbp.check_gradients(NET, PARAMS, X, Y, mode="fast")
    integers = jax.tree.map(lambda p: p.astype(jnp.int32), PARAMS)
    message = r"params\[0\]\['b'\] has dtype int32; parameters must be floating"
    with pytest.raises(ValueError, match=message):
        funcbp.check_gradients(NET, integers, X, Y)


# --- options --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("mode", "fast", "mode must be one of 'auto', 'elementwise', 'directional', got 'fast'"),
        ("step", 0.0, "step must be a finite number > 0, got 0.0"),
        ("step", -1e-4, "step must be a finite number > 0, got -0.0001"),
        ("step", float("nan"), "step must be a finite number > 0, got nan"),
        ("step", float("inf"), "step must be a finite number > 0, got inf"),
        ("step", True, "step must be a finite number > 0, got True"),
        ("step", "1e-4", "step must be a finite number > 0, got '1e-4'"),
        ("directions", 0, "directions must be a positive integer, got 0"),
        ("directions", 2.5, "directions must be a positive integer, got 2.5"),
        ("max_elementwise", -1, "max_elementwise must be a positive integer, got -1"),
        ("chunk", True, "chunk must be a positive integer, got True"),
        ("key", 0, r"key must be a jax.random.key\(seed\), got int"),
        ("key", jnp.zeros(3, jnp.uint32), r"key must be a jax.random.key\(seed\), got uint32\[3\]"),
    ],
)
def test_check_options_refuse_a_bad_value_naming_field_and_value(field, value, message):
    with pytest.raises(ValueError, match=rf"^CheckOptions\.{message}"):
        CheckOptions(**{field: value})
    # The checks' keywords are the same fields, validated the same way.
    with pytest.raises(ValueError, match=rf"^CheckOptions\.{message}"):
        funcbp.check_gradients(NET, PARAMS, X, Y, **{field: value})


def test_check_options_accept_both_kinds_of_key():
    assert CheckOptions(key=jax.random.key(1)).key is not None
    report = funcbp.check_grad(loss, correct, PARAMS, mode="directional", key=jax.random.PRNGKey(1))
    assert report.ok, str(report)


@pytest.mark.parametrize(
    "call",
    [
        lambda **kw: funcbp.check_gradients(NET, PARAMS, X, Y, **kw),
        lambda **kw: funcbp.check_grad(loss, correct, PARAMS, **kw),
        lambda **kw: funcbp.check_vjp(jnp.tanh, lambda x, ct: ct, jnp.ones(3), **kw),
        lambda **kw: funcbp.check_hvp(NET, PARAMS, X, Y, **kw),
    ],
)
def test_an_unknown_keyword_is_refused_with_the_valid_ones(call):
    fields = "mode, step, directions, max_elementwise, chunk, key"
    with pytest.raises(TypeError, match=rf"unexpected keyword argument\(s\) 'steps'; .*{fields}"):
        call(steps=1e-3)
    with pytest.raises(TypeError, match="options must be a CheckOptions, got dict"):
        call(options={"mode": "directional"})


def test_options_reach_the_finite_differences():
    def fd_errors(report):
        return [row.error64.max_rel for row in report.rows if row.reference == FD]

    def directional(**kw):
        return funcbp.check_grad(loss, correct, PARAMS, **kw)

    options = CheckOptions(mode="directional", directions=5)
    # 4 evaluations per direction per leaf, and f itself once.
    assert directional(options=options).evaluations == 4 * 5 * len(LEAVES) + 1
    # A keyword overrides the same field of the options object.
    assert directional(options=options, directions=2).evaluations == 4 * 2 * len(LEAVES) + 1
    assert directional(options=options, mode="elementwise").mode == "elementwise"
    assert directional(options=options, step=1e-3).step == 1e-3
    # The key draws the directions: the same key repeats a check, another changes it.
    same = fd_errors(directional(options=options, key=jax.random.key(7)))
    assert fd_errors(directional(options=options, key=jax.random.key(7))) == same
    assert fd_errors(directional(options=options, key=jax.random.key(8))) != same
    # The chunk size is how many perturbations share a vmap, not what is computed.
    chunked = fd_errors(directional(mode="elementwise", chunk=7))
    assert chunked == pytest.approx(fd_errors(directional()), abs=1e-10)


def test_hvp_options_reach_the_vectors():
    def fd_errors(report):
        return [row.error64.max_rel for row in report.rows if row.reference == FD]

    default = funcbp.check_hvp(NET, PARAMS, X, Y)
    assert fd_errors(funcbp.check_hvp(NET, PARAMS, X, Y, key=jax.random.key(0))) == fd_errors(
        default
    )
    assert fd_errors(funcbp.check_hvp(NET, PARAMS, X, Y, key=jax.random.key(5))) != fd_errors(
        default
    )
    report = funcbp.check_hvp(NET, PARAMS, X, Y, options=CheckOptions(step=1e-3), vectors=2)
    assert (
        report.step == 1e-3
        and report.evaluations == 2 * 4
        and "over 2 random vectors" in str(report)
    )


def test_hvp_check_catches_a_derivative_that_is_right_but_not_differentiable():
    # tanh' as 1 - a**2 with a held constant: every gradient is right (so
    # check_gradients passes) but forward mode through backprop misses a's change,
    # so backprop's Hessian-vector products are wrong. Autodiff's are not.
    frozen = funcbp.Activation(
        "frozen_tanh", jnp.tanh, lambda z, a: 1 - jax.lax.stop_gradient(a) ** 2, max_grad=1.0
    )
    net = funcbp.MLP((3, 5, 2), activation=frozen, output_activation="tanh", cost="mse")
    params, x, y = make_problem(net, jax.random.key(4), batch=6)
    assert funcbp.check_gradients(net, params, x, y).ok
    report = funcbp.check_hvp(net, params, x, y)
    assert not report.ok
    failing = {(row.method, row.reference) for row in report.failures}
    assert failing == {("backprop", "autodiff"), ("backprop", FD)}, str(report)
    # Only the hidden layer's tanh' is frozen: the output layer's products stay right.
    assert {row.path for row in report.failures} == {"[0]['w']", "[0]['b']"}
    assert funcbp.check_hvp(dataclasses.replace(net, activation="tanh"), params, x, y).ok


def test_gradient_check_programs_are_freed_by_clear_caches():
    funcbp.check_gradients(NET, PARAMS, X, Y)
    assert _checks._both_engines.cache_info().currsize > 0
    assert _checks._both_engines.cache_info().maxsize is not None  # bounded
    funcbp.clear_caches()
    assert _checks._both_engines.cache_info().currsize == 0
    assert _checks._loss_of_leaves.cache_info().currsize == 0
    assert funcbp.check_gradients(NET, PARAMS, X, Y).ok  # and the checks still work
