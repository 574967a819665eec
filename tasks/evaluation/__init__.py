"""Evaluation (the evaluate stages and `kpref evaluate`): answering items, public benchmark loaders, shards over an engine, kept answers."""
