"""Research probes: each answers one question about why a model learns or does not (see README.md).

They live apart from the benchmarks a user runs (``benchmarks/*.py``), and their cells may be
probe-local variants that the library does not ship.
"""
