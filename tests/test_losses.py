"""Each cost's hand-derived output gradient equals jax.grad of its value; logits may be huge."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcbp import losses


def _targets(name, key, shape, kind):
    if name == "mse":
        return jax.random.normal(key, shape, jnp.float64)
    if name == "sigmoid_binary_cross_entropy":
        return jax.random.uniform(key, shape, jnp.float64)
    if kind == "labels":
        return jax.random.randint(key, shape[:1], 0, shape[1])
    if kind == "onehot":
        return jax.nn.one_hot(jax.random.randint(key, shape[:1], 0, shape[1]), shape[1])
    return jax.nn.softmax(jax.random.normal(key, shape, jnp.float64))  # probability rows


CASES = [
    ("mse", "values"),
    ("sigmoid_binary_cross_entropy", "values"),
    ("softmax_cross_entropy", "labels"),
    ("softmax_cross_entropy", "onehot"),
    ("softmax_cross_entropy", "probabilities"),
]


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_grad_matches_autodiff_in_float64(name, kind, getkey):
    cost = losses.get(name)
    out = 3.0 * jax.random.normal(getkey(), (7, 5), jnp.float64)
    y = _targets(name, getkey(), out.shape, kind)
    # Same closed form both ways; 1e-14 absolute is a few ulps of O(1/size) entries.
    np.testing.assert_allclose(cost.output_delta(out, y), jax.grad(cost.loss)(out, y), atol=1e-14)


@pytest.mark.parametrize(("name", "kind"), CASES[1:])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_logit_losses_are_stable_for_huge_logits(name, kind, dtype, getkey):
    cost = losses.get(name)
    out = (1e4 * jnp.sign(jax.random.normal(getkey(), (6, 4)))).astype(dtype)
    y = _targets(name, getkey(), out.shape, kind).astype(dtype if kind != "labels" else jnp.int32)
    value = cost.loss(out, y)
    grad = cost.output_delta(out, y)
    assert jnp.isfinite(value) and jnp.all(jnp.isfinite(grad))
    # The fused gradient is softmax/sigmoid minus the target: entries in [-1, 1] / n.
    assert float(jnp.max(jnp.abs(grad))) <= 1.0
    # Saturated softmax/sigmoid are exactly 0 or 1, so the engines differ by the
    # rounding of "p * sum(y) - y" against autodiff's order of the same terms.
    eps = float(jnp.finfo(dtype).eps)
    want = jax.grad(cost.loss)(out, y)
    np.testing.assert_allclose(grad, want, rtol=4 * eps, atol=eps / out.size)


def test_softmax_label_and_onehot_forms_agree(getkey):
    cost = losses.get("softmax_cross_entropy")
    out = jax.random.normal(getkey(), (9, 4), jnp.float64)
    labels = jax.random.randint(getkey(), (9,), 0, 4)
    onehot = jax.nn.one_hot(labels, 4, dtype=jnp.float64)
    np.testing.assert_allclose(cost.loss(out, labels), cost.loss(out, onehot), rtol=1e-15)
    np.testing.assert_allclose(
        cost.output_delta(out, labels), cost.output_delta(out, onehot), atol=1e-16
    )


def test_costs_average_like_torch_reduction_mean():
    out = jnp.array([[0.0, 2.0], [1.0, -1.0]], jnp.float64)
    y = jnp.array([[1.0, 0.0], [0.0, 1.0]], jnp.float64)
    np.testing.assert_allclose(losses.get("mse").loss(out, y), (1 + 4 + 1 + 4) / 4)
    bce = np.mean(np.log1p(np.exp(np.asarray(out))) - np.asarray(y) * np.asarray(out))
    np.testing.assert_allclose(losses.get("sigmoid_binary_cross_entropy").loss(out, y), bce)
    ce = -np.mean([out[0, 0] - np.log(1 + np.exp(2.0)), out[1, 1] - np.log(np.exp(1) + np.exp(-1))])
    np.testing.assert_allclose(losses.get("softmax_cross_entropy").loss(out, y), ce)


def test_weight_penalty_skips_biases():
    params = [
        {"w": jnp.full((2, 3), 2.0), "b": jnp.ones(3)},
        {"w": jnp.ones((3, 1)), "b": jnp.ones(1)},
    ]
    assert float(losses.weight_penalty(params, 0.5)) == 0.25 * (6 * 4 + 3)


@pytest.mark.parametrize(
    ("name", "y", "message"),
    [
        ("mse", jnp.zeros(4), r"mse: targets y have shape \(4,\), expected \(4, 1\).*y\[:, None"),
        ("softmax_cross_entropy", jnp.array([0, 1, 3, 2]), r"label 3 is out of range for 3 cl"),
        ("softmax_cross_entropy", jnp.array([0, -1, 1, 2]), r"label -1 is out of range"),
        ("softmax_cross_entropy", jnp.zeros(3, jnp.int32), r"3 labels for a batch of 4"),
        ("softmax_cross_entropy", jnp.zeros(4), r"1-D targets must be integer class labels"),
        ("sigmoid_binary_cross_entropy", jnp.full((4, 1), 2.0), r"must lie in \[0, 1\]"),
        (
            "softmax_cross_entropy",
            jnp.array([[1.0, 0, 0], [5, -3, 0], [0, 1, 0], [0, 0, 1]]),
            r"target row 1 has a negative entry \(-3\); rows \[batch, n_out\] must be "
            r"probabilities, >= 0 and summing to 1 \(within 3.6e-15\)",
        ),
        (
            "softmax_cross_entropy",
            jnp.array([[1.0, 0, 0], [0, 1, 0], [0.5, 0.25, 0], [0, 0, 1]]),
            r"target row 2 sums to 0.75; rows",
        ),
        (
            "softmax_cross_entropy",
            jnp.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]]),
            r"target row 3 sums to 2; .*\(within 0\)",  # integer rows: one-hot exactly
        ),
    ],
)
def test_targets_that_do_not_fit_are_named(name, y, message):
    n_out = 1 if name != "softmax_cross_entropy" else 3
    with pytest.raises(ValueError, match=message):
        losses.check_targets(losses.get(name), y, (4, n_out))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_probability_rows_within_rounding_are_accepted(dtype, getkey):
    check = losses.get("softmax_cross_entropy").check_targets
    for n_out in (2, 10, 1000):  # softmax rows: off 1 by a few epsilons of their dtype
        check(jax.nn.softmax(5 * jax.random.normal(getkey(), (64, n_out), dtype)), (64, n_out))
    rows = np.array([[0.1, 0.2, 0.7], [0.3, 0.3, 0.4]], np.float32)  # float64 sums: not 1
    assert np.abs(rows.astype(np.float64).sum(axis=1) - 1).max() > 0
    check(rows, (2, 3))  # float32 rows: within float32 rounding
    check(jax.nn.one_hot(jnp.array([0, 2]), 3, dtype=jnp.int32), (2, 3))
    jax.jit(lambda y: check(y, (2, 3)))(jnp.array([[5.0, -3, 0], [1, 0, 0]]))  # traced: unchecked


def test_softmax_needs_two_outputs():
    with pytest.raises(ValueError, match="at least 2 outputs"):
        losses.get("softmax_cross_entropy").check_targets(jnp.zeros(4, jnp.int32), (4, 1))


def test_unknown_cost_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown cost 'xent'.*softmax_cross_entropy"):
        losses.get("xent")
