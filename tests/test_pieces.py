"""check_activation and check_cost: every built-in passes, and each kind of mistake is caught."""

import json

import jax
import jax.numpy as jnp
import pytest

import funcbp
from funcbp import activations, losses
from funcbp.activations import Activation
from funcbp.losses import Cost


def _mish(z):
    return z * jnp.tanh(jax.nn.softplus(z))


def _mish_grad(z, a):
    # d/dz [z tanh(sp(z))] = tanh(sp) + z sp'(z) tanh'(sp) = tanh(sp) + z s(z) (1 - tanh(sp)^2)
    t = jnp.tanh(jax.nn.softplus(z))
    return t + z * jax.nn.sigmoid(z) * (1.0 - t) * (1.0 + t)


MISH = Activation("mish", _mish, _mish_grad)


def _failing_rows(report):
    return {(row.check, row.dtype) for row in report.failures}


# --- activations ----------------------------------------------------------------------


@pytest.mark.parametrize("name", activations.NAMES)
def test_every_builtin_activation_passes(name):
    report = funcbp.check_activation(name)
    assert report.ok, str(report)
    assert [row.dtype for row in report.rows] == ["float64", "float32"]
    assert all(row.points > 2000 for row in report.rows)
    assert report.kinks == activations.get(name).kinks


def test_a_user_mish_passes_and_its_report_reads():
    report = funcbp.check_activation(MISH)
    assert report.ok, str(report)
    text = str(report)
    assert "check_activation 'mish': PASS" in text
    for row in report.rows:
        assert row.at in text and f"{row.value:.9g}" in text and f"{row.reference:.9g}" in text
    json.dumps(report.to_dict())


def test_kinks_are_left_out_and_listed():
    report = funcbp.check_activation("relu")
    assert report.ok
    assert report.kinks == (0.0,)
    assert "kinks left out: 0" in str(report)


@pytest.mark.parametrize(
    "grad",
    [
        lambda z, a: 0.5 * a * (1.0 - a),  # a missing factor
        lambda z, a: -a * (1.0 - a),  # a sign error
        lambda z, a: a * (1.0 + a),  # a wrong term
        lambda z, a: jnp.where(z < 20.0, a * (1.0 - a), 0.0),  # wrong in one tail only
    ],
    ids=["factor", "sign", "term", "tail"],
)
def test_sigmoid_mutants_are_caught_in_float64(grad):
    report = funcbp.check_activation(Activation("sigmoid_mutant", jax.nn.sigmoid, grad))
    assert not report.ok
    assert ("f'(z) vs jax.grad", "float64") in _failing_rows(report)
    assert "FAIL" in str(report)


def test_a_mish_missing_a_term_is_caught_and_the_report_names_where():
    def wrong(z, a):
        return jnp.tanh(jax.nn.softplus(z))  # forgot z s(z) (1 - tanh(sp)^2)

    report = funcbp.check_activation(Activation("mish_wrong", _mish, wrong))
    assert not report.ok
    worst = report.failures[0]
    assert worst.at.startswith("z = ") and worst.at in str(report)
    assert abs(worst.value - worst.reference) == pytest.approx(worst.error)
    assert worst.error > worst.tolerance


def test_an_error_only_beyond_twenty_is_caught_because_the_grid_covers_the_tails():
    def softplus_grad(z, a):
        return jnp.where(z < 20.0, jax.nn.sigmoid(z), 0.5)

    report = funcbp.check_activation(Activation("sp_tail", jax.nn.softplus, softplus_grad))
    assert _failing_rows(report) == {("f'(z) vs jax.grad", "float64"),
                                     ("f'(z) vs jax.grad", "float32")}  # fmt: skip
    assert float(report.failures[0].at.removeprefix("z = ")) >= 20.0


def test_a_gradient_that_overflows_in_the_tail_fails_where_jax_grad_is_finite():
    def naive(z, a):
        e = jnp.exp(-z)
        return e / (1.0 + e) ** 2  # inf / inf = NaN once exp(-z) overflows

    report = funcbp.check_activation(Activation("sigmoid_naive", jax.nn.sigmoid, naive))
    assert not report.ok
    worst = report.failures[0]
    assert worst.error == float("inf") and float(worst.at.removeprefix("z = ")) < -80


def test_a_gradient_only_jax_grad_cannot_take_is_left_unjudged():
    def fn(z):
        return jnp.where(z > 0, jnp.sqrt(jnp.abs(z)) * 0 + z, z)  # jax.grad: NaN at 0

    report = funcbp.check_activation(Activation("odd", fn, lambda z, a: jnp.ones_like(z)))
    assert report.ok, str(report)
    assert all(row.unjudged == 1 for row in report.rows)
    assert "unjudged" in str(report)


@pytest.mark.parametrize(
    "fn, grad, message",
    [
        (lambda z: jnp.sum(z, axis=1), lambda z, a: jnp.ones_like(z), r"fn maps z \[3, 5\]"),
        (lambda z: z, lambda z, a: jnp.ones(z.shape[0], z.dtype), r"grad maps .* to \[3\]"),
        (lambda z: z, lambda z, a: jnp.ones(z.shape, jnp.float64), "grad maps .* float64"),
    ],
    ids=["fn-shape", "grad-shape", "grad-dtype"],
)
def test_a_wrong_shape_or_dtype_is_refused_before_comparing(fn, grad, message):
    with pytest.raises(ValueError, match=f"Activation 'bad': {message}"):
        funcbp.check_activation(Activation("bad", fn, grad))


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="relu"):
        funcbp.check_activation("relux")
    with pytest.raises(ValueError, match="mse"):
        funcbp.check_cost("msex")


