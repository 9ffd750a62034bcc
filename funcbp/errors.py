"""What funcbp raises for bad input, by kind; each is a ``ValueError``.

The command line turns exactly these into one line on standard error and exit
status 2; anything else escaping it is a bug in funcbp, shown as a traceback
with exit status 1.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A run configuration (file, ``--set`` or command-line flag) that cannot run; the
    message names the key."""


class DataError(ValueError):
    """Data that cannot be read or do not fit the network; the message names the array
    or file and what is wrong."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit what it is loaded into."""
