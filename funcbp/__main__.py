"""``python -m funcbp``: the same as the ``funcbp`` command."""

from funcbp.cli.main import run

run()
