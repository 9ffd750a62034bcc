"""Process plumbing, private to funcbp: shared compiled programs, the compilation cache,
the compile clock, XLA:CPU options and whole-file writes. Nothing here is public API."""
