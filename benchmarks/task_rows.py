"""The measuring of ``python -m benchmarks.tasks``: its inputs, the e2e and bare ONNX Runtime rows timed in
interleaved blocks, and the overlay rows (see benchmarks.tasks for what is timed and why)."""

import dataclasses
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edge.errors import EdgeError

from .stats import brief
from .timing import interleaved_us

FRAME_WH = (1280, 720)
SAMPLE = "astronaut"
#: the benchmark's rows: name -> (kind, input); kind "model" is a zoo model, "pipeline" a zoo pipeline
CASES: Dict[str, Tuple[str, str]] = {
    "selfie_segmentation": ("model", "frame"),
    "face_landmark": ("model", "face crop"),
    "hand_landmark_lite": ("model", "face crop"),
    "palm_detection_lite": ("model", "frame"),
    "face_detection_full_range": ("model", "frame"),
    "digit_embedder": ("model", "digit crop"),
    "face_mesh": ("pipeline", "frame"),
    "hands": ("pipeline", "frame"),
    "digit_recognition": ("pipeline", "digits frame"),
}
OVERLAYS = ("class_map", "instance_masks", "keypoints", "identities")
MASKS_TARGET_P50_MS = 3.0
INSTANCE_MASKS, MASK_SIDE = 10, 200


# ---------------------------------------------------------------------------------------------- inputs
def inputs() -> Dict[str, np.ndarray]:
    """The benchmark's BGR inputs by kind: "frame", "face crop", "digits frame", "digit crop"."""
    import cv2

    from edge.samples import ASTRONAUT_FACE_XYXY, load_sample
    from edge.sources import open_source

    sample = load_sample(SAMPLE)
    x0, y0, x1, y1 = ASTRONAUT_FACE_XYXY
    margin = 0.25 * (x1 - x0)
    face = sample[int(y0 - margin):int(y1 + margin), int(x0 - margin):int(x1 + margin)].copy()
    with open_source("demo://?scene=digits&frames=31") as source:
        for frame in source:  # frame 30, as benchmarks.detect uses
            digits = frame
    dx0, dy0, dx1, dy1 = digits.truth["objects_xyxy"][0]
    cx, cy, half = (dx0 + dx1) / 2, (dy0 + dy1) / 2, 0.65 * max(dx1 - dx0, dy1 - dy0)  # scale 1.3, square
    digit = digits.image[max(0, int(cy - half)):int(cy + half), max(0, int(cx - half)):int(cx + half)].copy()
    return {"frame": cv2.resize(sample, FRAME_WH, interpolation=cv2.INTER_LINEAR), "face crop": face,
            "digits frame": digits.image, "digit crop": digit}


def _describe_input(kind: str, image: np.ndarray) -> str:
    source = {"frame": f"{SAMPLE}", "face crop": f"{SAMPLE} face crop", "digits frame": "demo digits",
              "digit crop": "demo digit crop"}[kind]
    return f"{source} {image.shape[1]}x{image.shape[0]}"


# ---------------------------------------------------------------------------------------------- timing
def blocked_us(fns: Sequence[Callable[[], object]], count: int, block: int, warmup: int = 20) -> List[np.ndarray]:
    """Per-call microseconds of several callables, ``count`` each, run in blocks of ``block`` calls of one
    callable, the order of the callables reversed every round (A B, B A, ...). Sample i of every callable
    comes from the same round, so they pair. block=1 is benchmarks.timing.interleaved_us."""
    if block <= 1:
        return interleaved_us(fns, count, warmup)
    for fn in fns:
        for _ in range(warmup):
            fn()
    out = [np.empty(count) for _ in fns]
    forward = list(zip(out, fns))
    backward = forward[::-1]
    clock = time.perf_counter
    done, round_index = 0, 0
    while done < count:
        stop = min(count, done + block)
        for samples, fn in forward if round_index % 2 == 0 else backward:
            for i in range(done, stop):
                start = clock()
                fn()
                samples[i] = clock() - start
        done, round_index = stop, round_index + 1
    return [samples * 1e6 for samples in out]


def _on_copies_us(cases: Sequence[Tuple[np.ndarray, Callable[[np.ndarray], object]]], count: int,
                  warmup: int = 20) -> List[np.ndarray]:
    """Per-call microseconds of ``fn(scene)`` for each (frame, fn), interleaved call by call (order reversed
    every other round), each call on a fresh copy of its frame; the copy is made outside the timed call."""
    scenes = [frame.copy() for frame, _ in cases]
    for _ in range(warmup):
        for scene, (frame, fn) in zip(scenes, cases):
            np.copyto(scene, frame)
            fn(scene)
    out = [np.empty(count) for _ in cases]
    order = list(range(len(cases)))
    clock = time.perf_counter
    for i in range(count):
        for k in order if i % 2 == 0 else order[::-1]:
            frame, fn = cases[k]
            scene = scenes[k]
            np.copyto(scene, frame)
            start = clock()
            fn(scene)
            out[k][i] = clock() - start
    return [samples * 1e6 for samples in out]


