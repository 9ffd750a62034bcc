"""Run files that name user pieces ("module:attribute"), dropout, sample and class weights
(issue #18, the data and command-line side)."""

import json
import re
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

import funcbp
from funcbp import data
from funcbp.cli import config, run
from funcbp.cli import main as cli

from ._killed import Killed, killed_at_save

PIECES = """
import jax.numpy as jnp
import funcbp

softsign = funcbp.Activation(
    "softsign", lambda z: z / (1 + jnp.abs(z)), lambda z, a: 1 / (1 + jnp.abs(z)) ** 2
)
# Squared error as a user cost: mean over the rows of each row's sum.
sse = funcbp.Cost(
    "sse",
    lambda out, y: jnp.mean(jnp.sum((out - y) ** 2, axis=-1)),
    lambda out, y: 2 * (out - y) / out.shape[0],
)
not_a_piece = 3
"""

IRIS = """[data]
source = "iris"
[model]
hidden = [8, 8]
activation = ["{module}:softsign", "tanh"]
cost = "softmax_cross_entropy"
[train]
epochs = 4
batch_size = 16
checkpoint_every = 2
"""


@pytest.fixture
def pieces(tmp_path, monkeypatch, request):
    """A module of user pieces in the working directory ``tmp_path``; its name."""
    name = "user_pieces_" + re.sub(r"\W", "_", request.node.name)
    (tmp_path / f"{name}.py").write_text(PIECES)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    yield name
    sys.modules.pop(name, None)


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("funcbp: error: "), err
    return err


def test_a_user_activation_trains_and_resumes(pieces, tmp_path, capsys, monkeypatch):
    path = tmp_path / "iris.toml"
    path.write_text(IRIS.format(module=pieces))
    whole, out = tmp_path / "whole", tmp_path / "run"
    assert cli.main(["train", str(path), "--out", str(whole)]) == 0
    assert "softsign" in capsys.readouterr().out  # the headline names it
    saved = tomllib.loads((whole / "config.toml").read_text())
    assert saved["model"]["activation"] == [f"{pieces}:softsign", "tanh"]
    # Killed at the epoch-4 checkpoint: --resume imports the piece again, from epoch 2.
    with killed_at_save(monkeypatch, 3), pytest.raises(Killed):
        cli.main(["train", str(path), "--out", str(out)])
    sys.modules.pop(pieces)  # as in a new process
    assert cli.main(["train", "--resume", str(out)]) == 0
    records = [(d / "metrics.jsonl").read_text() for d in (whole, out)]
    assert records[0] == records[1]
    summaries = [json.loads((d / "summary.json").read_text()) for d in (whole, out)]
    assert summaries[0]["test_loss"] == summaries[1]["test_loss"]
    assert "weighted_loss" not in summaries[0]
    net = run.prepare(config.load(out / "config.toml")).net
    assert net.layer_names == ("softsign", "tanh", "identity")
    # funcbp evaluate imports the run's pieces too, and reproduces its test accuracy.
    sys.modules.pop(pieces)
    test = data.split(data.load("iris"), validation=0.0, test=0.2, seed=0).test
    np.savez(tmp_path / "test.npz", x=test.x, y=test.y)
    capsys.readouterr()
    assert cli.main(["evaluate", str(out), str(tmp_path / "test.npz")]) == 0
    assert f"accuracy {summaries[1]['test_accuracy']:.4f}" in capsys.readouterr().out


def test_a_user_cost_and_output_activation_build_the_network(pieces, tmp_path):
    path = tmp_path / "reg.toml"
    model = f'cost = "{pieces}:sse"\noutput_activation = "{pieces}:softsign"\n'
    path.write_text(f'[data]\nsource = "regression"\n[model]\nhidden = [4]\n{model}')
    net = config.load(path).model.build(1, 1)
    assert net.cost.name == "sse" and net.layer_names == ("relu", "softsign")
    assert config.load(path).model.cost().name == "sse"


BAD_REFERENCES = [
    ("activation", '"no_such_module_here:softsign"',
     r"model\.activation: cannot import module 'no_such_module_here' .*ModuleNotFoundError"),
    ("activation", '"{m}:mish"', r"model\.activation: module '{m}' has no attribute 'mish'"),
    ("activation", '["tanh", "{m}:not_a_piece"]',
     r"model\.activation\[1\]: '{m}:not_a_piece' is of type int, expected a funcbp\.Activation"),
    ("output_activation", '"{m}:sse"',
     r"model\.output_activation: '{m}:sse' is of type Cost, expected a funcbp\.Activation"),
    ("cost", '"{m}:softsign"', r"model\.cost: '{m}:softsign' is of type Activation, expected a "
     r"funcbp\.Cost"),
    ("cost", '"{m}:"', r"model\.cost: '{m}:' is not a reference to a funcbp\.Cost"),
]  # fmt: skip


