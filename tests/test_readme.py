"""The README's functional-API example runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_functional_api_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    namespace: dict = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)
    assert namespace["loss"].shape == () and len(namespace["history"]["train_loss"]) == 5
    assert namespace["out"].shape == (8, 3)


def test_readme_opens_with_the_two_commands():
    commands = re.findall(r"```bash\n# [^\n]*\n([^\n]*)\n```", README.read_text())
    assert commands[0].endswith("funcbp train configs/digits.toml")
    assert commands[1].endswith("python -m pytest")
    ci = (README.parent / ".ci" / "run").read_text()
    assert commands[1] in ci
