"""The data quality gate (the validate stage): the checks of each row its suites run."""
