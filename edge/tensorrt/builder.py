"""ONNX -> TensorRT plan, for TensorRT 8.2, 8.5/8.6, 10.x and 11.x, with the precision obtained checked.

``build_engine(onnx_path, BuildOptions(precision="fp16"))`` parses the ONNX, sets the workspace
limit, precision (builder flags up to 10.x; on 11.x precision comes from the ONNX types), profiles,
DLA and timing cache, builds while a ticker reports progress, then reads the layer precisions back
with the engine inspector and fails when the engine is not in the precision asked for. Version
differences are asked of :mod:`edge.tensorrt.api`; ``tensorrt`` is imported lazily.
"""

import json
import re
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from edge.config import EdgeConfig
from edge.errors import EdgeError
from edge.files import write_atomic
from edge.tensorrt import api

PRECISIONS = ("fp32", "fp16", "int8")
TICK_S = 10.0  # seconds between "still building" lines
_OOM = re.compile(r"out of memory|outofmemory|could not be allocated|insufficient memory|cudaErrorMemoryAllocation",
                  re.IGNORECASE)
_WORKSPACE = re.compile(r"insufficient workspace|could not find any implementation", re.IGNORECASE)
FP16_ONNX_FIX = ("make a float16 ONNX with edge-export quantize MODEL.onnx --precision fp16 (or NVIDIA ModelOpt "
                 "AutoCast) and build that file; the tensorrt backend and edge-export engine do this themselves; "
                 "or build with --precision fp32")
QDQ_FIX = ("TensorRT takes int8 Q/DQ with zero point 0 and float biases, not --target cpu's uint8/int32: quantize the "
           "float32 model with edge-export quantize MODEL.onnx --precision int8 --target tensorrt --calib-images DIR")


@dataclass(frozen=True)
class Calibration:
    """INT8 calibration data: a calibrator ``factory(trt, batch_size)``, or a folder of images fed through
    the model's preprocessing (``config``: the model's edge config; None reads the one embedded in the ONNX).
    cache_dir: where the calibration cache goes (default: edge's cache folder); cuda: the CUDA layer for
    the calibration buffers (default: edge.cuda.open_cuda())."""

    images: Optional[Path] = None
    config: Optional[EdgeConfig] = None
    cache_dir: Optional[Path] = None
    factory: Optional[Callable[[Any, int], Any]] = None
    cuda: Any = None
    max_images: int = 500


@dataclass(frozen=True)
class BuildOptions:
    """What to build. profiles: input name -> (min, opt, max) shapes, needed for every dynamic input;
    workspace_mib: builder scratch memory (a Jetson shares it with the CPU); fp16_onnx_hint: the fix shown
    when TensorRT 11 needs a float16 ONNX (e.g. the exact export command for this model)."""

    precision: str = "fp16"
    workspace_mib: int = 1024
    profiles: Dict[str, Tuple[Sequence[int], Sequence[int], Sequence[int]]] = field(default_factory=dict)
    timing_cache: Optional[Path] = None
    dla_core: Optional[int] = None
    calibration: Optional[Calibration] = None
    fp16_onnx_hint: Optional[str] = None


@dataclass(frozen=True)
class BuildResult:
    """A built plan and how it came out (layer_precisions: compute layers per precision)."""

    plan: bytes
    precision_asked: str
    precision_obtained: str
    layer_precisions: Dict[str, int]
    build_seconds: float
    tensorrt_version: str
    warnings: Tuple[str, ...] = ()


@dataclass
class _OnnxFacts:
    nodes: List[Tuple[str, str]]
    float16: bool
    qdq: bool
    config: Optional[Dict[str, Any]]
    opset: int = 0


