"""``python -m export``: turn trained models into ONNX files that edge runs with no extra flags."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import List, Optional

from edge.config import EdgeConfig, load_json
from edge.errors import EdgeError
from edge.model import check_against_graph
from edge.onnxfile import embed_config, read_onnx
from export.tflite import sha256_file, tflite_to_onnx


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m export", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    onnx = commands.add_parser("onnx", help="convert a model to ONNX and embed its edge config",
                               description="Convert SOURCE (.tflite, or an existing .onnx) to ONNX with the edge "
                               "config embedded in its metadata_props.")
    onnx.add_argument("source", type=Path, help="the trained model: .tflite or .onnx")
    onnx.add_argument("--config", type=Path, required=True, help="edge config JSON to embed")
    onnx.add_argument("--output", type=Path, help="output .onnx (default: SOURCE with .onnx suffix)")
    return parser


def export_onnx(source: Path, config_path: Path, output: Optional[Path]) -> Path:
    """Convert ``source`` and embed the validated config; returns the written path."""
    output = output or source.with_suffix(".onnx")
    if not output.parent.is_dir():
        raise EdgeError("output folder does not exist", fix=f"mkdir -p {output.parent}", where=str(output))
    config = EdgeConfig.from_dict(load_json(config_path), where=str(config_path))
    suffix = source.suffix.lower()
    with tempfile.TemporaryDirectory(dir=str(output.parent)) as scratch:
        if suffix == ".tflite":
            converted = tflite_to_onnx(source, Path(scratch) / "converted.onnx")
        elif suffix == ".onnx":
            converted = source
        else:
            raise EdgeError(f"cannot export '{suffix}' files yet", fix="give a .tflite or .onnx model",
                            where=str(source))
        check_against_graph(config, read_onnx(converted))
        embed_config(converted, config, output)
    return output


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point; user errors print one line and return 2."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "onnx":
            written = export_onnx(args.source, args.config, args.output)
            print(f"wrote {written} (sha256 {sha256_file(written)})")
    except EdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
