"""What every stage shares: the record schema and file names, the one prompt format, atomic writes, answer matching and statistics. Imports no other kpref package."""