def _onnx_facts(path: Path) -> _OnnxFacts:
    """What the build needs from the ONNX before TensorRT sees it (loaded once, without external weights)."""
    from edge.onnxfile import OnnxInfo, load_onnx

    model = load_onnx(path)
    float16 = (any(v.type.tensor_type.elem_type == 10 for v in model.graph.input)
               or any(t.data_type == 10 for t in model.graph.initializer))
    nodes = [(n.name, n.op_type) for n in model.graph.node]
    metadata = {p.key: p.value for p in model.metadata_props}
    config = OnnxInfo(path, (), (), metadata, 0).embedded_config()
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    return _OnnxFacts(nodes, float16, any(op in ("QuantizeLinear", "DequantizeLinear") for _, op in nodes), config,
                      opset)


def _make_logger(trt: Any) -> Any:
    class CapturingLogger(trt.ILogger):
        """Keeps TensorRT's errors and warnings to explain a failed build."""

        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.lines: List[Tuple[int, str]] = []
            self.error_level = int(trt.ILogger.Severity.ERROR)
            self.warning_level = int(trt.ILogger.Severity.WARNING)

        def log(self, severity: Any, msg: str) -> None:
            if int(severity) <= self.warning_level:
                self.lines.append((int(severity), str(msg)))

        def errors(self) -> List[str]:
            return [m for s, m in self.lines if s <= self.error_level]

        def warnings(self) -> List[str]:
            return list(dict.fromkeys(m for s, m in self.lines if s == self.warning_level))

    return CapturingLogger()


def _check_request(options: BuildOptions, feats: api.TrtFeatures, facts: _OnnxFacts, where: str) -> None:
    if options.precision not in PRECISIONS:
        raise EdgeError(f"unknown precision '{options.precision}'", fix="use fp32, fp16 or int8", where="--precision")
    if options.workspace_mib <= 0:
        raise EdgeError(f"workspace must be positive, got {options.workspace_mib} MiB", fix="e.g. --workspace 1024",
                        where="--workspace")
    version = feats.version_string
    if options.precision == "fp16" and feats.strongly_typed and not (facts.float16 or facts.qdq):
        raise EdgeError(f"fp16 asked, but TensorRT {version} takes precision from the ONNX types and this ONNX is "
                        "float32", fix=options.fp16_onnx_hint or FP16_ONNX_FIX, where=where)
    if options.precision == "int8" and not facts.qdq:
        if not feats.int8_calibration:
            raise EdgeError(f"int8 asked, but TensorRT {version} has no INT8 calibration: INT8 needs an explicitly "
                            "quantized (Q/DQ) ONNX", fix=f"edge-export quantize {Path(where).name} --precision int8 "
                            "--calib-images DIR (or NVIDIA ModelOpt) and build that file (the tensorrt backend and "
                            "edge-export engine do it when given --calib-images), or use --precision fp16", where=where)
        calibration = options.calibration
        if calibration is None or (calibration.factory is None and calibration.images is None):
            raise EdgeError("int8 needs calibration images (or an ONNX with Q/DQ nodes)",
                            fix="pass --calib-images FOLDER with a few hundred images like the ones the model will "
                            "see, or use --precision fp16", where=where)
    if options.dla_core is not None:
        if not feats.dla:
            raise EdgeError(f"TensorRT {version} does not support the DLA", fix="drop --dla-core to build for the "
                            "GPU, or use TensorRT 10.x (JetPack 6/7) or 11.1+", where="--dla-core")
        if options.precision == "fp32":
            raise EdgeError("the DLA runs only fp16 or int8 layers", fix="add --precision fp16", where="--dla-core")


