"""Build the TensorRT engine of an ONNX model for this board, into edge's engine cache; list or clear the cache.

The engine is what ``--backend tensorrt`` would build on first use (same cache, same key: ONNX
sha256, precision, profiles, TensorRT version, GPU compute capability, L4T release), built ahead of
time so the first camera run starts at once. A plan runs only with the TensorRT version and GPU
that built it: build on the board (or an identical JetPack + module). ``--output`` also copies the
plan and its sidecar (``PLAN`` + ``PLAN.json`` with the edge config and build provenance); the plan
is a plain TensorRT file that ``trtexec --loadEngine`` accepts.

Examples:
  edge-export engine model.onnx                         # fp16 where the GPU has fast fp16
  edge-export engine model.onnx --batch 1:4:8 --output model.plan
  edge-export engine model.onnx --precision int8 --calib-images images/
  edge-export engine --list
  edge-export engine --clear --older-than 30
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path
from typing import Any, Dict, List

from edge.errors import EdgeError
from edge.files import copy_atomic

HELP = "build a TensorRT engine for this board (cached); --list / --clear the engine cache"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``edge-export engine``."""
    parser.add_argument("model", nargs="?", type=Path, help="the ONNX model (not needed with --list / --clear)")
    parser.add_argument("--precision", choices=("fp32", "fp16", "int8"), default=None,
                        help="default: fp16 where the GPU has fast fp16, else fp32 (TensorRT 11: the ONNX's types)")
    parser.add_argument("--workspace", type=int, default=None, metavar="MIB", help="builder scratch memory (1024)")
    parser.add_argument("--batch", default=None, metavar="MIN:OPT:MAX", help="profile of a dynamic batch dimension")
    parser.add_argument("--shape", action="append", default=[], metavar="NAME:MIN:OPT:MAX",
                        help="profile of an input with other dynamic dims, dims joined by x "
                             "(e.g. images:1x3x320x320:1x3x640x640:1x3x640x640); repeat per input")
    parser.add_argument("--calib-images", type=Path, default=None, metavar="DIR", help="images for int8 calibration")
    parser.add_argument("--dla-core", type=int, default=None, metavar="N", help="build for DLA core N (GPU fallback)")
    parser.add_argument("--cuda", choices=("cuda-python", "pycuda"), default=None,
                        help="CUDA binding (default: EDGE_CUDA, else whichever is installed)")
    parser.add_argument("--cache-dir", type=Path, default=None, metavar="DIR",
                        help="engine cache folder (default: $EDGE_CACHE_DIR or ~/.cache/edge, then engines/)")
    parser.add_argument("--output", type=Path, default=None, metavar="PLAN",
                        help="also copy the plan here, with its sidecar next to it (PLAN with .json)")
    parser.add_argument("--force", action="store_true", help="rebuild even when the cache has a valid engine")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--list", action="store_true", help="list the cached engines with their provenance")
    what.add_argument("--clear", action="store_true", help="delete cached engines (timing caches stay)")
    parser.add_argument("--older-than", type=float, default=None, metavar="DAYS", help="with --clear: only these")
    parser.add_argument("--json", action="store_true", help="with --list: print JSON")


def run(args: argparse.Namespace) -> int:
    """Build, list or clear."""
    from edge.tensorrt.cache import EngineCache

    cache = EngineCache(args.cache_dir)
    if args.list:
        rows = cache.cache_info()
        print(json.dumps(rows, indent=2) if args.json else render_list(rows, cache.root))
        return 0
    if args.clear:
        older = None if args.older_than is None else datetime.timedelta(days=args.older_than)
        removed = cache.clear(older)
        age = "" if older is None else f" built more than {args.older_than:g} days ago"
        print(f"removed {len(removed)} engine{'s' if len(removed) != 1 else ''}{age} from {cache.root}")
        return 0
    return build(args, cache.root)


def build(args: argparse.Namespace, cache_root: Path) -> int:
    """Build (or find) the engine of ``args.model`` and report it; copy it to --output."""
    from edge.backends.tensorrt import check_request, engine_from_onnx, open_layer, parse_shape
    from edge.tensorrt.api import import_tensorrt

    if args.model is None:
        raise EdgeError("no model given", fix="edge-export engine MODEL.onnx, or --list / --clear")
    if args.output is not None and args.output.suffix.lower() == ".json":
        raise EdgeError("--output is the plan's path; its sidecar goes next to it as .json",
                        fix="e.g. --output model.plan", where="--output")
    options: Dict[str, Any] = {
        "precision": args.precision, "workspace_mib": args.workspace, "batch": args.batch,
        "shapes": dict(parse_shape(text) for text in args.shape), "dla_core": args.dla_core,
        "calib_images": args.calib_images, "cache_dir": cache_root, "force": args.force, "report": print,
    }
    if args.calib_images is not None and not args.calib_images.is_dir():
        raise EdgeError("calibration image folder not found", fix="give a folder of images",
                        where=str(args.calib_images))
    check_request(args.model, options)  # user errors first, before TensorRT and CUDA are loaded
    trt = import_tensorrt()
    layer = open_layer(args.cuda)
    try:
        with layer.activate():
            plan, sidecar, origin = engine_from_onnx(args.model, options, layer, report=print)
    finally:
        layer.close()
    prov = sidecar.get("provenance") or {}
    print(f"engine: {plan} ({origin}; precision asked {prov.get('precision_asked')}, obtained "
          f"{prov.get('precision_obtained')}; TensorRT {trt.__version__}, compute capability "
          f"{prov.get('compute_capability')}, {prov.get('platform')})")
    if args.output is not None:
        copy_atomic(plan, args.output)
        copy_atomic(plan.with_suffix(".json"), args.output.with_suffix(".json"))
        print(f"wrote {args.output} and {args.output.with_suffix('.json')}")
    return 0


def render_list(rows: List[Dict[str, Any]], root: Path) -> str:
    """One block per cached engine: plan, size, when, what it was built from and for."""
    if not rows:
        return f"no engines in {root}"
    lines = [f"{len(rows)} engine{'s' if len(rows) != 1 else ''} in {root}:"]
    for row in rows:
        prov = row["provenance"]
        lines.append(f"  {Path(row['plan']).name}  {row['size_bytes']:,} bytes  built {row['built_at']}"
                     + ("" if row["sidecar"] == "ok" else f"  sidecar {row['sidecar']}"))
        if prov:
            profiles = ", ".join(f"{name} {'/'.join('x'.join(map(str, s)) for s in shapes)}"
                                 for name, shapes in (prov.get("profiles") or {}).items()) or "static"
            lines.append(f"    from {prov.get('onnx_path')} (sha256 {str(prov.get('onnx_sha256'))[:12]}…)")
            lines.append(f"    {prov.get('precision_asked')} asked, {prov.get('precision_obtained')} obtained; "
                         f"TensorRT {prov.get('tensorrt_version')}, compute capability {prov.get('compute_capability')}"
                         f", {prov.get('platform')}; profiles {profiles}; built in {prov.get('build_seconds')} s")
    return "\n".join(lines)