@pytest.mark.parametrize(("key", "value", "message"), BAD_REFERENCES)
def test_a_bad_reference_is_one_line_exit_2_and_writes_nothing(
    key, value, message, pieces, tmp_path, capsys
):
    path = tmp_path / "bad.toml"
    value = value.format(m=pieces)
    path.write_text(f'[data]\nsource = "iris"\n[model]\nhidden = [4, 4]\n{key} = {value}\n')
    before = sorted(p.name for p in tmp_path.iterdir())
    assert cli.main(["train", str(path), "--out", str(tmp_path / "run")]) == 2
    assert re.search(message.format(m=pieces), _one_line(capsys))
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_module_that_fails_to_import_is_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "broken_pieces_module.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    path = tmp_path / "bad.toml"
    path.write_text('[data]\nsource = "iris"\n[model]\nhidden = [4]\n'
                    'activation = "broken_pieces_module:x"\n')  # fmt: skip
    assert cli.main(["train", str(path), "--out", str(tmp_path / "run")]) == 2
    err = _one_line(capsys)
    assert "cannot import module 'broken_pieces_module'" in err and "RuntimeError: boom" in err
    sys.modules.pop("broken_pieces_module", None)


def test_check_takes_user_pieces_as_flags(pieces, capsys):
    args = ["check", "--sizes", "3,5,2", "--activation", f"{pieces}:softsign", "--cost",
            f"{pieces}:sse", "--dtype", "float64"]  # fmt: skip
    assert cli.main(args) == 0
    assert cli.main(["check", "--sizes", "3,5,2", "--cost", f"{pieces}:softsign"]) == 2
    assert re.search(r"--cost: .* expected a funcbp\.Cost", _one_line(capsys))


@pytest.mark.parametrize(
    ("value", "expected"), [("0.25", 0.25), ("[0.5, 0]", (0.5, 0.0))]
)  # fmt: skip
def test_model_dropout_reaches_the_mlp(value, expected, tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(f"[data]\nsource = 'digits'\n[model]\nhidden = [8, 4]\ndropout = {value}\n")
    loaded = config.load(path)
    assert loaded.model.build(64, 10).dropout == expected
    assert config.from_dict(tomllib.loads(config.dumps(loaded))) == loaded


@pytest.mark.parametrize(
    ("value", "message"),
    [("1.0", r"model\.dropout: dropout rates must be numbers in \[0, 1\), got 1\.0"),
     ("[0.5]", r"model\.dropout: dropout: 1 rates given for 2 hidden layers"),
     ("true", r"model\.dropout: .*got True")],
)  # fmt: skip
def test_a_bad_dropout_is_one_line_naming_model_dropout(value, message, tmp_path, capsys):
    path = tmp_path / "run.toml"
    path.write_text(f"[data]\nsource = 'digits'\n[model]\nhidden = [8, 4]\ndropout = {value}\n")
    assert cli.main(["train", str(path), "--out", str(tmp_path / "run")]) == 2
    assert re.search(message, _one_line(capsys))
    assert not (tmp_path / "run").exists()


def test_balanced_class_weights_follow_scikit_learns_formula():
    labels = np.array([0, 0, 0, 0, 1, 1, 2, 0, 1, 2, 2, 2])
    counts = np.array([5, 3, 4])
    expected = len(labels) / (3 * counts)  # n_samples / (n_classes * bincount(y))
    np.testing.assert_allclose(data.class_weights(labels, 3, "balanced"), expected, rtol=1e-6)
    # The mean weight over the samples is 1.
    assert np.isclose(expected[labels].mean(), 1.0)
    # A class with no sample weighs 0; the others keep the mean weight 1.
    np.testing.assert_allclose(
        data.class_weights(np.array([0, 0, 2]), 3, "balanced"), [0.75, 0.0, 1.5]
    )
    np.testing.assert_array_equal(data.class_weights(labels, 4, {"1": 2, 3: 0.5}), [1, 2, 1, 0.5])


def test_balanced_class_weights_match_scikit_learn():
    class_weight = pytest.importorskip("sklearn.utils.class_weight")
    labels = np.random.default_rng(0).integers(0, 4, 50)
    ours = data.class_weights(labels, 4, "balanced")
    theirs = class_weight.compute_class_weight("balanced", classes=np.arange(4), y=labels)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)


