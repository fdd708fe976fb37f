"""Latency benchmarks for edge: the same stages the camera app runs, timed against CPU baselines."""


def help_text(doc: str) -> str:
    """A module docstring's first paragraph as ``--help`` prints it: RST literals (````x````) as plain ``x``."""
    return doc.split("\n\n")[0].replace("``", "")
