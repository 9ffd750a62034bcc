"""``python -m funcbp``: the same as the ``funcbp`` command."""

import sys

from funcbp.cli import main

sys.exit(main())