def test_a_run_file_class_weight_weighs_the_training_split(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text("[data]\nsource = 'iris'\nseed = 3\n[model]\nhidden = [8]\n"
                    "cost = 'softmax_cross_entropy'\n"
                    "[train]\nclass_weight = 'balanced'\n")  # fmt: skip
    splits = run.prepare(config.load(path)).splits
    train = splits.train
    expected = len(train) / (3 * np.bincount(train.y, minlength=3))
    np.testing.assert_allclose(train.sample_weight, expected[train.y], rtol=1e-6)
    assert splits.test.sample_weight is None  # evaluation sets keep their own weights
    table = config.load(path, ["train.class_weight={2 = 3.0}"])
    assert table.train.class_weight == {"2": 3.0}
    assert config.from_dict(tomllib.loads(config.dumps(table))) == table
    weights = run.prepare(table).splits.train.sample_weight
    np.testing.assert_array_equal(weights, np.where(train.y == 2, 3.0, 1.0))


@pytest.mark.parametrize(
    ("source", "sets", "message"),
    [("iris", ["train.class_weight={7 = 2.0}"],
      r"train\.class_weight: class weights: class '7' does not exist; the classes are 0 to 2"),
     ("iris", ["train.class_weight={a = 2.0}"],
      r"train\.class_weight: 'a' is not a class index"),
     ("iris", ["train.class_weight={1 = -2.0}"], r"train\.class_weight: class 1 has weight -2\.0"),
     ("iris", ["train.class_weight='even'"], r"train\.class_weight: unknown value 'even'"),
     ("regression", ["train.class_weight='balanced'", "model.hidden=[4]"],
      r"train\.class_weight: class weights need class labels; .* regression targets"),
     ("iris", ["data.sample_weight='w'"], r"data\.sample_weight: the 'iris' data have no sample")],
)  # fmt: skip
def test_bad_weights_are_one_line_exit_2_and_write_nothing(source, sets, message, tmp_path, capsys):
    path = tmp_path / "run.toml"
    path.write_text(f"[data]\nsource = '{source}'\n[model]\nhidden = [8]\n"
                    "cost = 'softmax_cross_entropy'\n")  # fmt: skip
    if source == "regression":
        path.write_text("[data]\nsource = 'regression'\n[model]\nhidden = [4]\n")
    args = [a for s in sets for a in ("--set", s)]
    assert cli.main(["train", str(path), "--out", str(tmp_path / "run"), *args]) == 2
    assert re.search(message, _one_line(capsys))
    assert not (tmp_path / "run").exists()


def _weighted_npz(path: Path, n: int = 60) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, 3))
    y = np.arange(n) % 3
    w = np.arange(n) + 1.0  # row i weighs i + 1: the weights say which row they belong to
    x[:, 0] = np.arange(n)  # and so does x's first column
    np.savez(path, x=x, y=y, w=w)
    return x, y, w


def test_an_npz_sample_weight_member_is_read_and_kept_with_its_rows_through_splits(tmp_path):
    _, y, w = _weighted_npz(tmp_path / "d.npz")
    dataset = data.load(tmp_path / "d.npz", sample_weight="w")
    assert dataset.sample_weight.dtype == np.float32
    np.testing.assert_array_equal(dataset.sample_weight, w)
    assert data.load(tmp_path / "d.npz").sample_weight is None  # read only when named
    splits = data.split(dataset, validation=0.2, test=0.2, seed=7)
    standardized, _ = data.standardize(splits)
    for part in (*splits, *standardized):
        rows = (part.sample_weight - 1).astype(int)
        np.testing.assert_array_equal(part.y, y[rows])
    for part in splits:  # before standardising, x's first column is the row too
        np.testing.assert_array_equal(part.x[:, 0], part.sample_weight - 1)
    assert sorted(np.concatenate([p.sample_weight for p in splits])) == sorted(w)


def test_a_run_file_sample_weight_reaches_every_split(tmp_path):
    _weighted_npz(tmp_path / "d.npz")
    path = tmp_path / "run.toml"
    path.write_text(f"[data]\nsource = '{tmp_path / 'd.npz'}'\nvalidation = 0.2\n"
                    "sample_weight = 'w'\n[model]\nhidden = [8]\ncost = 'softmax_cross_entropy'\n"
                    "[train]\nclass_weight = {0 = 2.0}\n")  # fmt: skip
    splits = run.prepare(config.load(path)).splits
    for part in splits:
        rows = part.sample_weight.copy()
        if part is splits.train:
            rows = rows / np.where(part.y == 0, 2.0, 1.0)
        assert part.sample_weight is not None
        np.testing.assert_array_equal(part.y, ((rows - 1) % 3).astype(int))
    missing = config.load(path, ["data.sample_weight='weights'"])
    with pytest.raises(funcbp.DataError, match=r"sample_weight='weights' names no array"):
        run.prepare(missing)


