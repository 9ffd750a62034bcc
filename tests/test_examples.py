"""The research scripts in examples/ run end to end and reach their results.

Each script runs as a user would run it, ``python examples/NAME.py``, in a fresh
process (shortened by its ``--steps`` / ``--epochs`` flag where the full run only
adds time; XOR runs its full 5000 steps because reaching 100% is its point).
"""

import os
import pathlib
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

ROOT = pathlib.Path(__file__).resolve().parent.parent


def run_example(name: str, *args: str) -> str:
    """Runs ``examples/<name>.py`` with ``args``; returns its stdout, failing on a non-zero exit."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / f"{name}.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, (
        f"examples/{name}.py {' '.join(args)} exited with {proc.returncode}\n"
        f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    )
    return proc.stdout


def number_after(label: str, out: str) -> float:
    """The number printed after ``label`` on its last occurrence in ``out``."""
    found = re.findall(rf"^{re.escape(label)}\s+([-+0-9.e]+)", out, flags=re.MULTILINE)
    assert found, f"no line starting with {label!r} in the output:\n{out}"
    return float(found[-1])


def test_xor_sgd_reaches_full_accuracy():
    out = run_example("xor_sgd")
    assert re.search(r"^accuracy 100%$", out, flags=re.MULTILINE), out


def test_iris_rprop():
    out = run_example("iris_rprop", "--steps", "50")
    assert number_after("test accuracy", out) >= 90.0, out


def test_digits_adam():
    out = run_example("digits_adam", "--epochs", "3")
    assert "ok=True" in out, out
    assert number_after("test accuracy", out) >= 90.0, out


def test_regression():
    out = run_example("regression", "--steps", "200")
    assert number_after("test mse", out) < 0.02, out
    assert "input_grad (51, 1)" in out, out
    gaps = [float(g) for g in re.findall(r"max \|diff\|.*?([0-9.]+e[-+][0-9]+)", out)]
    assert len(gaps) == 2, out
    assert max(gaps) < 1e-5, out


def test_vanishing_gradients(tmp_path):
    out = run_example("vanishing_gradients", "--epochs", "2", "--out", str(tmp_path / "v.png"))
    ratios = [float(r) for r in re.findall(r"first / last layer: ([0-9.e+-]+)", out)]
    assert ratios[0] < 1e-4 and 0.1 < ratios[1] < 10, out  # sigmoid vanishes, ReLU + He does not
    assert out.count("warning: vanishing gradients") == 1, out
    assert (tmp_path / "v.png").read_bytes()[:4] == b"\x89PNG"


def test_custom_activation_is_checked_a_mutant_caught_and_digits_trained():
    out = run_example("custom_activation", "--epochs", "3")
    assert "check_activation 'mish': PASS" in out, out
    assert "check_activation 'mish_without_sigmoid': FAIL" in out and "mutant caught: True" in out
    assert re.search(r"MLP \(64, 128, 128, 10\) mish, adam", out), out
    assert float(re.findall(r"^test\s+[0-9.]+\s+([0-9.]+)$", out, flags=re.MULTILINE)[-1]) > 0.9
