"""Write a Triton Inference Server model-repository entry (ONNX Runtime backend) for a model.

Writes REPOSITORY/NAME/config.pbtxt, REPOSITORY/NAME/VERSION/model.onnx (a hard link when
possible, else a copy), REPOSITORY/NAME/edge_config.json and, for classifiers, labels.txt.
max_batch_size is 0 when the ONNX batch dimension is fixed; with a dynamic one it is
--max-batch-size (default 8) and dims leave the batch out. Triton does not preprocess: clients
must apply the edge config's preprocessing, which the config records. An entry holding a
different model is kept unless --force.

Examples:
  edge-export triton model.onnx --repository models/
  edge-export triton model.onnx --repository models/ --tensorrt-accelerator fp16 --instances 2
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.flags import add_model_fact_arguments, config_overrides
from edge.model import resolve_config
from edge.onnxfile import read_onnx

from ..triton import ACCELERATOR_PRECISIONS, KINDS, write_triton_entry

HELP = "write a Triton model-repository entry (config.pbtxt + model) for a model"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``edge-export triton``."""
    parser.add_argument("model", type=Path, help="the .onnx model (with its edge config)")
    parser.add_argument("--repository", type=Path, required=True, metavar="DIR", help="the Triton model repository")
    parser.add_argument("--name", help="model name in the repository (default: the edge config's name)")
    parser.add_argument("--version", type=int, default=1, help="model version folder (default 1)")
    parser.add_argument("--max-batch-size", type=int, metavar="N",
                        help="largest batch Triton forms (default: 8 with a dynamic batch dim, else 0)")
    parser.add_argument("--instances", type=int, default=1, metavar="N", help="model instances (default 1)")
    parser.add_argument("--kind", choices=sorted(KINDS), default="gpu", help="where instances run (default gpu)")
    parser.add_argument("--tensorrt-accelerator", choices=ACCELERATOR_PRECISIONS, metavar="fp16|fp32",
                        help="let ONNX Runtime run the graph through TensorRT at this precision")
    parser.add_argument("--force", action="store_true", help="replace an entry that holds a different model")
    add_model_fact_arguments(parser, "edge config overrides")


def run(args: argparse.Namespace) -> int:
    """Write the entry and print its folder."""
    info = read_onnx(args.model)
    config = resolve_config(info, config_overrides(args), args.config)
    entry = write_triton_entry(args.model, config, info, repository=args.repository, name=args.name,
                               version=args.version, max_batch_size=args.max_batch_size, instances=args.instances,
                               kind=args.kind, tensorrt_precision=args.tensorrt_accelerator, force=args.force)
    print(f"wrote {entry} (config.pbtxt, {args.version}/model.onnx, edge_config.json)")
    print("note: Triton does not preprocess; clients must apply the preprocessing recorded in config.pbtxt")
    return 0
