"""Predictions from a run directory: ``funcbp.load_run``, ``funcbp predict`` and ``funcbp
evaluate``, standardised as the run's training split was."""

import json
import re

import numpy as np
import pytest

import funcbp
from funcbp import data
from funcbp.cli import config, run
from funcbp.cli import main as cli
from funcbp.data import Standardizer

DIGITS = """[data]
source = "digits"
test = 0.2
[model]
hidden = [32]
cost = "softmax_cross_entropy"
[train]
epochs = 3
batch_size = 64
"""


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A digits run directory, and the raw (unstandardised) test split saved as .npz."""
    root = tmp_path_factory.mktemp("predict")
    (root / "digits.toml").write_text(DIGITS)
    out = root / "run"
    assert cli.main(["train", str(root / "digits.toml"), "--out", str(out)]) == 0
    test = data.split(data.load("digits"), validation=0.0, test=0.2, seed=0).test
    np.savez(root / "test.npz", x=test.x, y=test.y)
    return out, root / "test.npz", test


def test_predict_on_the_test_split_reproduces_the_runs_test_accuracy(digits_run, capsys):
    out, test_file, test = digits_run
    capsys.readouterr()
    summary = json.loads((out / "summary.json").read_text())
    predictions = out.parent / "predictions.csv"
    assert cli.main(["predict", str(out), str(test_file), "--out", str(predictions)]) == 0
    table = np.loadtxt(predictions, delimiter=",", skiprows=1)
    header = predictions.read_text().splitlines()[0].split(",")
    assert header == ["class", *(f"p_{i}" for i in range(10))]
    right = int((table[:, 0] == test.y).sum())
    # The run's accuracy is a float32 mean of the same comparisons: the same count.
    assert right == round(summary["test_accuracy"] * len(test))
    np.testing.assert_allclose(table[:, 1:].sum(axis=1), 1.0, rtol=1e-6)
    assert cli.main(["evaluate", str(out), str(test_file)]) == 0
    shown = capsys.readouterr().out
    assert f"359 rows  loss {summary['test_loss']:.4f}  accuracy" in shown
    assert f"accuracy {summary['test_accuracy']:.4f}" in shown


def test_load_run_standardises_as_training_did(digits_run):
    out, _, test = digits_run
    predictor = funcbp.load_run(out)
    summary = json.loads((out / "summary.json").read_text())
    metrics = predictor.evaluate(test.x, test.y)
    assert metrics["accuracy"] == pytest.approx(summary["test_accuracy"], abs=0)
    np.testing.assert_allclose(metrics["loss"], summary["test_loss"], rtol=1e-6)
    # The run's own standardised test split, through the network directly.
    prepared = run.prepare(config.load(out / "config.toml"))
    expected = prepared.net.apply(predictor.params, prepared.splits.test.x)
    np.testing.assert_allclose(predictor.outputs(test.x), expected, rtol=1e-6, atol=1e-6)
    proba = predictor.predict_proba(test.x)
    np.testing.assert_array_equal(proba.argmax(axis=1), predictor.predict(test.x))
    # The statistics are JSON (no pickle), exactly the training split's.
    stats = Standardizer.from_json((out / "standardizer.json").read_text())
    np.testing.assert_array_equal(stats.mean, prepared.standardizer.mean)
    np.testing.assert_array_equal(stats.std, prepared.standardizer.std)


def test_a_regression_run_predicts_values_and_has_no_probabilities(tmp_path, capsys):
    path = tmp_path / "reg.toml"
    path.write_text('[data]\nsource = "regression"\n[model]\nhidden = [8]\n[train]\nepochs = 2\n'
                    "batch_size = 32\n")  # fmt: skip
    out = tmp_path / "run"
    assert cli.main(["train", str(path), "--out", str(out)]) == 0
    predictor = funcbp.load_run(out)
    x = np.linspace(-3, 3, 5)[:, None]
    assert predictor.classes is None and predictor.predict(x).shape == (5, 1)
    with pytest.raises(ValueError, match=r"cost 'mse' is a regression's; it has no class"):
        predictor.predict_proba(x)
    np.savez(tmp_path / "x.npz", x=x)
    capsys.readouterr()
    assert cli.main(["predict", str(out), str(tmp_path / "x.npz")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "y_0" and len(lines) == 6
    np.testing.assert_allclose([float(v) for v in lines[1:]], predictor.predict(x)[:, 0],
                               rtol=1e-7)  # fmt: skip


@pytest.mark.parametrize(
    ("what", "message"),
    [
        ("wide", r"inputs have shape \[3, 10\]; the network takes \[n, 64\]"),
        ("labels", r"dataset '.*labels.npz': label 10 at row 0 is out of range for 10 classes"),
        ("no run", r"is not a run directory with checkpoints"),
        ("unlabelled", r"has no labels \('y'\); evaluate needs them"),
        ("out", r"--out .*pred.txt: expected a .csv or .npz file name"),
        (
            "targets",
            r"targets.npz': softmax_cross_entropy: targets y have shape \(2, 3\), "
            r"expected \(2, 10\)",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(digits_run, tmp_path, capsys, what, message):
    out, test_file, _ = digits_run
    command, run_dir, data_file, extra = "predict", out, test_file, []
    if what == "wide":
        data_file = tmp_path / "wide.npz"
        np.savez(data_file, x=np.zeros((3, 10)))
    elif what == "labels":
        command, data_file = "evaluate", tmp_path / "labels.npz"
        np.savez(data_file, x=np.zeros((2, 64)), y=np.array([10, 0]))
    elif what == "no run":
        run_dir = tmp_path
    elif what == "unlabelled":
        command, data_file = "evaluate", tmp_path / "x.npz"
        np.savez(data_file, x=np.zeros((2, 64)))
    elif what == "targets":  # one-hot rows of the wrong width
        command, data_file = "evaluate", tmp_path / "targets.npz"
        np.savez(data_file, x=np.zeros((2, 64)), y=np.zeros((2, 3)))
    else:
        extra = ["--out", str(tmp_path / "pred.txt")]
    capsys.readouterr()
    assert cli.main([command, str(run_dir), str(data_file), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("funcbp: error: "), err
    assert re.search(message, err), err


def test_a_bfloat16_run_predicts_to_csv(tmp_path, capsys):
    path = tmp_path / "iris.toml"
    path.write_text('[data]\nsource = "iris"\n[model]\nhidden = [8]\ncost = '
                    '"softmax_cross_entropy"\n[train]\nepochs = 1\nbatch_size = 16\n'
                    'dtype = "bfloat16"\n')  # fmt: skip
    out = tmp_path / "run"
    assert cli.main(["train", str(path), "--out", str(out)]) == 0
    x = data.load("iris").x[:4]
    np.savez(tmp_path / "x.npz", x=x)
    capsys.readouterr()
    assert cli.main(["predict", str(out), str(tmp_path / "x.npz")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "class,p_0,p_1,p_2" and len(lines) == 5
    assert funcbp.load_run(out).predict_proba(x).dtype == np.float32
