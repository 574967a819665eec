"""params.yaml, typed: one module per section; `full` is the whole file."""
