"""``edge-export``: turn trained models into ONNX files that edge runs with no extra flags.

Commands: onnx (convert + embed the edge config + check), quantize (fp16 / int8 copies), inspect,
verify, engine (build, list or clear TensorRT engines for this board), deepstream, triton.
Each command is a module in export/commands/ with ``add_arguments(parser)`` and ``run(args)``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import List, Optional

from edge.errors import EdgeError
from edge.flags import program_name

COMMANDS = ("onnx", "quantize", "inspect", "verify", "engine", "deepstream", "triton")


def _plain(doc: str) -> str:
    """A docstring as --help shows it: reST inline literals (``x``) without their backticks."""
    return doc.replace("``", "")


def build_parser() -> argparse.ArgumentParser:
    """The parser with one sub-command per module in export/commands/."""
    parser = argparse.ArgumentParser(prog=program_name(__package__, "edge-export"),
                                     description=_plain(__doc__.split("\n\n")[0]))
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    for name in COMMANDS:
        module = importlib.import_module(f".commands.{name}", __package__)
        sub = commands.add_parser(name, help=_plain(module.HELP), description=_plain(module.__doc__ or ""),
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point; user errors print one line and return 2."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except EdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stopped (Ctrl-C)", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader stopped reading (edge-export inspect ... | head): not an error here
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush does not fail again
        return 0


if __name__ == "__main__":
    sys.exit(main())
