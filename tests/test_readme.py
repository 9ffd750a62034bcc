"""The README's functional-API example runs as written."""

import re
from pathlib import Path

import jax

README = Path(__file__).resolve().parents[1] / "README.md"


def test_functional_api_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    namespace: dict = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)
    assert namespace["loss"].shape == () and len(namespace["history"]["train_loss"]) == 5
    assert namespace["out"].shape == (8, 3)


def _row_shape(line: str) -> tuple[str, ...]:
    """Leaf, methods, verdict and, on a failing row, the worst index: what must not drift.

    The digits may drift, and so may the worst index of a passing row: there it
    is float32 rounding noise, which differs between CPUs (SIMD width, exp).
    """
    cells = line.split()
    if cells[0] != "<root>":
        return tuple(cells)
    return (*cells[:4], cells[7] if cells[-1] == "FAIL" else "-", cells[-1])


def test_gradient_check_example_prints_what_the_readme_shows(capsys):
    text = README.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    with jax.enable_x64(False):  # the README runs with JAX's default float32
        exec("import jax, jax.numpy as jnp, funcbp\n" + blocks[1], {})
    printed = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(("check", "<"))]
    shown = [ln for ln in text.splitlines() if ln.startswith(("check_grad grad_f", "<root>"))]
    assert [_row_shape(ln) for ln in printed] == [_row_shape(ln) for ln in shown]


def test_readme_opens_with_the_two_commands():
    commands = re.findall(r"```bash\n# [^\n]*\n([^\n]*)\n```", README.read_text())
    assert commands[0].endswith("funcbp train configs/digits.toml")
    assert commands[1].endswith("python -m pytest -n auto")
    ci = (README.parent / ".ci" / "run").read_text()
    assert commands[1] in ci


def test_user_pieces_example_runs_and_prints_the_report_the_readme_shows(capsys):
    text = README.read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "MISH" in b)
    exec("import jax, jax.numpy as jnp, funcbp\n" + block, {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "check_activation 'mish': PASS" and printed[-1] == "True", printed
    rows = [ln for ln in printed if ln.startswith("f'(z) vs jax.grad")]
    assert len(rows) == 2 and all(ln.endswith("ok") for ln in rows), printed
    assert all(ln in text for ln in printed[:3]), "the README shows another report"