def _add_profiles(builder: Any, network: Any, config: Any, options: BuildOptions, where: str) -> Any:
    inputs = {network.get_input(i).name: tuple(network.get_input(i).shape) for i in range(network.num_inputs)}
    unknown = sorted(set(options.profiles) - set(inputs))
    if unknown:
        raise EdgeError(f"shape given for '{unknown[0]}', which is not an input (inputs: {', '.join(inputs)})",
                        fix="use one of the input names in --shape name:min:opt:max", where=where)
    dynamic = {name: shape for name, shape in inputs.items() if any(d < 0 for d in shape)}
    for name, shape in dynamic.items():
        if name not in options.profiles:
            dims = "x".join("?" if d < 0 else str(d) for d in shape)
            raise EdgeError(f"input '{name}' has dynamic shape {dims}: TensorRT needs its min/opt/max shapes",
                            fix=f"pass --batch MIN:OPT:MAX (e.g. --batch 1:4:8) or --shape {name}:min:opt:max "
                            "(dims joined by x)", where=where)
    if not dynamic:
        return None
    profile = builder.create_optimization_profile()
    for name, shape in dynamic.items():
        shapes = [tuple(int(d) for d in s) for s in options.profiles[name]]
        fits = len(shapes) == 3 and all(len(s) == len(shape) and all(d < 0 or d == x for d, x in zip(shape, s))
                                        for s in shapes)
        ordered = fits and all(a <= b <= c for a, b, c in zip(*shapes))
        if not ordered:
            raise EdgeError(f"shapes {shapes} for input '{name}' do not fit its shape {shape} with min <= opt <= max",
                            fix=f"give --shape {name}:min:opt:max with the fixed dims of {shape}", where=where)
        try:
            profile.set_shape(name, *shapes)
        except ValueError as exc:  # the binding raises when setDimensions refuses a shape (pyCore.cpp)
            raise EdgeError(f"TensorRT refused the shapes {shapes} for input '{name}': {exc}",
                            fix=f"give --shape {name}:min:opt:max with min <= opt <= max", where=where) from None
    if config.add_optimization_profile(profile) < 0:
        raise EdgeError("TensorRT rejected the optimization profile", fix="check the --batch/--shape values",
                        where=where)
    return profile


def _set_precision(trt: Any, feats: api.TrtFeatures, builder: Any, config: Any, options: BuildOptions,
                   report: Callable[[str], None]) -> List[str]:
    """FP16/INT8 builder flags where TensorRT has them (<= 10.x); notes for the result's warnings."""
    notes: List[str] = []
    if options.precision == "fp32" or not feats.precision_flags:
        return notes
    if feats.fast_fp16_query and not api.platform_has_fast_fp16(builder):
        notes.append("this GPU reports no fast fp16: TensorRT may keep layers in fp32")
        report(f"warning: {notes[-1]}")
    config.set_flag(trt.BuilderFlag.FP16)
    if options.precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
    return notes


def _calibrator(trt: Any, network: Any, options: BuildOptions, facts: _OnnxFacts,
                where: str) -> Tuple[Any, Any, bool]:
    """(calibrator, CUDA layer to activate during the build or None, whether we opened that layer)."""
    calibration = options.calibration
    assert calibration is not None
    first = network.get_input(0)
    shape = tuple(first.shape)
    batch = int(options.profiles[first.name][1][0]) if shape[0] < 0 else int(shape[0])
    if calibration.factory is not None:
        return calibration.factory(trt, batch), None, False
    config = calibration.config
    if config is None:
        if facts.config is None:
            raise EdgeError("int8 calibration needs the model's edge config (its preprocessing)",
                            fix="embed one with edge-export onnx MODEL --config edge.json", where=where)
        config = EdgeConfig.from_dict(facts.config, where=where)
    from edge.settings import cache_dir
    from edge.tensorrt.calibrator import make_calibrator

    cuda, owned = calibration.cuda, calibration.cuda is None
    if owned:
        from edge.cuda import open_cuda

        cuda = open_cuda()
    folder = calibration.cache_dir or cache_dir() / "calibration"
    return make_calibrator(trt, cuda, calibration.images, config, folder, batch_size=batch,
                           max_images=calibration.max_images), cuda, owned


def _load_timing_cache(config: Any, path: Path, report: Callable[[str], None]) -> Any:
    blob = path.read_bytes() if path.is_file() else b""
    cache = config.create_timing_cache(blob)
    if cache is None or not config.set_timing_cache(cache, False):
        report(f"timing cache {path} is from another GPU or TensorRT version (or damaged): starting a fresh one")
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, False)
    return cache


