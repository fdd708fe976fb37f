"""Check that backends agree: run the same inputs through each and compare every output.

The first backend is the reference; each other backend gets a table of per-output
statistics (max/mean absolute and relative error, cosine similarity, top-1 agreement)
judged with the default tolerance of --precision (--atol/--rtol override it).
Exit status: 0 when every output agrees, 1 when any disagrees, 2 for a user error.

Inputs: "random" (default) draws seeded uniform pixels and maps them through the edge
config's scale/mean/std, so values span the range the model sees (U(0,1) for a model
without a config); an image, folder, video or source URI goes through the model's own
preprocessing (needs an edge config).

Examples:
  edge-export verify model.onnx --backends onnxruntime-cpu,opencv
  edge-export verify model.onnx --backends onnxruntime-cpu,onnxruntime-tensorrt --precision fp16
  edge-export verify model.onnx --backends onnxruntime-cpu,opencv --inputs photos/ --count 10
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from edge.backends import BACKENDS, create_backend
from edge.config import EdgeConfig
from edge.errors import EdgeError
from edge.model import resolve_config
from edge.onnxfile import OnnxInfo, read_onnx

from ..checks import dynamic_row_outputs
from ..compare import TOLERANCES, Tolerance, combine, compare, format_table, passed

HELP = "run the same inputs through several backends and compare every output"

Feeds = Dict[str, np.ndarray]
BackendRun = Tuple[str, List[Dict[str, np.ndarray]]]  # (backend label, outputs per input set)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``edge-export verify``."""
    parser.add_argument("file", type=Path, help="the ONNX model to check")
    parser.add_argument("--backends", default="onnxruntime-cpu,opencv",
                        help="comma-separated backends; the first is the reference and runs at fp32 "
                        f"(default: %(default)s; known: {', '.join(BACKENDS)})")
    parser.add_argument("--precision", choices=sorted(TOLERANCES), default="fp32",
                        help="precision the candidates run at; picks the default tolerance (default: %(default)s)")
    parser.add_argument("--inputs", default="random",
                        help="'random', or an image, folder, video or source URI (default: %(default)s)")
    parser.add_argument("--count", type=int, default=3,
                        help="random input sets, or at most this many frames of --inputs (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default: %(default)s)")
    parser.add_argument("--atol", type=float, help="absolute tolerance (default: the precision's)")
    parser.add_argument("--rtol", type=float, help="relative tolerance, times |reference| (default: the precision's)")


def run(args: argparse.Namespace) -> int:
    """Verify ``args.file`` across ``args.backends``; 0 all agree, 1 some output disagrees."""
    names = parse_backends(args.backends)
    tolerance = pick_tolerance(args.precision, args.atol, args.rtol)
    if args.count < 1:
        raise EdgeError(f"--count {args.count} is not a positive number", fix="pass --count 1 or more",
                        where="--count")
    info = read_onnx(args.file)
    feeds, described = make_inputs(info, args.inputs, args.count, args.seed)
    print(f"{info.path.name}: {described}")
    print(f"tolerance {args.precision}: atol {tolerance.atol:g}, rtol {tolerance.rtol:g}, "
          f"cosine >= {tolerance.min_cosine:g}, top-1 >= {tolerance.min_top1:.0%}")
    runs = run_backends(info.path, names, feeds, args.precision)
    unordered = dynamic_row_outputs(info.inputs[0].shape if info.inputs else (),
                                    [(o.name, o.shape) for o in info.outputs])
    text, code = judge(runs, tolerance, unordered)
    print(text)
    return code


def parse_backends(text: str) -> List[str]:
    """'a,b' -> ['a', 'b']; EdgeError for unknown names or fewer than two."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    for name in names:
        if name not in BACKENDS and name != "auto":
            raise EdgeError(f"unknown backend '{name}'", fix=f"use two or more of: {', '.join(BACKENDS)}",
                            where="--backends")
    if len(names) < 2:
        raise EdgeError(f"verify needs two backends to compare, got {len(names)}",
                        fix="pass e.g. --backends onnxruntime-cpu,opencv (the first is the reference)",
                        where="--backends")
    return names


def pick_tolerance(precision: str, atol: Optional[float] = None, rtol: Optional[float] = None) -> Tolerance:
    """The precision's default tolerance with --atol/--rtol applied."""
    for flag, value in (("--atol", atol), ("--rtol", rtol)):
        if value is not None and not value >= 0:
            raise EdgeError(f"{flag} {value} is negative or not a number", fix=f"pass {flag} 0 or more", where=flag)
    tolerance = TOLERANCES[precision]
    changes = {k: v for k, v in (("atol", atol), ("rtol", rtol)) if v is not None}
    return dataclasses.replace(tolerance, **changes) if changes else tolerance


# ------------------------------------------------------------------------------------------ inputs
def _static_shape(shape: Sequence[object]) -> Tuple[int, ...]:
    """Dynamic dimensions become 1 (batch 1; other dynamic dims have no better guess)."""
    return tuple(d if isinstance(d, int) else 1 for d in shape)