def _ms(samples_us: np.ndarray) -> Dict[str, float]:
    stats = brief(samples_us, fields=("min", "p50", "p95", "mean"))
    return {"p50_ms": stats["p50_us"] / 1e3, "p95_ms": stats["p95_us"] / 1e3, "mean_ms": stats["mean_us"] / 1e3,
            "min_ms": stats["min_us"] / 1e3, "n": stats["n"]}


# ---------------------------------------------------------------------------------------------- the paths
@dataclasses.dataclass
class Case:
    """One row to time: edge's call and the bare runtime calls on the tensors edge made."""

    name: str
    kind: str
    task: str
    input: str
    edge: Callable[[], Any]
    bare: Callable[[], Any]
    timings: Callable[[], Dict[str, float]]  # edge's stage times of the last call
    found: int
    bare_runs: int  # session.run calls per bare call (pipelines: 1 + crops)
    session_options: Dict[str, Any]
    close: Callable[[], None]


def _load(threads: Optional[int]) -> Callable[[str, bool], Any]:
    from edge.model import Model

    return lambda name, first=True: Model(name, backend="onnxruntime-cpu", threads=threads)


def bare_session(model: Any) -> Tuple[Any, Dict[str, Any]]:
    """A new onnxruntime.InferenceSession on the model's file, with the session options and provider of edge's
    onnxruntime-cpu backend for it; and those options as plain values."""
    import onnxruntime

    options = model.backend._session_options()  # the backend's own recipe: the same threads and optimisation
    session = onnxruntime.InferenceSession(str(model.path), sess_options=options,
                                           providers=["CPUExecutionProvider"])
    facts = {"intra_op_num_threads": options.intra_op_num_threads,
             "inter_op_num_threads": options.inter_op_num_threads,
             "graph_optimization_level": str(options.graph_optimization_level).split(".")[-1],
             "execution_mode": str(options.execution_mode).split(".")[-1],
             "providers": list(session.get_providers())}
    return session, facts


def _tensor_run(model: Any, session: Any, tensor: np.ndarray) -> Callable[[], Any]:
    names = [o.name for o in model.backend.outputs]
    feeds = {model.config.input.name: tensor}
    return lambda: session.run(names, feeds)


def build_case(name: str, images: Dict[str, np.ndarray], threads: Optional[int] = None) -> Case:
    """The e2e and bare callables of one row of CASES (models opened here; call ``case.close()``)."""
    if name not in CASES:
        raise EdgeError(f"unknown model or pipeline '{name}'", fix=f"use one of: {', '.join(CASES)}",
                        where="--models")
    kind, input_kind = CASES[name]
    image = images[input_kind]
    load = _load(threads)
    if kind == "model":
        model = load(name, True)
        try:
            tensor = model.preprocess(image)[0].copy()  # the preprocessor reuses its buffer
            session, facts = bare_session(model)
            found = len(model(image))
        except BaseException:
            model.close()
            raise
        return Case(name, kind, model.task, _describe_input(input_kind, image), lambda: model(image),
                    _tensor_run(model, session, tensor), lambda: dict(model.last_timings_ms), found, 1, facts,
                    model.close)
    from edge.cascade import Cascade, open_pipeline

    built = open_pipeline(None, load, pipeline=name)
    try:
        cascade = built if isinstance(built, Cascade) else built.model  # a Recognizer wraps its Cascade
        detector, second = cascade.detector, cascade.model
        tensor = detector.preprocess(image)[0].copy()
        crops = cascade.crops(image, detector(image))
        crop_tensors = [second.preprocess(crop)[0].copy() for _, _, crop in crops]
        first_session, facts = bare_session(detector)
        second_session, _ = bare_session(second)
        runs = [_tensor_run(detector, first_session, tensor)] + [_tensor_run(second, second_session, t)
                                                                 for t in crop_tensors]
        found = len(built(image))
    except BaseException:
        built.close()
        raise

    def bare() -> List[Any]:
        return [run() for run in runs]

    # a cascade runs its detector stage by stage (the detector's own last_timings_ms stay those of the call
    # above): its one stage time is the second stage's (crops, second model, mapping back)
    return Case(name, kind, built.task, _describe_input(input_kind, image), lambda: built(image), bare,
                lambda: dict(cascade.last_timings_ms), found, len(runs), facts, built.close)


