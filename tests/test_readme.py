"""The README opens with the two commands that set everything up, which CI runs."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_opens_with_the_two_commands():
    commands = re.findall(r"```bash\n# [^\n]*\n([^\n]*)\n```", README.read_text())
    assert commands[0].endswith("funcbp train configs/digits.toml")
    assert commands[1].endswith("python -m pytest -n auto")
    ci = (README.parent / ".ci" / "run").read_text()
    assert commands[1] in ci


def test_the_readme_links_to_pages_that_exist():
    links = re.findall(r"\]\((docs/[^)#]+)\)", README.read_text())
    assert len(links) >= 12, links
    for link in links:
        assert (README.parent / link).is_file(), link
