"""kpref stage logic: one module per stage plus the shared schema, prompt and metrics."""
