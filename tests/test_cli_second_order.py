"""Full-batch solvers from the command line: ``optimizer.name = "levenberg_marquardt"``
(no learning rate), its counts in metrics.jsonl, a kill and a bit-identical resume, its
stop in the summary, and the runs it refuses as one line naming the key."""

import json
import re
import tomllib

import pytest

from funcbp.cli import config
from funcbp.cli import main as cli

from ._killed import Killed, killed_at_save

IRIS = """[data]
source = "iris"
[model]
hidden = [8]
activation = "tanh"
cost = "softmax_cross_entropy"
[optimizer]
name = "levenberg_marquardt"
tol = 0.0
[train]
epochs = 6
batch_size = "full"
checkpoint_every = 2
"""


@pytest.mark.parametrize("name", ["levenberg_marquardt", "newton_cg", "lbfgs"])
def test_a_solver_trains_counts_and_resumes_exactly(name, tmp_path, monkeypatch):
    path = tmp_path / "iris.toml"
    path.write_text(IRIS.replace('"levenberg_marquardt"', f'"{name}"'))
    whole, out = tmp_path / "whole", tmp_path / "run"
    assert cli.main(["train", str(path), "--out", str(whole)]) == 0
    saved = tomllib.loads((whole / "config.toml").read_text())["optimizer"]
    assert saved == {"tol": 0.0, "name": name}  # no learning_rate written
    records = [json.loads(line) for line in (whole / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == list(range(1, 7))
    assert all(r["function_evaluations"] >= 1 and r["gradient_evaluations"] >= 1 for r in records)
    assert records[-1]["train_loss"] < records[0]["train_loss"]
    # Killed at the epoch-4 checkpoint: --resume goes on from epoch 2's, solver state and all.
    with killed_at_save(monkeypatch, 3), pytest.raises(Killed):
        cli.main(["train", str(path), "--out", str(out)])
    assert cli.main(["train", "--resume", str(out)]) == 0
    assert (whole / "metrics.jsonl").read_text() == (out / "metrics.jsonl").read_text()
    summaries = [json.loads((d / "summary.json").read_text()) for d in (whole, out)]
    assert summaries[0]["test_loss"] == summaries[1]["test_loss"]


def test_a_solver_that_converges_says_why_in_the_summary(tmp_path):
    path = tmp_path / "iris.toml"
    path.write_text(IRIS.replace('name = "levenberg_marquardt"\ntol = 0.0', 'name = "lbfgs"\n'
                                 "tol = 0.5").replace("epochs = 6", "epochs = 50"))  # fmt: skip
    assert cli.main(["train", str(path), "--out", str(tmp_path / "run")]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["stop_reason"] == "gradient" and summary["epochs"] < 50
    assert summary["warnings"] == []


def test_a_first_order_optimizer_keeps_its_default_learning_rate(tmp_path):
    path = tmp_path / "adam.toml"
    path.write_text(IRIS.replace('name = "levenberg_marquardt"\ntol = 0.0', 'name = "adam"'))
    loaded = config.load(path)
    assert loaded.optimizer.learning_rate is None
    assert loaded.optimizer.make() is not None  # adam at funcbp.optim.DEFAULT_LEARNING_RATE
    assert "learning_rate" not in config.dumps(loaded)
    again = tmp_path / "again.toml"
    again.write_text(config.dumps(loaded))
    assert config.load(again) == loaded


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["train.batch_size=16"], r"train.batch_size: optimizer 'levenberg_marquardt' trains "
                                  r"full batch"),
        (["optimizer.learning_rate=0.1"], r"optimizer: learning_rate: optimizer "
                                          r"'levenberg_marquardt' takes none \(its damping"),
        (["data.source=regression", "model.cost=mae"],
         r"model.cost: optimizer 'levenberg_marquardt' needs a cost with a Gauss-Newton form"),
        (["model.dropout=0.2"], r"model.dropout: optimizer 'levenberg_marquardt' needs a "
                                r"deterministic loss"),
        (["train.engine=feedback_alignment"], r"train.engine: optimizer 'levenberg_marquardt' "
                                              r"needs the exact gradient"),
        (["optimizer.solve=qr"], r"optimizer: solve must be one of 'auto', 'dense', 'cg'"),
    ],
)  # fmt: skip
def test_a_run_a_solver_cannot_train_is_one_line_exit_2_and_writes_nothing(
    sets, message, tmp_path, capsys
):
    path = tmp_path / "iris.toml"
    path.write_text(IRIS)
    out = tmp_path / "run"
    args = [a for s in sets for a in ("--set", s)]
    assert cli.main(["train", str(path), "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("funcbp: error: "), err
    assert re.search(message, err), err
    assert not out.exists()