def measure_case(case: Case, count: int, block: int, warmup: int = 20) -> Dict[str, Any]:
    """One row: e2e and bare p50/p95, their paired difference, and edge's own stage split (medians)."""
    stages: List[Dict[str, float]] = []

    def edge_call() -> None:
        case.edge()
        stages.append(case.timings())

    edge_us, bare_us = blocked_us([edge_call, case.bare], count, block, warmup)
    stages = stages[warmup:]
    keys = [key for key in stages[0]] if stages else []
    return {
        "name": case.name, "kind": case.kind, "task": case.task, "input": case.input, "found": case.found,
        "bare_runs": case.bare_runs, "e2e": _ms(edge_us), "bare": _ms(bare_us),
        "overhead_p50_ms": float(np.median(edge_us) - np.median(bare_us)) / 1e3,
        # paired: the median of per-round differences, not the difference of medians
        "overhead_paired_ms": float(np.median(edge_us - bare_us)) / 1e3,
        "edge_stages_p50_ms": {key: float(np.median([s[key] for s in stages if key in s])) for key in keys},
        "session_options": case.session_options,
    }


# ---------------------------------------------------------------------------------------------- overlays
def instance_masks(frame_wh: Tuple[int, int] = FRAME_WH, count: int = INSTANCE_MASKS, side: int = MASK_SIDE,
                   seed: int = 0) -> Any:
    """A Segmentation of ``count`` instances, each a random blob (an ellipse) filling a side x side box at a
    random place in the frame, random classes and scores; deterministic for a seed."""
    from edge.results import Detections, Segmentation

    rng = np.random.default_rng(seed)
    width, height = frame_wh
    corners = np.stack([rng.integers(0, width - side + 1, count), rng.integers(0, height - side + 1, count)], 1)
    boxes = np.concatenate([corners, corners + side], axis=1).astype(np.float32)
    masks = np.zeros((count, height, width), bool)
    yy, xx = np.mgrid[0:side, 0:side]
    for i, (x, y) in enumerate(corners):
        ax, ay = rng.uniform(0.6, 1.0, 2) * side / 2
        masks[i, y:y + side, x:x + side] = ((xx - side / 2) / ax) ** 2 + ((yy - side / 2) / ay) ** 2 <= 1.0
    detections = Detections(boxes, rng.uniform(0.3, 1.0, count).astype(np.float32),
                            rng.integers(0, 80, count).astype(np.int64))
    return Segmentation(instances=detections, masks=masks)


def overlay_results(images: Dict[str, np.ndarray], threads: Optional[int] = None) -> Dict[str, Tuple[np.ndarray, Any]]:
    """(frame, result) per overlay case: real results of the zoo models on the benchmark's frames."""
    from edge.cascade import open_pipeline

    load = _load(threads)
    out: Dict[str, Tuple[np.ndarray, Any]] = {}
    with load("selfie_segmentation", True) as model:
        out["class_map"] = (images["frame"], model(images["frame"]))
    out["instance_masks"] = (images["frame"], instance_masks())
    with open_pipeline(None, load, pipeline="face_mesh") as face_mesh:
        out["keypoints"] = (images["frame"], face_mesh(images["frame"]))
    with open_pipeline(None, load, pipeline="digit_recognition") as digits:
        out["identities"] = (images["digits frame"], digits(images["digits frame"]))
    return out


def _size(result: Any) -> str:
    from edge.results import Embeddings, Keypoints, Segmentation

    if isinstance(result, Segmentation):
        if result.class_map is not None:
            return f"class map, {100.0 * (1.0 - result.class_fractions().get(0, 0.0)):.1f}% foreground"
        return f"{len(result)} masks of {MASK_SIDE}x{MASK_SIDE}"
    if isinstance(result, Keypoints):
        return f"{len(result)} x {result.points_xy.shape[1]} points"
    if isinstance(result, Embeddings):
        named = sum(1 for name in (result.identities or []) if name is not None)
        return f"{len(result)} boxes, {named} named"
    return type(result).__name__


def overlay_rows(images: Dict[str, np.ndarray], count: int, overlays: Sequence[str] = OVERLAYS,
                 threads: Optional[int] = None, warmup: int = 20) -> List[Dict[str, Any]]:
    """p50/p95 of Annotator().annotate per overlay case, each call on a fresh copy of the frame and a fresh
    result object (results cache derived values, e.g. the class fractions of the legend)."""
    from edge.overlay import Annotator

    results = overlay_results(images, threads)
    annotator = Annotator()
    cases = []
    for name in overlays:
        frame, result = results[name]
        cases.append((frame, lambda scene, r=result: annotator.annotate(scene, dataclasses.replace(r))))
    samples = _on_copies_us(cases, count, warmup)
    rows = []
    for name, us in zip(overlays, samples):
        frame, result = results[name]
        row = dict({"name": name, "what": _size(result), "frame_wh": [frame.shape[1], frame.shape[0]]}, **_ms(us))
        if name == "instance_masks":
            row["target_p50_ms"] = MASKS_TARGET_P50_MS
            row["meets_target"] = bool(row["p50_ms"] <= MASKS_TARGET_P50_MS)
        rows.append(row)
    return rows
