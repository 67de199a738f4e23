"""Benchmarks: each script prints its figures as JSON; `python -m bench` runs them all."""
