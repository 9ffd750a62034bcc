"""funcbp's losses against torch.nn.functional's, values and gradients, in float64.

Both sides compute the same float64 formulas (up to summation order and a
stabilised form: torch's BCE-with-logits and cross-entropy use log-sum-exp as
funcbp's do), so values and gradients agree to a few eps = 2.2e-16; 1e-12
(relative to the largest entry) bounds that and fails on any wrong factor, sign
or averaging convention. Skipped where torch is not installed.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcbp
from funcbp import losses

torch = pytest.importorskip("torch")
F = torch.nn.functional

RTOL = 1e-12
BATCH, N_OUT = 7, 5


def _torch_functions():
    return {
        "mse": F.mse_loss,
        "mae": F.l1_loss,
        "huber": lambda out, y: F.huber_loss(out, y, delta=1.0),
        "poisson": lambda out, y: F.poisson_nll_loss(out, y, log_input=True, full=False),
        "softmax_cross_entropy": F.cross_entropy,
        "sigmoid_binary_cross_entropy": F.binary_cross_entropy_with_logits,
    }


def _problem(name, seed=0):
    k_out, k_y = jax.random.split(jax.random.key(seed))
    out = 2.0 * jax.random.normal(k_out, (BATCH, N_OUT), jnp.float64)
    cost = losses.get(name)
    if cost.targets is not None:
        y = cost.targets(k_y, (BATCH, N_OUT), jnp.float64)
    else:
        y = jax.random.normal(k_y, (BATCH, N_OUT), jnp.float64)
    if name == "huber":
        # huber's switch from d^2/2 to |d| - 1/2, |out - y| == 1, in rows 1 and 2 (rows of
        # out == y, mae's kink, are test_mae_gradient_at_the_kink_is_torchs')
        out = out.at[0].set(y[0]).at[1].set(y[1] + 1.0).at[2].set(y[2] - 1.0)
    return out, y


def _torch_value_and_grad(fn, out, y, **kwargs):
    out_t = torch.tensor(np.asarray(out), dtype=torch.float64, requires_grad=True)
    y_t = torch.tensor(np.asarray(y))
    if y_t.is_floating_point():
        y_t = y_t.to(torch.float64)
    value = fn(out_t, y_t, **kwargs)
    value.backward()
    return value.item(), out_t.grad.numpy()


def _relative(got, want) -> float:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-300))


CASES = [(name, seed) for name in _torch_functions() for seed in range(3)]


@pytest.mark.parametrize(("name", "seed"), CASES)
def test_value_and_gradient_equal_torch(name, seed):
    out, y = _problem(name, seed)
    cost = losses.get(name)
    value, grad = jax.value_and_grad(cost.loss)(out, y)
    want_value, want_grad = _torch_value_and_grad(_torch_functions()[name], out, y)
    assert _relative(value, want_value) <= RTOL, (name, float(value), want_value)
    # Both funcbp gradients: jax.grad of the loss and the hand-derived output delta.
    assert _relative(grad, want_grad) <= RTOL, name
    assert _relative(cost.output_delta(out, y), want_grad) <= RTOL, name


def test_mae_gradient_at_the_kink_is_torchs():
    # The one place funcbp and torch differ: at out == y torch's l1_loss backward gives
    # sign(0) = 0, funcbp follows jax.grad of jnp.abs (+1), as DESIGN.md's kink convention
    # says. Off the kink they agree; pin down both sides at it, so that a change shows.
    y = jnp.zeros((2, 3), jnp.float64)
    out = jnp.array([[0.0, 1.0, -1.0], [0.0, 2.0, -0.5]], jnp.float64)
    _, want = _torch_value_and_grad(F.l1_loss, out, y)
    got = losses.get("mae").output_delta(out, y)
    off_kink = np.asarray(out) != 0
    np.testing.assert_allclose(np.asarray(got)[off_kink], want[off_kink], rtol=RTOL)
    np.testing.assert_array_equal(np.asarray(got)[~off_kink], 1.0 / out.size)
    np.testing.assert_array_equal(want[~off_kink], 0.0)  # torch: sign(0)


def test_probability_rows_equal_torch_cross_entropy():
    k_out, k_y = jax.random.split(jax.random.key(3))
    out = jax.random.normal(k_out, (BATCH, N_OUT), jnp.float64)
    y = jax.nn.softmax(jax.random.normal(k_y, (BATCH, N_OUT), jnp.float64))
    cost = losses.get("softmax_cross_entropy")
    value, grad = jax.value_and_grad(cost.loss)(out, y)
    want_value, want_grad = _torch_value_and_grad(F.cross_entropy, out, y)
    assert _relative(value, want_value) <= RTOL
    assert _relative(grad, want_grad) <= RTOL
    assert _relative(cost.output_delta(out, y), want_grad) <= RTOL


@pytest.mark.parametrize("seed", range(3))
def test_class_weights_equal_torch_cross_entropy_weight(seed):
    # torch's weight=: sum_i c[y_i] l_i / sum_i c[y_i], funcbp's sample_weight w_i = c[y_i].
    k_out, k_y, k_c = jax.random.split(jax.random.key(seed), 3)
    out = jax.random.normal(k_out, (BATCH, N_OUT), jnp.float64)
    y = jax.random.randint(k_y, (BATCH,), 0, N_OUT)
    class_weight = jax.random.uniform(k_c, (N_OUT,), jnp.float64, 0.1, 3.0)
    cost = losses.get("softmax_cross_entropy")
    w = class_weight[y]

    def weighted(out):
        return losses.weighted_loss(cost, out, y, w)

    value, grad = jax.value_and_grad(weighted)(out)
    weight_t = torch.tensor(np.asarray(class_weight), dtype=torch.float64)
    want_value, want_grad = _torch_value_and_grad(F.cross_entropy, out, y, weight=weight_t)
    assert _relative(value, want_value) <= RTOL
    assert _relative(grad, want_grad) <= RTOL
    assert _relative(losses.weighted_delta(cost, out, y, w), want_grad) <= RTOL


def test_class_weights_through_a_network_equal_torch():
    # The same through MLP.backprop / autodiff: a one-layer identity network, whose
    # output gradient is the weighted cross-entropy's, by the chain rule dW = x^T delta.
    net = funcbp.MLP((4, N_OUT), cost="softmax_cross_entropy")
    k_p, k_x, k_y, k_c = jax.random.split(jax.random.key(5), 4)
    params = net.init(k_p, jnp.float64)
    x = jax.random.normal(k_x, (BATCH, 4), jnp.float64)
    y = jax.random.randint(k_y, (BATCH,), 0, N_OUT)
    class_weight = jax.random.uniform(k_c, (N_OUT,), jnp.float64, 0.1, 3.0)
    out = net.apply(params, x)
    weight_t = torch.tensor(np.asarray(class_weight), dtype=torch.float64)
    want_value, want_delta = _torch_value_and_grad(F.cross_entropy, out, y, weight=weight_t)
    for engine in (net.backprop, net.autodiff):
        value, grads = engine(params, x, y, sample_weight=class_weight[y])
        assert _relative(value, want_value) <= RTOL
        assert _relative(grads[0]["w"], np.asarray(x).T @ want_delta) <= RTOL
        assert _relative(grads[0]["b"], want_delta.sum(0)) <= RTOL