def test_a_csv_sample_weight_column_is_not_a_feature(tmp_path):
    rows = "".join(f"{i},{i % 4},{2 * i},{i % 2}\n" for i in range(10))
    (tmp_path / "d.csv").write_text("a,wt,b,label\n" + rows)
    dataset = data.load(tmp_path / "d.csv", sample_weight="wt", target_column="label")
    assert dataset.n_features == 2
    np.testing.assert_array_equal(dataset.sample_weight, np.arange(10) % 4)
    np.testing.assert_array_equal(dataset.x[:, 1], 2 * np.arange(10))
    with pytest.raises(funcbp.DataError, match="is the target column"):
        data.load(tmp_path / "d.csv", sample_weight="label", target_column="label")
    by_index = data.load(tmp_path / "d.csv", sample_weight=1)
    np.testing.assert_array_equal(by_index.sample_weight, dataset.sample_weight)


@pytest.mark.parametrize(
    ("weights", "message"),
    [(np.ones(3), r"sample_weight has shape \(3,\), expected \(4,\)"),
     (np.array([1.0, np.nan, 1.0, 1.0]), r"not finite numbers >= 0; the first is nan at row 1"),
     (np.array([1.0, 1.0, -1.0, 1.0]), r"the first is -1 at row 2"),
     (np.zeros(4), r"every weight is 0"),
     (np.array(["a"] * 4), r"sample_weight has dtype <U1, expected numbers")],
)  # fmt: skip
def test_a_dataset_refuses_bad_sample_weights(weights, message):
    with pytest.raises(funcbp.DataError, match=message):
        data.Dataset(np.ones((4, 2)), np.array([0, 1, 0, 1]), 2, "toy", weights)


def test_weighted_by_class_multiplies_the_sample_weights():
    dataset = data.Dataset(np.ones((4, 2)), np.array([0, 1, 2, 1]), 3, "toy", [1, 2, 3, 4])
    weighted = dataset.weighted_by_class([10.0, 1.0, 0.5])
    np.testing.assert_array_equal(weighted.sample_weight, [10, 2, 1.5, 4])
    assert "weighted" in repr(weighted)
    subset = weighted.subset(np.array([3, 0]), "part")
    assert subset.name == "toy[part]"
    np.testing.assert_array_equal(subset.sample_weight, [4, 10])
    regression = data.Dataset(np.ones((2, 1)), np.ones((2, 1)))
    with pytest.raises(funcbp.DataError, match="class weights need class labels"):
        regression.weighted_by_class([1.0, 1.0])


def test_a_weighted_run_trains_and_its_summary_says_the_loss_is_weighted(tmp_path, capsys):
    # Two classes through one logit: the weights survive the labels' conversion to targets.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 3))
    np.savez(tmp_path / "d.npz", x=x, y=(x[:, 0] > 0).astype(int), w=rng.uniform(0.5, 2, 80))
    path = tmp_path / "run.toml"
    path.write_text(f"[data]\nsource = '{tmp_path / 'd.npz'}'\nvalidation = 0.2\n"
                    "sample_weight = 'w'\n[model]\nhidden = [4]\n"
                    "cost = 'sigmoid_binary_cross_entropy'\n"
                    "[train]\nepochs = 2\nbatch_size = 16\n"
                    "class_weight = 'balanced'\n")  # fmt: skip
    splits = run.prepare(config.load(path)).splits
    assert splits.train.y.shape == (len(splits.train), 1) and splits.train.n_classes is None
    assert all(part.sample_weight is not None for part in splits)
    out = tmp_path / "run"
    assert cli.main(["train", str(path), "--out", str(out)]) == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["weighted_loss"] == {
        "train": "weighted mean: train.class_weight = 'balanced' x data.sample_weight = 'w'",
        "validation": "weighted mean: data.sample_weight = 'w'",
        "test": "weighted mean: data.sample_weight = 'w'",
    }
    # The summary's losses are the weighted means (funcbp.fit's side of the weights).
    saved = funcbp.load_checkpoint(out)
    for name, part in zip(("train", "test"), (splits.train, splits.test), strict=True):
        loss = saved.net.loss(saved.state.params, part.x, part.y, sample_weight=part.sample_weight)
        np.testing.assert_allclose(loss, summary[f"{name}_loss"], rtol=1e-5)
        plain = saved.net.loss(saved.state.params, part.x, part.y)
        assert not np.isclose(plain, summary[f"{name}_loss"], rtol=1e-5)
