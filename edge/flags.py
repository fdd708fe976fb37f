"""The command-line vocabulary for model facts, shared by ``python -m edge.camera`` and ``edge-export``.

The same flag means the same thing everywhere: ``--task``, ``--labels``, ``--preset``,
``--color``, ``--scale``, ``--mean``, ``--std``, ``--resize``, ``--layout`` and ``--config``.
``None`` means "not given": the model's own edge config (or the default) applies.
"""

import argparse
import os
import sys
from typing import Any, Dict, List

from edge.config import PRESETS, TASKS
from edge.errors import EdgeError


def program_name(package: str, script: str) -> str:
    """The command as the user started it, for --help and messages: ``script`` (``edge-export``) when run
    through the installed console script, ``python -m <package>`` otherwise (``edge-export`` in a
    checkout, ``python -m edge_export`` where the package is installed)."""
    launched = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return script if os.path.splitext(launched)[0] == script else f"python -m {package}"


def floats(text: str) -> List[float]:
    """'0.485,0.456,0.406' -> [0.485, 0.456, 0.406] (argparse type)."""
    try:
        return [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def fraction(text: str) -> float:
    """'1/255' or '0.0039' -> float (argparse type)."""
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            return float(num) / float(den)
        return float(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"expected a number like 0.0039 or 1/255, got {text!r}") from None


def add_model_fact_arguments(parser: argparse.ArgumentParser, title: str, layout: bool = False) -> None:
    """Add the model-fact flags as one argument group."""
    group = parser.add_argument_group(title)
    group.add_argument("--config", metavar="FILE", help="edge config file, JSON (or YAML with PyYAML installed)")
    group.add_argument("--task", choices=list(TASKS))
    group.add_argument("--labels", metavar="TXT", help="class names, one per line")
    group.add_argument("--preset", choices=sorted(PRESETS),
                       help="normalisation preset: imagenet, unit (x/255), symmetric (x/127.5-1), raw")
    group.add_argument("--color", choices=["RGB", "BGR", "rgb", "bgr"], help="colour order the model expects")
    group.add_argument("--scale", type=fraction, help="pixel multiplier before mean/std, e.g. 1/255")
    group.add_argument("--mean", type=floats, help="per-channel mean after scaling, e.g. 0.485,0.456,0.406")
    group.add_argument("--std", type=floats, help="per-channel std after scaling, e.g. 0.229,0.224,0.225")
    group.add_argument("--resize", choices=["stretch", "letterbox", "center_crop"])
    if layout:
        group.add_argument("--layout", choices=["NCHW", "NHWC", "nchw", "nhwc"], help="input layout")


def config_overrides(args: argparse.Namespace) -> Dict[str, Any]:
    """Edge config fields given on the command line, as a partial config dict (None where absent)."""
    preprocess: Dict[str, Any] = dict(PRESETS[args.preset]) if getattr(args, "preset", None) else {}
    for key in ("color", "scale", "mean", "std", "resize"):
        value = getattr(args, key, None)
        if value is not None:
            preprocess[key] = value.upper() if key == "color" else value
    overrides: Dict[str, Any] = {"task": getattr(args, "task", None), "preprocess": preprocess or None}
    if getattr(args, "layout", None):
        overrides["input"] = {"layout": args.layout.upper()}
    if getattr(args, "labels", None):
        overrides["labels"] = read_labels(args.labels)
    return overrides


def read_labels(path: str) -> List[str]:
    """Class names from a text file, one per line (blank lines ignored)."""
    try:
        with open(path, encoding="utf-8") as handle:
            labels = [line.strip() for line in handle if line.strip()]
    except OSError as exc:
        raise EdgeError(f"cannot read labels file ({exc.strerror or exc})", fix="check the path", where=path) from None
    except UnicodeDecodeError as exc:
        raise EdgeError(f"labels file is not UTF-8 text (byte {exc.start} cannot be decoded)",
                        fix="give a text file with one class name per line, saved as UTF-8", where=path) from None
    if not labels:
        raise EdgeError("labels file is empty", fix="one class name per line", where=path)
    return labels
