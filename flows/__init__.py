"""Prefect flows, deployments and the `kpref` command line."""
