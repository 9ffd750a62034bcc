"""The command line, in process for the fast paths and as a real subprocess end to end."""

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from funcbp import cli, config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.toml"))
SHORT = {"xor": [], "large": ["data.teacher_samples=1024", "train.epochs=1"]}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_shipped_config_loads_and_round_trips(path):
    loaded = config.load(path)
    again = config.from_dict(tomllib.loads(config.dumps(loaded)))
    assert again == loaded


@pytest.mark.slow
@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_train_runs_each_config_end_to_end(path, tmp_path):
    out = tmp_path / "run"
    sets = SHORT.get(path.stem, ["train.epochs=3"])
    cmd = [sys.executable, "-m", "funcbp", "train", str(path), "--out", str(out)]
    cmd += [arg for s in sets for arg in ("--set", s)]
    env = {**os.environ, "FUNCBP_CACHE_DIR": str(tmp_path / "jax-cache")}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert "run directory" in done.stdout
    assert sorted(p.name for p in out.iterdir()) == ["config.toml", "metrics.jsonl", "summary.json"]
    summary = json.loads((out / "summary.json").read_text())
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == summary["epochs"] and records[-1]["epoch"] == summary["epochs"]
    assert {"train_loss", "wall_seconds", "steps", "device_kind", "versions"} <= set(summary)
    if path.stem == "xor":
        assert summary["train_accuracy"] == 1.0
    assert config.load(out / "config.toml") == config.load(path, sets)
    assert any((tmp_path / "jax-cache").iterdir()), "the compilation cache was not written"


BAD_CONFIGS = [
    ("[data]\nsource = 'digits'\n[model]\nhidden = [8]\n[train]\nepoch = 3\n",
     r"unknown key train\.epoch; valid keys: epochs"),
    ("[data]\nsource = 'digits'\n[model]\nhidden = [8]\n[train]\nepochs = 'ten'\n",
     r"train\.epochs: expected an integer, got 'ten' \(str\)"),
    ("[data]\nsource = 'digits'\n[model]\nhidden = [8]\n[train]\nepochs = 0\n",
     r"train\.epochs: expected a positive integer, got 0"),
    ("[data]\nsource = 'digits'\n[model]\nhidden = [8]\nactivation = 'rleu'\n",
     r"model\.activation: unknown value 'rleu'; valid: identity"),
    ("[data]\nsource = 'digits'\n[model]\nhidden = [8]\ncost = 'hinge'\n",
     r"model\.cost: unknown value 'hinge'"),
    ("[data]\nsource = 'digits'\n[model]\nhidden = [8, 0]\n", r"model\.hidden: expected positive"),
    ("[data]\nsource = 'digits'\n[model]\nhidden = 8\n",
     r"model\.hidden: expected a list of integers, got 8"),
    ("[data]\nsource = 'digits'\n", r"missing key model\.hidden"),
    ("[data]\nsource = 'digits'\n[model]\nhidden = [8]\n[optimizer]\nname = 'adamm'\n",
     r"optimizer: .*adamm"),
    ("[data]\nsource = 'digits'\n[model]\nhidden = [8]\n[optimizer]\nlearning_rate = -1.0\n",
     r"optimizer: learning_rate"),
    ("[data]\nsource = 'digits'\ntest = 1.5\n[model]\nhidden = [8]\n",
     r"data\.test: expected a fraction in \[0, 1\)"),
    ("[data]\nsource = 'digits'\n[model]\nhidden = [8]\n[train]\nbatch_size = 'half'\n",
     r'train\.batch_size: expected an integer or "full"'),
    ("[data]\nsource = 'digits'\n[model]\nhidden = [8]\n[train]\npatience = 3\n",
     r"early stopping needs a validation split"),
    ("[dat]\nsource = 'digits'\n", r"unknown section \[dat\]"),
    ("[data\nsource = 'digits'\n", r"is not valid TOML"),
    ("[data]\nsource = 'no-such-set'\n[model]\nhidden = [8]\n", r"no-such-set"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), BAD_CONFIGS)
def test_bad_config_gives_one_line_and_exit_2_and_writes_nothing(
    text, message, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert cli.main(["train", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("funcbp: error: ")
    assert re.search(message, err), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]


def test_set_overrides_and_rejects_malformed(tmp_path, capsys):
    path = ROOT / "configs" / "digits.toml"
    loaded = config.load(path, ["train.epochs=2", "model.hidden=[4, 4]", "train.engine=autodiff"])
    assert (loaded.train.epochs, loaded.model.hidden, loaded.train.engine) == (
        2,
        (4, 4),
        "autodiff",
    )
    assert cli.main(["train", str(path), "--set", "epochs=2"]) == 2
    assert "expected section.key=value" in capsys.readouterr().err


def test_existing_run_directory_is_not_overwritten(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    code = cli.main(["train", str(ROOT / "configs/xor.toml"), "--out", str(tmp_path / "run")])
    assert code == 2 and "already exists" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--sizes", "3,5,2", "--activation", "tanh"], 0),
        (["--sizes", "3,5,2", "--cost", "mse", "--hvp", "--dtype", "float64"], 0),
        ([str(ROOT / "configs/iris.toml"), "--batch", "8"], 0),
    ],
)
def test_check_command_exit_status(args, code, capsys):
    assert cli.main(["check", *args]) == code
    out = capsys.readouterr().out
    assert "check_gradients" in out and "PASS" in out


def test_check_command_fails_with_status_1_on_a_broken_engine(monkeypatch, capsys):
    import funcbp.backprop

    real = funcbp.backprop.backward

    def broken(net, params, cache, delta):
        grads, input_grad, deltas = real(net, params, cache, delta)
        grads[0] = {"w": grads[0]["w"] * 1.01, "b": grads[0]["b"]}
        return grads, input_grad, deltas

    monkeypatch.setattr(funcbp.backprop, "backward", broken)
    assert cli.main(["check", "--sizes", "3,4,2", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert not report["ok"]
    assert {row["path"] for row in report["rows"] if not row["ok"]} == {"[0]['w']"}


def test_check_needs_a_network(capsys):
    assert cli.main(["check"]) == 2
    assert "CONFIG file or --sizes" in capsys.readouterr().err
