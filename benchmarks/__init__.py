"""oarsched's benchmarks: workloads, measurements, pytest-benchmark suites and the results report.

``python -m pytest benchmarks --benchmark-enable`` runs the suites (see
``conftest.py`` for the markers); ``python -m benchmarks.report`` regenerates
``benchmarks/results/`` (tables and plots).
"""