def random_inputs(info: OnnxInfo, config: Optional[EdgeConfig], count: int, seed: int) -> List[Feeds]:
    """``count`` seeded input sets: image inputs as preprocessed uniform pixels, others U(0,1)."""
    rng = np.random.default_rng(seed)
    sets: List[Feeds] = []
    for _ in range(count):
        feeds: Feeds = {}
        for spec in info.inputs:
            if config is not None and spec.name == config.input.name:
                feeds[spec.name] = _random_image(rng, config).astype(spec.dtype)
            elif np.issubdtype(spec.dtype, np.floating):
                feeds[spec.name] = rng.random(_static_shape(spec.shape)).astype(spec.dtype)
            else:  # index-like inputs: zeros are always in range
                feeds[spec.name] = np.zeros(_static_shape(spec.shape), spec.dtype)
        sets.append(feeds)
    return sets


def _random_image(rng: np.random.Generator, config: EdgeConfig) -> np.ndarray:
    """Uniform uint8 pixels in the config's input shape, mapped by (pixel * scale - mean) / std."""
    spec, pre = config.input, config.preprocess
    pixels = rng.integers(0, 256, size=_static_shape(spec.shape), dtype=np.uint8)
    if spec.dtype == "uint8":
        return pixels
    channels = spec.channels
    view = (1, channels, 1, 1) if spec.layout == "NCHW" else (1, 1, 1, channels)
    mean = np.asarray(pre.mean[:channels], np.float64).reshape(view)
    std = np.asarray(pre.std[:channels], np.float64).reshape(view)
    return (pixels * pre.scale - mean) / std


def image_inputs(info: OnnxInfo, config: EdgeConfig, uri: str, count: int) -> List[Feeds]:
    """Up to ``count`` frames of ``uri`` through the model's own preprocessing."""
    from edge.preprocess import Preprocessor
    from edge.sources import open_source

    others = [spec.name for spec in info.inputs if spec.name != config.input.name]
    if others:
        raise EdgeError(f"images feed one input, but the model also has {', '.join(others)}",
                        fix="use --inputs random", where=str(info.path))
    preprocess = Preprocessor.from_config(config)
    sets: List[Feeds] = []
    with open_source(uri) as source:
        for frame in source:
            tensor, _ = preprocess(frame.image)
            sets.append({config.input.name: tensor.copy()})  # the preprocessor reuses its buffer
            if len(sets) >= count:
                break
    if not sets:
        raise EdgeError("the input source gave no frames", fix="check --inputs (an image, a folder with images, "
                        "a video, or 'random')", where="--inputs")
    return sets


def make_inputs(info: OnnxInfo, inputs: str, count: int, seed: int) -> Tuple[List[Feeds], str]:
    """The input sets for ``--inputs`` and one line describing them."""
    if inputs == "random":
        try:
            config: Optional[EdgeConfig] = resolve_config(info)
            how = "pixels mapped by the edge config's scale/mean/std"
        except EdgeError as exc:
            config, how = None, f"U(0,1), no usable edge config ({exc.what})"
        return random_inputs(info, config, count, seed), f"{count} random input sets (seed {seed}), {how}"
    config = resolve_config(info)
    sets = image_inputs(info, config, inputs, count)
    return sets, f"{len(sets)} frames of {inputs} through the model's preprocessing"


# ------------------------------------------------------------------------------------------ running
def run_backends(path: Path, names: Sequence[str], feeds: Sequence[Feeds], precision: str) -> List[BackendRun]:
    """Outputs of every input set on every backend; the reference (first) runs at fp32."""
    runs: List[BackendRun] = []
    with contextlib.ExitStack() as stack:
        for position, name in enumerate(names):
            options = {"precision": "fp32" if position == 0 else precision}
            backend = stack.enter_context(create_backend(path, name, options=options))
            label = backend.describe() if name != backend.name else name
            outputs = [{k: np.array(v, copy=True) for k, v in backend.infer(f).items()} for f in feeds]
            runs.append((label, outputs))
    return runs


def judge(runs: Sequence[BackendRun], tolerance: Tolerance, unordered: Sequence[str] = ()) -> Tuple[str, int]:
    """Compare each candidate run with the first (the reference): (report text, exit code 0 or 1).

    runs: (backend label, outputs of each input set) in order, the reference first.
    unordered: outputs with a dynamic row count (detections), compared as unordered rows.
    """
    (reference_name, reference), candidates = runs[0], runs[1:]
    blocks: List[str] = []
    failed: List[str] = []
    for name, outputs in candidates:
        if len(outputs) != len(reference):
            raise ValueError(f"{name} ran {len(outputs)} input sets, the reference {len(reference)}")
        stats = combine([compare(ref, cand, tolerance, unordered) for ref, cand in zip(reference, outputs)])
        blocks.append(format_table(stats, reference_name, name))
        if not passed(stats):
            failed.append(f"{name} ({', '.join(s.name for s in stats if not s.passed)})")
    if failed:
        verdict = f"verify: FAIL, disagrees with {reference_name}: {'; '.join(failed)}"
    else:
        verdict = f"verify: PASS, {len(candidates)} backend(s) agree with {reference_name}"
    return "\n\n".join(blocks + [verdict]), 1 if failed else 0