def _run_build(builder: Any, network: Any, config: Any, report: Callable[[str], None]) -> Tuple[Any, float]:
    """build_serialized_network with a ticker thread (the binding releases the GIL while it builds)."""
    start = time.perf_counter()
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(TICK_S):
            report(f"  still building: {time.perf_counter() - start:.0f} s elapsed")

    ticker = threading.Thread(target=tick, name="edge-tensorrt-build-ticker", daemon=True)
    ticker.start()
    try:
        plan = builder.build_serialized_network(network, config)
    finally:
        stop.set()
        ticker.join()
    return plan, time.perf_counter() - start


def _build_failed(logger: Any, options: BuildOptions, where: str) -> EdgeError:
    errors = logger.errors()
    first = errors[0] if errors else "no error was logged"
    if any(_OOM.search(e) for e in errors):
        return EdgeError(f"TensorRT ran out of memory building the engine (workspace {options.workspace_mib} MiB): "
                         f"{first}", fix="lower --workspace (e.g. 512), close other apps, add swap (a Jetson shares "
                         "memory between CPU and GPU), or use a smaller batch / --batch max", where=where)
    if any(_WORKSPACE.search(e) for e in errors):
        return EdgeError(f"TensorRT found no kernel within the workspace limit: {first}",
                         fix=f"raise --workspace above {options.workspace_mib} MiB", where=where)
    return EdgeError(f"TensorRT could not build the engine: {first}", fix="check the model with edge-export "
                     "verify, try --precision fp32, or run trtexec --onnx=MODEL --verbose for the full log",
                     where=where)


def _inspect(trt: Any, feats: api.TrtFeatures, plan: bytes, logger: Any, options: BuildOptions) -> Dict[str, int]:
    """Layer precisions of the built plan, read back through the engine inspector."""
    if not feats.engine_inspector:
        return {}
    runtime = api.create_runtime(trt, logger)
    if options.dla_core is not None:
        runtime.DLA_core = options.dla_core
    engine = runtime.deserialize_cuda_engine(plan)
    if engine is None:
        raise EdgeError("TensorRT built a plan it cannot load back", fix="report this with the TensorRT log")
    from edge.tensorrt.engine_io import engine_io

    inspector = engine.create_engine_inspector()
    tensors = engine_io(trt, feats, engine)
    inputs = [n for n in tensors.names if tensors.is_input(n)]
    if any(any(d < 0 for d in tensors.engine_shape(n)) for n in inputs):
        context = engine.create_execution_context()  # dynamic shapes: formats are known only for given shapes
        tensors.bind(context)
        for name in inputs:
            if name in options.profiles and not tensors.set_input_shape(name, options.profiles[name][1]):
                return {}
        inspector.execution_context = context
    return api.layer_precisions(json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON)))


def _check_obtained(asked: str, obtained: str, counts: Dict[str, int], where: str) -> None:
    if asked == "fp16" and obtained not in ("fp16", "int8", "unknown"):
        raise EdgeError(f"asked fp16, TensorRT built {obtained} (this GPU has no fast fp16 or the layers do not "
                        f"support it; layers: {counts})", fix="build with --precision fp32 to accept fp32, or build "
                        "on a GPU with fast fp16 (every Jetson since the TX1)", where=where)
    if asked == "int8" and obtained not in ("int8", "unknown"):
        raise EdgeError(f"asked int8, TensorRT built {obtained} (no layer was quantized; layers: {counts})",
                        fix="check that the calibration images match the model's input, or use --precision fp16",
                        where=where)


