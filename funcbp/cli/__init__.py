"""The ``funcbp`` command-line application: run files, a configured run, progress, plots
and the commands. Nothing else in funcbp imports it."""