# --- costs ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", losses.NAMES)
def test_every_builtin_cost_passes(name):
    report = funcbp.check_cost(name)
    assert report.ok, str(report)
    assert [(row.check.split()[0], row.dtype) for row in report.rows] == [
        ("dLoss/dout", "float64"),
        ("row", "float64"),
        ("dLoss/dout", "float32"),
        ("row", "float32"),
    ]
    json.dumps(report.to_dict())


def _mse_value(out, y):
    return jnp.mean((out - y) ** 2)


def test_a_delta_missing_its_one_over_size_is_caught():
    cost = Cost("mse_nosize", _mse_value, lambda out, y: 2.0 * (out - y))
    report = funcbp.check_cost(cost, (6, 3), key=jax.random.key(1))
    assert _failing_rows(report) == {("dLoss/dout vs jax.grad", "float64"),
                                     ("dLoss/dout vs jax.grad", "float32")}  # fmt: skip
    worst = report.failures[0]
    assert worst.value == pytest.approx(18 * worst.reference)
    assert worst.at.startswith("draw ") and worst.at in str(report)


def test_a_cost_that_sums_instead_of_averaging_fails_row_separability():
    cost = Cost("sse", lambda out, y: jnp.sum((out - y) ** 2), lambda out, y: 2.0 * (out - y))
    report = funcbp.check_cost(cost)
    assert _failing_rows(report) == {("row separability", "float64"),
                                     ("row separability", "float32")}  # fmt: skip
    worst = report.failures[0]
    assert worst.value == pytest.approx(8 * worst.reference)  # the batch of 8
    assert "row separability" in str(report) and "FAIL" in str(report)


def test_a_fused_cost_is_checked_against_the_gradient_through_its_activation():
    def bce(p, y):
        return -jnp.mean(y * jnp.log(p) + (1.0 - y) * jnp.log1p(-p))

    def targets(key, shape, dtype):
        return jax.random.uniform(key, shape, dtype)

    def fused(p, y):
        return (p - y) / p.size  # dLoss/dz through the sigmoid, not dLoss/dp

    good = Cost("bce_p", bce, fused, fused_activation="sigmoid", targets=targets)
    report = funcbp.check_cost(good, scale=2.0)
    assert report.ok, str(report)
    assert report.rows[0].check == "dLoss/dz vs jax.grad"
    unfused = Cost("bce_p2", bce, lambda p, y: (p - y) / (p * (1 - p)) / p.size,
                   fused_activation="sigmoid", targets=targets)  # fmt: skip
    assert not funcbp.check_cost(unfused, scale=2.0).ok


def test_a_non_scalar_loss_is_refused():
    cost = Cost(
        "rows", lambda out, y: jnp.mean((out - y) ** 2, axis=1), losses.get("mse").output_delta
    )
    with pytest.raises(ValueError, match=r"Cost 'rows': loss returns shape \[8\].*scalar"):
        funcbp.check_cost(cost)


def test_a_delta_of_the_wrong_shape_is_refused():
    cost = Cost("flat", _mse_value, lambda out, y: jnp.ravel(out - y))
    with pytest.raises(ValueError, match=r"Cost 'flat': output_delta returns \[32\]"):
        funcbp.check_cost(cost)


def test_targets_that_do_not_fit_are_refused():
    cost = Cost("pois", _mse_value, lambda out, y: 2.0 * (out - y) / out.size,
                check_targets=losses.get("poisson").check_targets)  # fmt: skip
    with pytest.raises(ValueError, match="Cost 'pois': the targets drawn do not fit"):
        funcbp.check_cost(cost)


def test_an_error_just_beside_a_kink_is_caught_while_the_kink_is_left_out():
    def late(z, a):
        return (z > 1e-4).astype(z.dtype)  # 0 on (0, 1e-4]: wrong just right of the kink

    report = funcbp.check_activation(Activation("relu_late", jax.nn.relu, late, kinks=(0.0,)))
    assert not report.ok
    assert 0 < float(report.failures[0].at.removeprefix("z = ")) <= 1e-4
    # relu'(0) = 1 instead of jax.nn's 0 disagrees only at the kink, which is left out
    at_kink = Activation("relu_1", jax.nn.relu, lambda z, a: (z >= 0).astype(z.dtype), (0.0,))
    assert funcbp.check_activation(at_kink).ok


def test_extra_points_and_one_dtype():
    report = funcbp.check_activation(MISH, dtypes=("float64",), extra=(123.456,))
    assert [row.dtype for row in report.rows] == ["float64"]
    assert report.rows[0].points == funcbp.check_activation(MISH).rows[0].points + 1


def test_a_bad_shape_or_draws_is_refused():
    with pytest.raises(ValueError, match=r"shape must be \(batch, n_out\)"):
        funcbp.check_cost("mse", (8,))
    with pytest.raises(ValueError, match="draws 0"):
        funcbp.check_cost("mse", draws=0)
