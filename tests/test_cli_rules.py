"""Learning rules from the command line: ``train.engine`` and ``[rule]``, their state
through a kill and a resume, ``diagnose``'s and ``compare-rules``' alignment columns."""

import json
import re
import tomllib

import pytest

from funcbp import rules
from funcbp.cli import _rundir, config
from funcbp.cli import main as cli

from ._killed import Killed, killed_at_save

IRIS = """[data]
source = "iris"
[model]
hidden = [8, 8]
activation = "tanh"
cost = "softmax_cross_entropy"
[train]
epochs = 4
batch_size = 16
checkpoint_every = 2
diagnostics_every = 3
engine = "kolen_pollack"
[rule]
decay = 0.05
"""


def test_a_rule_trains_records_its_alignment_and_resumes_exactly(tmp_path, monkeypatch, capsys):
    path = tmp_path / "iris.toml"
    path.write_text(IRIS)
    whole, out = tmp_path / "whole", tmp_path / "run"
    assert cli.main(["train", str(path), "--out", str(whole)]) == 0
    assert "kolen_pollack engine" in capsys.readouterr().out  # the headline names it
    assert tomllib.loads((whole / "config.toml").read_text())["rule"] == {"decay": 0.05}
    record = json.loads((whole / "metrics.jsonl").read_text().splitlines()[-1])
    assert len(record["alignment_angle"]) == len(record["feedback_angle"]) == 3
    assert (whole / "alignment.png").stat().st_size > 0
    assert _rundir._contents(whole) == "finished"  # alignment.png is a run's own file
    meta = json.loads(next((whole / "checkpoints").glob("*.json")).read_text())
    assert meta["rule"] == "kolen_pollack"
    # Killed at the epoch-4 checkpoint: --resume restores B_l from epoch 2's.
    with killed_at_save(monkeypatch, 3), pytest.raises(Killed):
        cli.main(["train", str(path), "--out", str(out)])
    assert cli.main(["train", "--resume", str(out)]) == 0
    records = [(d / "metrics.jsonl").read_text() for d in (whole, out)]
    assert records[0] == records[1]
    summaries = [json.loads((d / "summary.json").read_text()) for d in (whole, out)]
    assert summaries[0]["test_loss"] == summaries[1]["test_loss"]


def test_the_rule_table_round_trips_and_makes_the_engine(tmp_path):
    path = tmp_path / "iris.toml"
    path.write_text(IRIS)
    loaded = config.load(path)
    assert loaded.engine() is rules.kolen_pollack(0.05)
    again = tmp_path / "again.toml"
    again.write_text(config.dumps(loaded))
    assert config.load(again) == loaded


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["train.engine=fa"], r"train.engine: unknown value 'fa'; valid: backprop, autodiff, "
                              r"feedback_alignment, "),
        (["train.engine=backprop"], r"rule.decay: \[rule\] holds a learning rule's options, and "
                                    r"train.engine = 'backprop' is none"),
        (["train.engine=sign_symmetry"], r"rule: 'decay' is not an option of rule "
                                         r"'sign_symmetry' \(its options: magnitude\); it is an "
                                         r"option of kolen_pollack"),
        (["rule.decay=2"], r"rule: kolen_pollack: decay must be a number in \[0, 1\), got 2"),
        (["train.engine=predictive_coding", "rule.decay=0.1"], r"'decay' is not an option"),
        (["train.engine=direct_feedback_alignment", "model.hidden=[]", "rule.decay=0"],
         r"'decay' is not an option of rule 'direct_feedback_alignment'"),
    ],
)  # fmt: skip
def test_a_bad_rule_is_one_line_exit_2_and_writes_nothing(sets, message, tmp_path, capsys):
    path = tmp_path / "iris.toml"
    path.write_text(IRIS)
    out = tmp_path / "run"
    args = [a for s in sets for a in ("--set", s)]
    assert cli.main(["train", str(path), "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("funcbp: error: "), err
    assert re.search(message, err), err
    assert not out.exists()


def test_a_rule_the_network_cannot_use_is_one_line_and_writes_nothing(tmp_path, capsys):
    path = tmp_path / "iris.toml"
    path.write_text(IRIS.replace("[rule]\ndecay = 0.05\n", ""))
    out = tmp_path / "run"
    sets = ["--set", "train.engine=direct_feedback_alignment", "--set", "model.hidden=[]"]
    assert cli.main(["train", str(path), "--out", str(out), *sets]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "direct_feedback_alignment needs a hidden layer" in err, err
    assert not out.exists()


def test_diagnose_shows_a_rules_alignment(tmp_path, capsys):
    path = tmp_path / "iris.toml"
    path.write_text(IRIS)
    assert cli.main(["diagnose", str(path), "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert "kolen_pollack engine" in out
    header = next(line for line in out.splitlines() if line.lstrip().startswith("layer"))
    assert header.endswith("angle to grad  norm ratio  B to W^T"), header


def test_compare_rules_trains_each_rule_from_the_same_weights(tmp_path, capsys):
    path = tmp_path / "iris.toml"
    path.write_text(IRIS.replace("epochs = 4", "epochs = 2"))
    chosen = "sign_symmetry,kolen_pollack,forward_gradient"
    assert cli.main(["compare-rules", str(path), "--rules", chosen]) == 0
    lines = capsys.readouterr().out.splitlines()
    table = lines[lines.index("") + 1 :]
    assert table[0].split()[:4] == ["rule", "train_loss", "test_accuracy", "test_loss"]
    assert [line.split()[0] for line in table[1:]] == ["backprop", *chosen.split(",")]
    backprop, sign, _, fg = (line.split() for line in table[1:])
    assert backprop[4] == "1.00x" and backprop[5:] == ["-", "-"]
    assert len(sign[5:]) == 6 and sign[7] == "0.0"  # 3 layers' angles, then B's; output exact
    assert fg[-1] == "-"  # no feedback matrix


def test_compare_rules_refuses_an_unknown_rule_in_one_line(tmp_path, capsys):
    path = tmp_path / "iris.toml"
    path.write_text(IRIS)
    assert cli.main(["compare-rules", str(path), "--rules", "backprop,fa"]) == 2
    err = capsys.readouterr().err
    assert err == ("funcbp: error: --rules: unknown learning rule 'fa'; valid rules: "
                   "backprop, " + ", ".join(rules.NAMES) + "\n")  # fmt: skip


def test_compare_rules_checks_every_rule_against_the_network_first(tmp_path, capsys):
    path = tmp_path / "iris.toml"
    path.write_text(IRIS.replace("[rule]\ndecay = 0.05\n", ""))
    sets = ["--set", "model.dropout=0.2", "--rules", "kolen_pollack,predictive_coding"]
    assert cli.main(["compare-rules", str(path), *sets]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing trained, no header
    assert captured.err.count("\n") == 1
    assert "--rules: predictive_coding does not drop out" in captured.err
