"""Synthesis (the synthesize stage): one recipe per knowledge-conflict setting, and the long chains of edits."""
