"""Write a DeepStream Gst-nvinfer config (config_infer_primary_<name>.txt) and labels.txt for a model.

The normalisation (net-scale-factor, offsets), colour format, input dims and order, resize
(letterbox = maintain-aspect-ratio + symmetric-padding), outputs and thresholds come from the
model's edge config. nvinfer has one scale factor for all channels: a per-channel std is an
error unless --allow-approximate-std. Detectors whose outputs nvinfer cannot parse itself get
commented-out custom-parser placeholders. Relative paths in the file are from its folder.

Examples:
  edge-export deepstream model.onnx --output-dir deepstream/
  edge-export deepstream model.onnx --precision int8 --calib-file calib.txt --batch-size 4
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.flags import add_model_fact_arguments, config_overrides
from edge.model import resolve_config
from edge.onnxfile import read_onnx

from ..deepstream import PRECISIONS, write_deepstream

HELP = "write a DeepStream nvinfer config and labels file for a model"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``edge-export deepstream``."""
    parser.add_argument("model", type=Path, help="the .onnx model (with its edge config)")
    parser.add_argument("--output-dir", type=Path, default=Path("."), help="where to write the files (default: .)")
    parser.add_argument("--precision", choices=sorted(PRECISIONS), default="fp16",
                        help="TensorRT precision nvinfer builds the engine in (default fp16)")
    parser.add_argument("--batch-size", type=int, default=1, metavar="N", help="frames per inference (default 1)")
    parser.add_argument("--engine", type=Path, metavar="PATH",
                        help="the TensorRT engine file (default: beside the ONNX, named as nvinfer names it)")
    parser.add_argument("--calib-file", type=Path, metavar="PATH", help="INT8 calibration table (needed for int8)")
    parser.add_argument("--allow-approximate-std", action="store_true",
                        help="use the mean std when the channels' std differ (prints the worst-case error)")
    add_model_fact_arguments(parser, "edge config overrides")


def run(args: argparse.Namespace) -> int:
    """Write the files and print their paths, warnings and notices."""
    info = read_onnx(args.model)
    config = resolve_config(info, config_overrides(args), args.config)
    written = write_deepstream(args.model, config, info, output_dir=args.output_dir, precision=args.precision,
                               batch_size=args.batch_size, engine=args.engine, calib_file=args.calib_file,
                               allow_approximate_std=args.allow_approximate_std, report=print)
    for path in written:
        print(f"wrote {path}")
    return 0
