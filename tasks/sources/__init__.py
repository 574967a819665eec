"""Fact sources (the facts stage): one interface, the packages that ship real facts, users' files, and the made-up world; the relations they ask."""