def build_engine(onnx_path: Union[str, Path], options: Optional[BuildOptions] = None, *,
                 report: Callable[[str], None] = print) -> BuildResult:
    """Build a TensorRT plan from ``onnx_path``; EdgeError (one line, with the fix) on every user-fixable failure.

    report: receives progress lines (before the build, every TICK_S seconds during it, after it).
    """
    options = options or BuildOptions()
    onnx_path = Path(onnx_path)
    where = str(onnx_path)
    facts = _onnx_facts(onnx_path)
    trt = api.import_tensorrt()
    feats = api.features(trt)
    _check_request(options, feats, facts, where)
    logger = _make_logger(trt)
    trt.init_libnvinfer_plugins(logger, "")
    builder = api.create_builder(trt, logger, where)
    network = builder.create_network(api.network_flags(trt, feats))
    parser = trt.OnnxParser(network, logger)
    newest = api.max_onnx_opset(feats)
    too_new = newest is not None and facts.opset > newest
    if too_new:  # often still parses (most operators did not change): a warning, and the fix if it does not
        report(f"warning: {onnx_path.name} is ONNX opset {facts.opset}; TensorRT {feats.version_string}'s parser "
               f"documents opsets up to {newest} (edge-export onnx {onnx_path.name} --opset {newest} lowers it)")
    if not parser.parse_from_file(str(onnx_path)):
        errors = api.parser_errors(parser, facts.nodes) or logger.errors() or ["no error was reported"]
        more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
        opset = f"--opset {newest}" if too_new else "another --opset"
        fix = QDQ_FIX if re.search(r"\((Dequantize|Quantize)Linear\)", errors[0]) else (
            f"replace the unsupported operators (re-export with {opset}, or simplify with --simplify), or run with "
            "--backend onnxruntime")
        raise EdgeError(f"TensorRT {feats.version_string} cannot parse the model: {'; '.join(errors[:3])}{more}",
                        fix=fix, where=where)
    config = builder.create_builder_config()
    api.set_workspace(config, trt, feats, options.workspace_mib << 20)
    if feats.engine_inspector:
        config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    profile = _add_profiles(builder, network, config, options, where)
    notes = _set_precision(trt, feats, builder, config, options, report)
    if options.dla_core is not None:
        if not 0 <= options.dla_core < builder.num_DLA_cores:
            raise EdgeError(f"DLA core {options.dla_core} asked, this device has {builder.num_DLA_cores} DLA cores",
                            fix="use --dla-core 0 or 1 on a Xavier/Orin AGX or NX, or drop --dla-core",
                            where="--dla-core")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = options.dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    calibrator = cuda = None
    owned = False
    if options.precision == "int8" and not facts.qdq:
        calibrator, cuda, owned = _calibrator(trt, network, options, facts, where)
        with warnings.catch_warnings():  # deprecated since 10.1 for explicit quantization; still the 10.x way
            warnings.simplefilter("ignore", DeprecationWarning)
            config.int8_calibrator = calibrator
        if profile is not None and feats.calibration_profile:
            config.set_calibration_profile(profile)
    cache_path = Path(options.timing_cache) if options.timing_cache and feats.timing_cache else None
    if cache_path is not None:
        _load_timing_cache(config, cache_path, report)
    target = f" on DLA core {options.dla_core}" if options.dla_core is not None else ""
    report(f"building a {options.precision} TensorRT {feats.version_string} engine from {onnx_path.name}{target} "
           "(this takes minutes on a Jetson)")
    try:
        if cuda is not None:
            with cuda.activate():  # the calibration buffers live in this layer's CUDA context
                plan, seconds = _run_build(builder, network, config, report)
        else:
            plan, seconds = _run_build(builder, network, config, report)
    finally:
        if calibrator is not None and hasattr(calibrator, "close"):
            calibrator.close()
        if owned:
            cuda.close()
    if getattr(calibrator, "error", None) is not None:  # raised inside a TensorRT callback, kept for us
        raise calibrator.error
    if plan is None:
        raise _build_failed(logger, options, where)
    plan = bytes(plan)
    if cache_path is not None:
        write_atomic(cache_path, bytes(config.get_timing_cache().serialize()))
    counts = _inspect(trt, feats, plan, logger, options)
    obtained = api.obtained_precision(counts)
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "layer precisions not available"
    report(f"built in {seconds:.1f} s: {obtained} ({summary})")
    if obtained == "unknown":
        notes.append("could not verify the precision obtained (the inspector gave no layer formats)")
    _check_obtained(options.precision, obtained, counts, where)
    return BuildResult(plan, options.precision, obtained, counts, seconds, feats.version_string,
                       tuple(notes + logger.warnings()))
