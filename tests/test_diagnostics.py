"""Per-layer diagnostics: they match autodiff, and each pathology shows and warns."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcbp
from funcbp import data, diagnostics, losses, optim
from funcbp.cli import main as cli
from funcbp.diagnostics import DiagnosticWarning


@pytest.fixture(scope="module")
def digits():
    parts, _ = data.standardize(data.split(data.load("digits"), validation=0.0, test=0.2, seed=0))
    return parts


def _reference_stats(net, params, new_params, x, y):
    """The statistics from jax.grad: deltas as gradients w.r.t. zeros added to each z."""
    cost = losses.get(net.cost)

    def loss(params, shifts):
        a, pre = x, []
        for p, act, shift in zip(params, net.layer_activations, shifts, strict=True):
            z = a @ p["w"] + p["b"][None, :] + shift
            a = act.fn(z)
            pre.append(z)
        return cost.loss(a, y) + losses.weight_penalty(params, net.l2), pre

    shifts = [jnp.zeros((x.shape[0], n)) for n in net.sizes[1:]]
    (grads, deltas), pre = jax.grad(loss, argnums=(0, 1), has_aux=True)(params, shifts)
    norm = jnp.linalg.norm
    dead = [jnp.mean(jnp.all(z <= 0, axis=0)) if n == "relu" else jnp.nan
            for z, n in zip(pre, net.layer_names, strict=True)]  # fmt: skip
    saturated = [jnp.mean(1 - jnp.tanh(z) ** 2 < 0.05) if n == "tanh" else jnp.nan
                 for z, n in zip(pre, net.layer_names, strict=True)]  # fmt: skip
    return {
        "grad_norm": [norm(g["w"]) for g in grads],
        "grad_b_norm": [norm(g["b"]) for g in grads],
        "delta_norm": [norm(d) for d in deltas],
        "weight_norm": [norm(p["w"]) for p in params],
        "update_ratio": [norm(n["w"] - p["w"]) / norm(p["w"])
                         for n, p in zip(new_params, params, strict=True)],
        "dead_fraction": dead,
        "saturated_fraction": saturated,
    }  # fmt: skip


@pytest.mark.parametrize("engine", funcbp.train.ENGINES)
def test_statistics_in_the_step_agree_with_autodiff_outside_it(engine):
    # float64: the two sides sum the same terms in different orders, so agreement to
    # 1e-10 (relative) leaves room only for rounding, not for a wrong formula.
    net = funcbp.MLP((5, 7, 6, 3), activation=("relu", "tanh"), cost="softmax_cross_entropy",
                     l2=1e-3)  # fmt: skip
    opt = optim.make("adam", 0.05)
    state = funcbp.init_state(net, opt, jax.random.key(0), jnp.float64)
    params = state.params
    params[0]["b"] = params[0]["b"].at[:3].set(-50.0)  # three ReLUs dead for any input
    params[1]["w"] = params[1]["w"] * 8.0  # saturate some tanh units
    state = state._replace(params=params)
    x = jax.random.normal(jax.random.key(1), (16, 5), jnp.float64)
    y = jnp.arange(16) % 3
    step = jax.jit(funcbp.make_train_step(net, opt, engine, diagnostics=True))
    new, (_, stats) = step(state, x, y)
    expected = _reference_stats(net, params, new.params, x, y)
    for name, values in expected.items():
        np.testing.assert_allclose(stats[name], jnp.stack(values), rtol=1e-10, err_msg=name)
    assert float(stats["dead_fraction"][0]) >= 3 / 7
    assert 0 < float(stats["saturated_fraction"][1]) < 1
    assert not bool(stats["grad_nonfinite"])
    # The update is the one the plain step makes, whose aux is empty.
    plain_state, (_, plain_aux) = jax.jit(funcbp.make_train_step(net, opt, engine))(state, x, y)
    assert plain_aux == {}
    np.testing.assert_allclose(new.params[0]["w"], plain_state.params[0]["w"], rtol=1e-12)


@pytest.mark.parametrize(
    ("batch_size", "every", "sampled"), [(2, 3, 2), (2, 7, 1), (2, 10, 1), (None, 2, 1)]
)
def test_an_epoch_samples_steps_0_n_2n_and_trains_as_without(batch_size, every, sampled):
    net = funcbp.MLP((3, 4, 2), activation="tanh", cost="softmax_cross_entropy")
    opt = optim.make("sgd", 0.1)
    state = funcbp.init_state(net, opt, jax.random.key(0), jnp.float64)
    x = jax.random.normal(jax.random.key(1), (15, 3), jnp.float64)  # 7 batches of 2
    y = jnp.arange(15) % 2
    kw = dict(batch_size=batch_size)
    plain_state, (losses, plain_aux) = jax.jit(funcbp.make_epoch(net, opt, **kw))(state, x, y)
    watched = jax.jit(funcbp.make_epoch(net, opt, diagnostics_every=every, **kw))
    new, (watched_losses, aux) = watched(state, x, y)
    assert plain_aux == {}
    np.testing.assert_allclose(watched_losses, losses, rtol=1e-12)
    np.testing.assert_allclose(new.params[0]["w"], plain_state.params[0]["w"], rtol=1e-12)
    assert set(aux) == {*diagnostics.LAYER_STATS, "grad_nonfinite", "sampled"}
    assert aux["grad_norm"].shape == (sampled, 2) and bool(aux["sampled"].all())
    if batch_size is None:  # full batch: epochs with state.step % every == 0
        _, (_, aux) = watched(new, x, y)
        assert not bool(aux["sampled"].any())


def test_diagnostics_leave_training_unchanged_and_fill_the_history(digits):
    net = funcbp.MLP((64, 32, 10), activation="relu", cost="softmax_cross_entropy")
    run = dict(epochs=3, batch_size=128, key=jax.random.key(0), eval={"test": digits.test})
    _, plain = funcbp.fit(net, optim.make("adam", 1e-3), digits.train, **run)
    _, watched = funcbp.fit(net, optim.make("adam", 1e-3), digits.train, diagnostics_every=4, **run)
    np.testing.assert_allclose(watched["train_loss"], plain["train_loss"], rtol=1e-6)
    assert np.array(watched["grad_norm"]).shape == (3, 2)
    assert set(diagnostics.NAMES) <= set(watched)


def test_a_deep_sigmoid_net_with_small_weights_shows_vanishing_gradients(digits):
    net = funcbp.MLP((64, *[32] * 9, 10), activation="sigmoid", cost="softmax_cross_entropy")
    opt = optim.make("sgd", 0.1)
    state = funcbp.init_state(net, opt, jax.random.key(0))
    small = [{"w": 0.3 * p["w"], "b": p["b"]} for p in state.params]
    state = state._replace(params=small, opt_state=opt.init(small))
    with pytest.warns(DiagnosticWarning, match=r"vanishing gradients .* Try ReLU-family"):
        _, history = funcbp.fit(net, opt, digits.train, epochs=1, batch_size=64, state=state,
                                diagnostics_every=5)  # fmt: skip
    first, last = history["grad_norm"][0][0], history["grad_norm"][0][-1]
    assert first / last < 1e-3


def test_a_large_learning_rate_shows_exploding_gradients(digits):
    net = funcbp.MLP((64, 32, 1), activation="relu", cost="mse")
    x = digits.train.x
    with (
        pytest.warns(DiagnosticWarning, match=r"exploding gradients .* clipping"),
        pytest.raises(funcbp.TrainingDiverged),
    ):
        funcbp.fit(net, optim.make("sgd", 0.5), (x, x[:, 20:21]), epochs=5, batch_size=32,
                   diagnostics_every=1)  # fmt: skip


def test_a_strongly_negative_bias_kills_relus(digits):
    net = funcbp.MLP((64, 32, 10), activation="relu", cost="softmax_cross_entropy")
    opt = optim.make("adam", 1e-3)
    state = funcbp.init_state(net, opt, jax.random.key(0))
    params = [dict(p) for p in state.params]
    params[0]["b"] = jnp.full_like(params[0]["b"], -20.0)
    state = state._replace(params=params, opt_state=opt.init(params))
    with pytest.warns(DiagnosticWarning, match=r"dead ReLUs .* 100% of layer 1's units"):
        _, history = funcbp.fit(net, opt, digits.train, epochs=1, batch_size=64, state=state,
                                diagnostics_every=3)  # fmt: skip
    assert history["dead_fraction"][0][0] == 1.0 and history["grad_norm"][0][0] == 0.0


@pytest.mark.parametrize("activation", ["leaky_relu", "elu", "silu", "gelu"])
def test_units_that_pass_gradient_below_zero_are_never_called_dead(digits, activation):
    # A bias of -3 puts (nearly) every z below 0, where these still pass gradient: no
    # dead-unit statistic, and no dead-ReLU warning (pytest would make it an error here).
    net = funcbp.MLP((64, 32, 10), activation=activation, cost="softmax_cross_entropy")
    opt = optim.make("adam", 1e-3)
    state = funcbp.init_state(net, opt, jax.random.key(0))
    params = [dict(p) for p in state.params]
    params[0]["b"] = jnp.full_like(params[0]["b"], -3.0)
    state = state._replace(params=params, opt_state=opt.init(params))
    _, history = funcbp.fit(net, opt, digits.train, epochs=1, batch_size=64, state=state,
                            diagnostics_every=3)  # fmt: skip
    assert np.isnan(history["dead_fraction"][0][0])  # not measured for this activation


def test_a_healthy_digits_run_raises_no_warning(digits):
    # pytest turns warnings into errors here (pyproject filterwarnings = error).
    net = funcbp.MLP((64, 128, 128, 10), activation="relu", cost="softmax_cross_entropy")
    _, history = funcbp.fit(net, optim.make("adam", 1e-3), digits.train, epochs=10, batch_size=64,
                            key=jax.random.key(0), diagnostics_every=10)  # fmt: skip
    assert diagnostics.findings(history, net) == []
    ratios = np.array(history["update_ratio"])
    assert ratios.min() > 1e-5 and ratios.max() < 1e-1


def test_diagnose_command_prints_a_table_and_exits_by_its_findings(capsys):
    digits_toml = "configs/digits.toml"
    root = __import__("pathlib").Path(__file__).resolve().parents[1]
    assert cli.main(["diagnose", str(root / digits_toml), "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "update/|W|" in out and out.count("relu") == 2 and "no warnings" in out
    deep = ["--set", "model.hidden=[16,16,16,16,16,16,16,16]", "--set", "model.activation=sigmoid",
            "--set", "optimizer.name=sgd", "--set", "optimizer.learning_rate=0.1"]  # fmt: skip
    assert cli.main(["diagnose", str(root / digits_toml), "--epochs", "1", *deep]) == 1
    assert "warning: vanishing gradients" in capsys.readouterr().out


def test_findings_read_histories_from_metrics_files_with_nulls():
    # metrics.jsonl stores NaN and inf as null; a resumed run's history holds None.
    net = funcbp.MLP((3, 4, 2), activation="relu", cost="softmax_cross_entropy")
    row = {name: [None, 1.0] for name in diagnostics.LAYER_STATS}
    history = {"epoch": [1], **{k: [v] for k, v in row.items()},
               "grad_nonfinite": [True], "sampled_steps": [2]}  # fmt: skip
    assert any("exploding gradients" in f for f in diagnostics.findings(history, net))


def test_diagnose_refuses_a_zero_interval(capsys):
    root = __import__("pathlib").Path(__file__).resolve().parents[1]
    with pytest.raises(SystemExit) as exit_:
        cli.main(["diagnose", str(root / "configs/iris.toml"), "--every", "0"])
    assert exit_.value.code == 2
    assert "argument --every: expected a positive integer, got '0'" in capsys.readouterr().err
