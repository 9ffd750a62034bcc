"""ONNX export checked against onnxruntime (the ``onnx`` extra; skipped without it)."""

import numpy as np
import pytest

import funcbp
from funcbp import activations
from funcbp.cli import main as cli
from funcbp.data import Standardizer

jax2onnx = pytest.importorskip("jax2onnx")
ort = pytest.importorskip("onnxruntime")

import jax  # noqa: E402  (after the skips: the module's imports are the extra's)
import jax.numpy as jnp  # noqa: E402

X = np.random.default_rng(0).normal(loc=3.0, scale=2.0, size=(33, 5)).astype(np.float32)
STATS = Standardizer(np.full(5, 3.0, np.float32), np.full(5, 2.0, np.float32))


def _run_onnx(path, x):
    session = ort.InferenceSession(str(path))
    return session.run(None, {session.get_inputs()[0].name: x})[0]


# Every built-in hidden activation, one per layer; then every output kind.
CASES = [
    ("identity", "softmax_cross_entropy", "probabilities"),
    ("identity", "softmax_cross_entropy", "logits"),
    ("identity", "sigmoid_binary_cross_entropy", "probabilities"),
    ("sigmoid", "mse", "logits"),
    ("identity", "mae", "logits"),
]


@pytest.mark.parametrize(("output_activation", "cost", "output"), CASES)
def test_onnxruntime_equals_funcbp_on_every_activation(tmp_path, output_activation, cost, output):
    hidden = activations.NAMES
    net = funcbp.MLP((5, *[6] * len(hidden), 3), activation=hidden,
                     output_activation=output_activation, cost=cost)  # fmt: skip
    params = net.init(jax.random.key(0))
    path = funcbp.export_onnx(net, params, tmp_path / "m.onnx", standardizer=STATS, output=output)
    logits = net.apply(params, (X - STATS.mean) / STATS.std)
    expected = {"logits": logits, "probabilities": jax.nn.softmax(logits, axis=-1)
                if cost == "softmax_cross_entropy" else jax.nn.sigmoid(logits)}[output]  # fmt: skip
    for rows in (33, 1):  # the batch size is the graph's input, not fixed in it
        got = _run_onnx(path, X[:rows])
        assert got.dtype == np.float32 and got.shape == (rows, 3)
        np.testing.assert_allclose(got, expected[:rows], rtol=1e-5, atol=1e-5)


def test_a_predictor_exports_what_it_predicts(tmp_path):
    net = funcbp.MLP((5, 8, 4), activation="gelu", cost="softmax_cross_entropy")
    predictor = funcbp.Predictor(net, net.init(jax.random.key(1)), STATS)
    path = funcbp.export_onnx(
        predictor.net,
        predictor.params,
        tmp_path / "m.onnx",
        standardizer=predictor.standardizer,
        output="probabilities",
    )
    np.testing.assert_allclose(_run_onnx(path, X), predictor.predict_proba(X), atol=1e-6)


LOOPED = funcbp.Activation(  # jit-able, but jax2onnx cannot convert its loop
    "looped",
    lambda z: jax.lax.fori_loop(0, 2, lambda i, a: 0.5 * a + jnp.tanh(z), z),
    lambda z, a: 0.25 + 0.75 * (1 - jnp.tanh(z) ** 2),
)


def test_what_cannot_be_exported_is_one_clear_error_and_no_file(tmp_path):
    net = funcbp.MLP((5, 4, 2), activation=LOOPED, cost="softmax_cross_entropy")
    path = tmp_path / "m.onnx"
    with pytest.raises(ValueError, match=r"activation 'looped' cannot be exported to ONNX"):
        funcbp.export_onnx(net, net.init(jax.random.key(0)), path)
    assert not path.exists()
    regression = funcbp.MLP((5, 4, 1))
    with pytest.raises(ValueError, match=r"the cost 'mse' is a regression's; export its logits"):
        funcbp.export_onnx(regression, regression.init(jax.random.key(0)), path,
                           output="probabilities")  # fmt: skip
    with pytest.raises(ValueError, match=r"output must be one of logits, probabilities"):
        funcbp.export_onnx(regression, regression.init(jax.random.key(0)), path, output="p")


def test_the_export_command_writes_a_graph_with_the_runs_standardisation(tmp_path, capsys):
    path = tmp_path / "iris.toml"
    path.write_text('[data]\nsource = "iris"\n[model]\nhidden = [8]\ncost = '
                    '"softmax_cross_entropy"\n[train]\nepochs = 2\nbatch_size = 16\n')  # fmt: skip
    out = tmp_path / "run"
    assert cli.main(["train", str(path), "--out", str(out)]) == 0
    model = tmp_path / "iris.onnx"
    assert cli.main(["export", str(out), "--onnx", str(model), "--probabilities"]) == 0
    assert f"{model}: probabilities of [4, 8, 3] for inputs [B, 4]" in capsys.readouterr().out
    raw = funcbp.data.load("iris").x[:20]
    np.testing.assert_allclose(_run_onnx(model, raw), funcbp.load_run(out).predict_proba(raw),
                               atol=1e-6)  # fmt: skip
    assert cli.main(["export", str(tmp_path), "--onnx", str(model)]) == 2
    assert "is not a run directory with checkpoints" in capsys.readouterr().err
    assert cli.main(["export", str(out), "--onnx", str(tmp_path / "no" / "m.onnx")]) == 2
    assert capsys.readouterr().err.startswith(f"funcbp: error: --onnx {tmp_path / 'no'}")


def test_a_mixed_precision_network_exports_in_float32(tmp_path):
    net = funcbp.MLP((5, 8, 3), activation="relu", cost="softmax_cross_entropy",
                     compute_dtype="bfloat16")  # fmt: skip
    params = net.init(jax.random.key(0))
    path = funcbp.export_onnx(net, params, tmp_path / "m.onnx")
    plain = funcbp.MLP((5, 8, 3), activation="relu", cost="softmax_cross_entropy")
    np.testing.assert_allclose(_run_onnx(path, X), plain.apply(params, X), rtol=1e-5, atol=1e-5)
