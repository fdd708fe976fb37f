"""Latency benchmarks for edge: the same stages the camera app runs, timed against CPU baselines."""
