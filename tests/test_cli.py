"""The command line, in process for the fast paths and as a real subprocess end to end."""

import json
import os
import pickle
import re
import signal
import struct
import subprocess
import sys
import time
import tomllib
import zlib
from pathlib import Path

import jax
import numpy as np
import pytest

import funcbp
from funcbp import checkpoint
from funcbp.cli import config, run
from funcbp.cli import main as cli

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.toml"))
SHORT = {
    "xor": [],
    "large": ["data.teacher_samples=1024", "train.epochs=1"],
    "iris": ["train.epochs=3", "train.diagnostics_every=2"],
    "regression": ["train.epochs=3", "model.compute_dtype=bfloat16"],
}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_shipped_config_loads_and_round_trips(path):
    loaded = config.load(path)
    again = config.from_dict(tomllib.loads(config.dumps(loaded)))
    assert again == loaded


@pytest.fixture(scope="module")
def jax_cache(tmp_path_factory):
    """One persistent compilation cache for this module's subprocesses."""
    return tmp_path_factory.mktemp("jax-cache")


def _funcbp(*args, cache, cwd):
    """Starts ``python -m funcbp ARGS`` (a ``Popen``), output captured as text."""
    env = {**os.environ, "FUNCBP_CACHE_DIR": str(cache)}
    return subprocess.Popen([sys.executable, "-m", "funcbp", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def _run(*args, cache, cwd) -> subprocess.CompletedProcess:
    proc = _funcbp(*args, cache=cache, cwd=cwd)
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _png_size(path: Path) -> tuple[int, int]:
    """(width, height) of a PNG whose every chunk's CRC checks out, ending in IEND."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    pos, kinds = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"{path}: bad CRC in {kind}"
        kinds.append(kind)
        pos += 12 + length
    assert kinds[0] == b"IHDR" and b"IDAT" in kinds and kinds[-1] == b"IEND"
    return struct.unpack(">II", data[16:24])


def _assert_complete_run(out: Path, classification: bool) -> dict:
    """Every file of a finished run directory is there and parses; returns the summary."""
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed"
    required = {"train_loss", "epochs", "steps", "wall_seconds", "compile_seconds",
                "device_kind", "device_count", "versions"}  # fmt: skip
    data = config.load(out / "config.toml").data
    if data.test:
        required |= {"test_loss", "test_accuracy"} if classification else {"test_loss"}
    assert required <= set(summary)
    assert 0 < summary["compile_seconds"] < summary["wall_seconds"]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == list(range(1, summary["epochs"] + 1))
    config.load(out / "config.toml")
    assert _png_size(out / "loss.png") == (600, 400)
    # Accuracy is a curve of the evaluated splits (the epoch's train loss is a running mean).
    curves = classification and (data.test or data.validation) > 0
    assert (out / "accuracy.png").exists() == curves
    if curves:
        _png_size(out / "accuracy.png")
    run_config = config.load(out / "config.toml")
    if run_config.train.diagnostics_every:
        _png_size(out / "diagnostics.png")
        layers = len(run_config.model.hidden) + 1
        sampled = [r for r in records if r["sampled_steps"]]  # full batch: every 2nd epoch
        assert sampled and all(len(r["grad_norm"]) == layers for r in sampled)
    saved = funcbp.load_checkpoint(out)
    assert saved.meta["step"] == summary["steps"] and saved.meta["epoch"] == summary["epochs"]
    best = funcbp.load_checkpoint(out, which="best").meta
    name, value = best["monitor"]["name"], best["monitor"]["value"]
    assert records[best["epoch"] - 1][name] == value <= saved.meta["monitor"]["value"]
    return summary


@pytest.mark.slow
@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_train_runs_each_config_end_to_end(path, tmp_path, jax_cache):
    out = tmp_path / "run"
    sets = SHORT.get(path.stem, ["train.epochs=3"])
    done = _run("train", path, "--out", out, *(a for s in sets for a in ("--set", s)),
                cache=jax_cache, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "run directory" in done.stdout and " loss " in done.stdout  # the summary table
    summary = _assert_complete_run(out, classification=path.stem != "regression")
    if path.stem == "xor":
        assert summary["train_accuracy"] == 1.0
    assert config.load(out / "config.toml") == config.load(path, sets)
    assert any(jax_cache.iterdir()), "the compilation cache was not written"
    # The checkpoint serves a research script: its parameters give the summary's test loss.
    saved = funcbp.load_checkpoint(out)
    test = run.prepare(config.load(out / "config.toml")).splits.test
    if test is not None:
        loss = saved.net.loss(
            saved.state.params, test.x.astype(saved.state.params[0]["w"].dtype), test.y
        )
        # bfloat16 layers round differently eagerly than in the fused, compiled summary.
        rtol = 1e-2 if saved.net.compute_dtype else 1e-6
        np.testing.assert_allclose(loss, summary["test_loss"], rtol=rtol)


BAD_CONFIGS = [
    ("[data]\nsource = 'digits'\n[model]\nhidden = [8]\n[train]\nepoch = 3\n",
     r"unknown key train\.epoch; valid keys: epochs"),
    ("[data]\nsource = 'digits'\n[model]\nhidden = [8]\n[train]\nepochs = 'ten'\n",
     r"train\.epochs: expected an integer, got 'ten' \(str\)"),
    ("[data]\nsource = 'digits'\n[model]\nhidden = [8]\n[train]\nepochs = 0\n",
     r"train\.epochs: expected a positive integer, got 0"),
    ("[data]\nsource = 'digits'\n[model]\nhidden = [8]\nactivation = 'rleu'\n",
     r"model\.activation: unknown activation 'rleu'; valid names: identity"),
    ("[data]\nsource = 'digits'\n[model]\nhidden = [8]\ncost = 'hinge'\n",
     r"model\.cost: unknown cost 'hinge'"),
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
    ("[data]\nsource = 'digits'\n[model]\nhidden = [8]\nl2 = nan\n",
     r"model\.l2: l2 must be a finite number >= 0, got nan"),
    ("[data]\nsource = 'digits'\nseed = -1\n[model]\nhidden = [8]\n",
     r"data\.seed: expected an integer in \[0, 2\*\*32\), got -1"),
    ("[data]\nsource = 'digits'\n[model]\nhidden = [8]\n[train]\nseed = 4294967296\n",
     r"train\.seed: expected an integer in \[0, 2\*\*32\), got 4294967296"),
    ("[data]\nsource = 'digits'\n[model]\nhidden = [8]\ncompute_dtype = 'int8'\n",
     r"model\.compute_dtype: compute_dtype must be one of .*'bfloat16', 'float16'\), got 'int8'"),
    ("[data]\nsource = 'digits'\n[model]\nhidden = [8, 8]\nactivation = ['tanh']\n",
     r"model\.activation: activation: 1 given for 2 hidden layers"),
    ("[data]\nsource = 'digits'\n[model]\nhidden = [8]\nsizes = [64, 8, 10]\n",
     r"unknown key model\.sizes; valid keys: hidden, activation, output_activation, cost"),
    ("[data]\nsource = 'digits'\n[model]\nhidden = [8]\n[train]\nengine = 'jvp'\n",
     r"train\.engine: unknown value 'jvp'; valid: backprop, autodiff"),
    ("[data]\nsource = 'digits'\n[model]\nhidden = [8]\n[train]\ndtype = 'float16'\n",
     r"train\.dtype: unknown value 'float16'; valid: float32, float64, bfloat16"),
    ("[data]\nsource = 'iris'\n[model]\nhidden = [8]\n",  # MLP's default cost, mse
     r"dataset 'iris\[train\]': mse: targets"),
    ("[dat]\nsource = 'digits'\n", r"unknown section \[dat\]"),
    ("[data\nsource = 'digits'\n", r"is not valid TOML"),
    ("[data]\nsource = 'no-such-set'\n[model]\nhidden = [8]\n", r"no-such-set"),
    ("[data]\nsource = 'digits'\n[model]\nhidden = [8]\n[distributed]\ncoordinator = 'host'\n"
     "num_processes = 2\n", r"distributed\.coordinator: expected process 0's address as host:port"),
    ("[data]\nsource = 'digits'\n[model]\nhidden = [8]\n[distributed]\nnum_processes = 2\n",
     r"distributed\.coordinator and distributed\.num_processes go together"),
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


def test_the_model_table_builds_an_mlp_with_its_defaults(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text("[data]\nsource = 'digits'\n[model]\nhidden = [8, 4]\n")
    assert config.load(path).model.build(64, 10) == funcbp.MLP((64, 8, 4, 10))
    per_layer = ["model.activation=['tanh', 'relu']", "model.compute_dtype=''", "model.l2=1"]
    loaded = config.load(path, per_layer)
    assert loaded.model.build(64, 10) == funcbp.MLP((64, 8, 4, 10), ("tanh", "relu"), l2=1.0)
    text = config.dumps(loaded)
    assert 'activation = ["tanh", "relu"]' in text and "compute_dtype" not in text
    assert config.from_dict(tomllib.loads(text)) == loaded


def test_an_internal_error_is_a_traceback_with_exit_1_bad_input_one_line_with_2(tmp_path):
    # A bug (here a ValueError or KeyError from inside the train command) must not be
    # reported as bad input; run as `python -m funcbp` would be, in a fresh process.
    script = (
        "import sys\n"
        "from funcbp.cli import main, run\n"
        "def broken(config):\n"
        "    raise {error}\n"
        "run.prepare = broken\n"
        "sys.argv = ['funcbp', 'train', {config!r}, '--out', {out!r}]\n"
        "main.run()\n"
    )
    xor = str(ROOT / "configs/xor.toml")
    for error, shown in [
        ("ValueError('bug')", "ValueError: bug"),
        ("KeyError('bug')", "KeyError: 'bug'"),
    ]:
        code = script.format(error=error, config=xor, out=str(tmp_path / "run"))
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              cwd=tmp_path, timeout=300)  # fmt: skip
        assert done.returncode == 1, done.stderr
        assert "Traceback (most recent call last)" in done.stderr and shown in done.stderr
        assert "funcbp: error:" not in done.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[data]\nsource = 'digits'\n[model]\nhidden = [8]\n[train]\nepochs = 0\n")
    done = subprocess.run([sys.executable, "-m", "funcbp", "train", str(bad), "--out",
                           str(tmp_path / "run")], capture_output=True, text=True, cwd=tmp_path,
                          timeout=300)  # fmt: skip
    assert done.returncode == 2
    assert re.fullmatch(r"funcbp: error: config .*bad\.toml: train\.epochs: .*\n", done.stderr)
    assert not (tmp_path / "run").exists()


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
    (tmp_path / "flat.toml").write_text("data = 5\n")
    assert cli.main(["train", str(tmp_path / "flat.toml"), "--set", "data.source=iris"]) == 2
    assert "--set 'data.source=iris': data is 5, not a table ([data])" in capsys.readouterr().err


def test_existing_run_directory_is_not_overwritten(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")  # not a run's: never replaced
    code = cli.main(["train", str(ROOT / "configs/xor.toml"), "--out", str(tmp_path / "run")])
    assert code == 2 and "already exists and holds files a run does not" in capsys.readouterr().err
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"


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


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch", "0"], r"argument --batch: expected a positive integer, got '0'"),
        (["--sizes", "4,,3"], r"argument --sizes: expected positive layer widths separated by"),
        (["--seed", "-1"], r"argument --seed: expected an integer in \[0, 2\*\*32\), got '-1'"),
    ],
)
def test_check_refuses_bad_flags_in_one_line(args, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["check", "--sizes", "4,8,3", *args])
    assert exit_.value.code == 2
    assert re.search(f"funcbp check: error: {message}", capsys.readouterr().err)


def test_check_refuses_a_network_its_cost_does_not_fit(capsys):
    assert cli.main(["check", "--sizes", "4,8,1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("funcbp: error: --cost: softmax_cross_entropy needs at least 2 outputs")


def test_check_command_fails_with_status_1_on_a_broken_engine(monkeypatch, capsys):
    import funcbp.backprop

    real = funcbp.backprop.backward

    def broken(net, params, cache, delta, *rule):
        grads, input_grad, deltas = real(net, params, cache, delta, *rule)
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


# Long enough (about 2 s of training after compiling) to be stopped mid-way.
LONG = [ROOT / "configs/digits.toml", "--set", "model.hidden=[32]", "--set", "train.epochs=400",
        "--set", "train.checkpoint_every=8", "--set", "train.batch_size=32"]  # fmt: skip


def _stop_after_first_checkpoint(proc: subprocess.Popen, out: Path, how: signal.Signals) -> None:
    """Sends ``how`` to ``proc`` once a checkpoint past step 0 is on disk."""
    deadline = time.monotonic() + 120
    while not [p for p in out.glob("checkpoints/step-*.npz") if p.name != "step-000000000.npz"]:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.005)
    proc.send_signal(how)


def _same_results(a: Path, b: Path) -> None:
    """Bit-identical losses and accuracies, per epoch and in the summary."""
    assert (a / "metrics.jsonl").read_text() == (b / "metrics.jsonl").read_text()
    summaries = [json.loads((d / "summary.json").read_text()) for d in (a, b)]
    metrics = [
        {k: v for k, v in s.items() if k.endswith(("_loss", "_accuracy"))} for s in summaries
    ]
    assert metrics[0] == metrics[1] and len(metrics[0]) == 4


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, jax_cache):
    out = tmp_path_factory.mktemp("uninterrupted") / "run"
    done = _run("train", *LONG, "--out", out, cache=jax_cache, cwd=out.parent)
    assert done.returncode == 0, done.stderr
    return out


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_to_identical_results(tmp_path, jax_cache, uninterrupted):
    out = tmp_path / "run"
    proc = _funcbp("train", *LONG, "--out", out, cache=jax_cache, cwd=tmp_path)
    _stop_after_first_checkpoint(proc, out, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL and not (out / "summary.json").exists()
    done = _run("train", "--resume", out, cache=jax_cache, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    _same_results(out, uninterrupted)
    _assert_complete_run(out, classification=True)


def test_interrupted_pickles_whole():
    err = run.Interrupted(7, Path("runs/x/checkpoints/step-000000070.npz"))
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.epoch, copy.path, str(copy)) == (err.epoch, err.path, str(err))


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(tmp_path, jax_cache, uninterrupted):
    out = tmp_path / "run"
    proc = _funcbp("train", *LONG, "--out", out, cache=jax_cache, cwd=tmp_path)
    _stop_after_first_checkpoint(proc, out, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and f"continue with: funcbp train --resume {out}" in err
    epoch = int(re.search(r"interrupted after epoch (\d+)", err)[1])
    assert funcbp.load_checkpoint(out).meta["epoch"] == epoch < 400
    assert len((out / "metrics.jsonl").read_text().splitlines()) == epoch
    done = _run("train", "--resume", out, cache=jax_cache, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    _same_results(out, uninterrupted)


@pytest.mark.slow
def test_divergence_names_epoch_and_step_keeps_good_checkpoints_and_exits_1(tmp_path, jax_cache):
    out = tmp_path / "run"
    args = ["--set", "optimizer.name=sgd", "--set", "optimizer.learning_rate=1e3",
            "--set", "train.patience=0", "--set", "train.checkpoint_every=1"]  # fmt: skip
    done = _run("train", ROOT / "configs/regression.toml", "--out", out, *args,
                cache=jax_cache, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 1
    message = re.search(r"diverged: not finite at epoch (\d+), step (\d+)", done.stderr)
    assert (
        message and "the last good checkpoint is" in done.stderr and "Traceback" not in done.stderr
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["epoch"] == int(message[1])
    good = funcbp.load_checkpoint(out / summary["last_good_checkpoint"])
    assert good.meta["step"] < summary["step"]
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(good.state.params))
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["train_loss"] is None  # NaN is not JSON: written as null
    _png_size(out / "loss.png")


@pytest.mark.slow
def test_a_terminal_gets_a_progress_bar(tmp_path, jax_cache):
    import fcntl
    import pty
    import termios

    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    env = {**os.environ, "FUNCBP_CACHE_DIR": str(jax_cache)}
    cmd = [sys.executable, "-m", "funcbp", "train", ROOT / "configs/iris.toml", "--out",
           tmp_path / "run", "--set", "train.epochs=20"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=secondary, stderr=secondary, env=env, cwd=tmp_path)
    os.close(secondary)
    shown = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # the terminal closed: the process has exited
            break
        if not chunk:
            break
        shown += chunk
    os.close(primary)
    assert proc.wait(timeout=60) == 0, shown.decode()
    text = shown.decode()
    assert "\r" in text and "20/20" in text and "epoch/s" in text and "test loss=" in text
    assert "epoch 20/20" not in text  # the plain log lines are for pipes and files


def test_resume_refuses_a_changed_config_a_finished_run_and_a_missing_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.toml").write_text((ROOT / "configs/iris.toml").read_text())
    assert cli.main(["train", "--resume", str(out), "--set", "train.epochs=7"]) == 2
    assert re.search(r"differs from .*config.toml at train\.epochs \(given 7, saved",
                     capsys.readouterr().err)  # fmt: skip
    (out / "summary.json").write_text("{}")
    assert cli.main(["train", "--resume", str(out)]) == 2
    assert "has finished" in capsys.readouterr().err
    assert cli.main(["train", "--resume", str(tmp_path)]) == 2
    assert "is not a run directory" in capsys.readouterr().err
    assert cli.main(["train"]) == 2
    assert "needs a CONFIG file" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("other", "message"),
    [
        (
            "model.hidden=[8]",
            # An array of the checkpoint by its name in the file (the schema's, not pytree keys).
            r": \S+ is float32\[8\], expected float32\[16\]",
        ),
        ("optimizer.name=adam", r" does not fit this network and optimizer: (missing|unexpected) "),
    ],
)
def test_resume_refuses_a_checkpoint_of_another_network_or_optimizer(
    tmp_path, capsys, other, message
):
    iris, runs = str(ROOT / "configs/iris.toml"), {}
    for name, extra in [("run", []), ("other", ["--set", other])]:
        runs[name] = tmp_path / name
        assert cli.main(["train", iris, "--out", str(runs[name]),
                         "--set", "train.epochs=3", *extra]) == 0  # fmt: skip
    out = runs["run"]
    (out / "summary.json").unlink()
    foreign = out / "checkpoints/step-000000099.npz"  # the latest, so the one resumed
    foreign.write_bytes(checkpoint.find(runs["other"]).read_bytes())
    metrics = (out / "metrics.jsonl").read_text()
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(out)]) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(f"funcbp: error: {re.escape(str(foreign))}{message}.*\n", err), err
    assert (out / "metrics.jsonl").read_text() == metrics  # nothing rewritten


@pytest.mark.parametrize("damage", ["not json", "{}", '{"monitor": {"value": "low"}}'])
def test_resume_refuses_a_damaged_best_json_by_name(tmp_path, capsys, damage):
    out = tmp_path / "run"
    assert cli.main(["train", str(ROOT / "configs/iris.toml"), "--out", str(out),
                     "--set", "train.epochs=2"]) == 0  # fmt: skip
    (out / "summary.json").unlink()
    best = out / "checkpoints/best.json"
    best.unlink()  # a hard link to a step's metadata: replace it, leave that one be
    best.write_text(damage)
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(out)]) == 2
    assert capsys.readouterr().err.startswith(f"funcbp: error: {best} is damaged (")


def test_resume_refuses_a_damaged_metrics_file_by_name(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", str(ROOT / "configs/iris.toml"), "--out", str(out),
                     "--set", "train.epochs=2"]) == 0  # fmt: skip
    (out / "summary.json").unlink()
    metrics = out / "metrics.jsonl"
    metrics.write_text("{not json\n" + metrics.read_text().split("\n", 1)[1])
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(out)]) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(
        f"funcbp: error: {re.escape(str(metrics))} is damaged at line 1: not JSON .*\n", err
    )


def test_resume_after_the_last_epoch_writes_the_missing_summary(tmp_path, capsys):
    # Killed between the final checkpoint and summary.json: nothing is left to train.
    out = tmp_path / "run"
    assert cli.main(["train", str(ROOT / "configs/iris.toml"), "--out", str(out),
                     "--set", "train.epochs=4"]) == 0  # fmt: skip
    first = json.loads((out / "summary.json").read_text())
    (out / "summary.json").unlink()
    assert cli.main(["train", "--resume", str(out)]) == 0
    again = json.loads((out / "summary.json").read_text())
    metrics = [k for k in first if k.endswith(("_loss", "_accuracy"))]
    assert metrics and {k: again[k] for k in metrics} == {k: first[k] for k in metrics}
    assert again["epochs"] == 4 and "run directory" in capsys.readouterr().out
