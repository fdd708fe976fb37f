"""Native TensorRT: engines built on this board from the ONNX (cached), or a given .plan with its sidecar.

Options (``backend_options``; keys other backends use are ignored):
  precision      "fp32" | "fp16" | "int8"; default fp16 where the GPU has fast fp16, else fp32; on
                 TensorRT 11 (strongly typed) what the ONNX types give (fp32, fp16, or int8 for Q/DQ). There
                 fp16 of a float32 ONNX, or int8 of one without Q/DQ (with calib_images), builds a converted
                 copy made with edge.quantize and cached in edge's cache folder / quantized
  workspace_mib  builder scratch memory (default 1024)
  batch          (min, opt, max) or "MIN:OPT:MAX": the profile of a dynamic batch dimension
  shapes         {input: (min, opt, max) shapes} for inputs with other dynamic dimensions
  dla_core       build for this DLA core (GPU fallback on)
  zero_copy      True: mapped host memory on an integrated GPU (Jetson), no copies
  cuda           "cuda-python" | "pycuda" (default: EDGE_CUDA, else whichever imports)
  calib_images   folder of images for int8 calibration
  cache_dir      engine cache root (default: edge's cache folder / engines)
  report         callable for progress lines (default: print); force: rebuild even on a cache hit
"""

import weakref
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from edge.backends.base import Backend
from edge.errors import EdgeError
from edge.onnxfile import TensorSpec, read_onnx

PLAN_SUFFIXES = (".plan", ".engine", ".trt")
INSTALL_HINT = ("TensorRT: on a Jetson use JetPack's (sudo apt install python3-libnvinfer) in a venv made with "
                "python3 -m venv --system-site-packages; on x86 with an NVIDIA GPU pip install 'tensorrt>=10,<11'. "
                "CUDA from Python: pip install cuda-python (JetPack 6+, x86) or pycuda (JetPack 4/5)")
Shapes = Tuple[Tuple[int, ...], Tuple[int, ...], Tuple[int, ...]]
_FAST_FP16: "weakref.WeakKeyDictionary[Any, Dict[int, bool]]" = weakref.WeakKeyDictionary()


# ------------------------------------------------------------------------------------------ option parsing
def parse_batch(value: Union[str, Sequence[int]], where: str = "--batch") -> Tuple[int, int, int]:
    """"1:4:8" or (1, 4, 8) -> (1, 4, 8), checked 1 <= min <= opt <= max."""
    try:
        parts = tuple(int(v) for v in (value.split(":") if isinstance(value, str) else value))
    except (TypeError, ValueError):
        parts = ()
    if len(parts) != 3 or not 1 <= parts[0] <= parts[1] <= parts[2]:
        raise EdgeError(f"batch profile {value!r} is not MIN:OPT:MAX with 1 <= MIN <= OPT <= MAX",
                        fix="e.g. --batch 1:4:8", where=where)
    return parts  # type: ignore[return-value]


def parse_shape(text: str, where: str = "--shape") -> Tuple[str, Shapes]:
    """"images:1x3x320x320:4x3x640x640:8x3x640x640" -> (name, (min, opt, max)); one shape means min = opt = max."""
    name, _, rest = text.rpartition(":") if text.count(":") == 1 else text.partition(":")
    try:
        shapes = tuple(tuple(int(d) for d in part.lower().split("x")) for part in rest.split(":"))
    except ValueError:
        shapes = ()
    if not name or len(shapes) not in (1, 3) or any(d < 1 for s in shapes for d in s):
        raise EdgeError(f"cannot read the shape profile {text!r}", where=where,
                        fix="write NAME:MIN:OPT:MAX with dims joined by x, e.g. images:1x3x320x320:1x3x640x640:"
                        "1x3x640x640 (or NAME:SHAPE for a fixed shape)")
    return name, (shapes * 3 if len(shapes) == 1 else shapes)  # type: ignore[return-value]


def resolve_profiles(inputs: Sequence[TensorSpec], batch: Optional[Union[str, Sequence[int]]],
                     shapes: Optional[Mapping[str, Sequence[Sequence[int]]]], where: str) -> Dict[str, Shapes]:
    """The optimization profile of every dynamic input: from ``shapes``, else ``batch`` for a dynamic first dim."""
    given = {name: tuple(tuple(int(d) for d in s) for s in value) for name, value in (shapes or {}).items()}
    low_opt_high = parse_batch(batch) if batch is not None else None
    profiles: Dict[str, Shapes] = {}
    for spec in inputs:
        if spec.name in given:
            profiles[spec.name] = given[spec.name]  # type: ignore[assignment]
        elif spec.is_dynamic():
            fixed_rest = all(isinstance(d, int) for d in spec.shape[1:])
            if low_opt_high is None or not fixed_rest:
                dims = "x".join(str(d) if isinstance(d, int) else "?" for d in spec.shape)
                fix = ("pass --batch MIN:OPT:MAX (e.g. --batch 1:4:8)" if fixed_rest else
                       f"pass --shape {spec.name}:MIN:OPT:MAX (dims joined by x)")
                raise EdgeError(f"input '{spec.name}' has dynamic shape {dims}: TensorRT needs its min/opt/max shapes",
                                fix=fix, where=where)
            profiles[spec.name] = tuple((n,) + tuple(spec.shape[1:]) for n in low_opt_high)  # type: ignore[misc]
    unknown = sorted(set(given) - {s.name for s in inputs})
    if unknown:
        raise EdgeError(f"shape given for '{unknown[0]}', which is not an input "
                        f"(inputs: {', '.join(s.name for s in inputs)})", fix="use an input name in --shape",
                        where=where)
    return profiles


def onnx_types(onnx_path: Path) -> Tuple[bool, bool]:
    """(float16: the ONNX has float16 inputs or weights, qdq: it has Q/DQ nodes), what strongly typed builds follow."""
    from edge.onnxfile import load_onnx

    model = load_onnx(onnx_path)
    float16 = (any(v.type.tensor_type.elem_type == 10 for v in model.graph.input)
               or any(t.data_type == 10 for t in model.graph.initializer))
    return float16, any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)


def default_precision(trt: Any, feats: Any, onnx_path: Path, device: Any) -> str:
    """fp16 where the GPU has fast fp16, else fp32; with strongly typed TensorRT (11+) what the ONNX types give."""
    if feats.strongly_typed:
        float16, qdq = onnx_types(onnx_path)
        return "int8" if qdq else "fp16" if float16 else "fp32"
    if not feats.fast_fp16_query:
        return "fp16"
    answers = _FAST_FP16.setdefault(trt, {})  # asked once per process and GPU: a Builder is not free
    if device.index not in answers:
        from edge.tensorrt.api import create_builder, platform_has_fast_fp16

        builder = create_builder(trt, trt.Logger(trt.Logger.ERROR), str(onnx_path))
        answers[device.index] = platform_has_fast_fp16(builder)
    return "fp16" if answers[device.index] else "fp32"


def plan_sidecar(plan: Path) -> Optional[Path]:
    """``x.json`` beside ``x.plan`` (or ``x.plan.json``), as ``export engine --output`` and ``inspect`` use."""
    return next((c for c in (plan.with_suffix(".json"), plan.with_name(plan.name + ".json")) if c.is_file()), None)


# ------------------------------------------------------------------------------------------ engines
def check_request(onnx_path: Path, options: Mapping[str, Any]) -> Dict[str, Shapes]:
    """The profiles of an engine request, after the checks that need no TensorRT (ONNX file, shapes, int8 data)."""
    where = str(onnx_path)
    if onnx_path.suffix.lower() != ".onnx":
        raise EdgeError(f"'{onnx_path.suffix or onnx_path.name}' is not an ONNX model", where=where,
                        fix="give the .onnx file (a TensorRT plan is loaded with --backend tensorrt, not rebuilt)")
    info = read_onnx(onnx_path)  # one-line errors for a missing or broken file
    profiles = resolve_profiles(info.inputs, options.get("batch"), options.get("shapes"), where)
    if options.get("precision") == "int8" and not options.get("calib_images") and not onnx_types(onnx_path)[1]:
        raise EdgeError("int8 needs calibration images (or an ONNX with Q/DQ nodes)", where=where,
                        fix="pass --calib-images FOLDER with a few hundred images like the camera's, or quantize "
                        f"once with edge-export quantize {onnx_path.name} --precision int8 --calib-images DIR and "
                        "build the .int8.onnx it writes, or use fp16")
    return profiles


def typed_onnx(onnx_path: Path, precision: str, options: Mapping[str, Any], feats: Any,
               report: Callable[[str], None]) -> Path:
    """The ONNX a build of ``precision`` reads: ``onnx_path``, or on strongly typed TensorRT (11+), which takes
    precision from the ONNX types only, a float16 / int8 Q/DQ copy of a float32 file made with edge.quantize
    (cached by source bytes, options and calibration set in edge's cache folder / quantized)."""
    if not feats.strongly_typed or precision not in ("fp16", "int8"):
        return onnx_path
    float16, qdq = onnx_types(onnx_path)
    if qdq or (float16 and precision == "fp16") or (precision == "int8" and not options.get("calib_images")):
        return onnx_path  # built as is (or refused by the builder with the fix)
    from edge.config import EdgeConfig
    from edge.quantize import QuantizeOptions, quantized_for
    from edge.settings import cache_dir

    config = options.get("edge_config")
    if config is not None and not isinstance(config, EdgeConfig):
        config = EdgeConfig.from_dict(dict(config), where=str(onnx_path))
    calib = Path(options["calib_images"]) if precision == "int8" else None
    derived = quantized_for(onnx_path, QuantizeOptions(precision, target="tensorrt", calib_images=calib,
                                                       config=config), cache_dir() / "quantized", report)
    how = f"quantized to int8, calibrated on {calib}" if calib is not None else "converted to fp16"
    report(f"TensorRT {feats.version_string} takes precision from the ONNX types: building the {precision} engine "
           f"from {derived} ({onnx_path.name} {how})")
    return derived


def engine_from_onnx(onnx_path: Path, options: Mapping[str, Any], layer: Any, *,
                     report: Callable[[str], None]) -> Tuple[Path, Dict[str, Any], str]:
    """(plan path, sidecar, "cache hit" | "built in N s") for ``onnx_path`` on ``layer``'s GPU, from the cache.

    Used by the backend and by ``edge-export engine``; call it inside ``layer.activate()``.
    """
    from edge.tensorrt.api import features, import_tensorrt
    from edge.tensorrt.builder import BuildOptions, Calibration, build_engine
    from edge.tensorrt.cache import EngineCache

    profiles = check_request(onnx_path, options)
    trt = import_tensorrt()
    feats = features(trt)
    device = layer.device()
    precision = options.get("precision") or default_precision(trt, feats, onnx_path, device)
    built_from = typed_onnx(onnx_path, precision, options, feats, report)
    cache = EngineCache(options.get("cache_dir"))
    calibration = None
    if options.get("calib_images") and built_from == onnx_path:  # a derived file carries its calibration
        calibration = Calibration(images=Path(options["calib_images"]), cache_dir=cache.calibration_dir(), cuda=layer,
                                  config=options.get("edge_config"))  # the config the model really runs with
    build_options = BuildOptions(precision=precision, workspace_mib=int(options.get("workspace_mib") or 1024),
                                 profiles=profiles, dla_core=options.get("dla_core"), calibration=calibration,
                                 timing_cache=cache.timing_cache_path(trt.__version__, device.compute_capability))
    built = []

    def build(path: Path, opts: Any, report: Callable[[str], None]) -> Any:
        result = build_engine(path, opts, report=report)
        built.append(result.build_seconds)
        return result

    plan, sidecar = cache.engine_for(built_from, build_options, build=build, device=device,
                                     trt_version=trt.__version__, report=report,
                                     cuda_version=getattr(layer, "cuda_version", None),
                                     force=bool(options.get("force")), edge_config=_config_dict(options))
    return plan, sidecar, (f"built in {built[0]:.1f} s" if built else "cache hit")


def _config_dict(options: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
    """The resolved edge config the model runs with (an EdgeConfig from Model, or a dict), as JSON data."""
    config = options.get("edge_config")
    if config is None:
        return None
    return config.to_dict() if hasattr(config, "to_dict") else dict(config)


def check_plan_sidecar(plan: Path, trt_version: str, device: Any) -> Dict[str, Any]:
    """The sidecar of a given plan, checked against this TensorRT and GPU; EdgeError with the fix otherwise."""
    from edge.config import load_json
    from edge.tensorrt.api import parse_version

    sidecar_file = plan_sidecar(plan)
    rebuild = f"rebuild it on this board: edge-export engine MODEL.onnx --output {plan}"
    if sidecar_file is None:
        raise EdgeError(f"no sidecar {plan.with_suffix('.json').name} next to the plan, so its model config and "
                        "build provenance are unknown", fix=f"copy it from the board that built the plan, or {rebuild}",
                        where=str(plan))
    sidecar = load_json(sidecar_file)
    prov = sidecar.get("provenance") or {}
    built_trt, built_cc = prov.get("tensorrt_version"), prov.get("compute_capability")
    here_cc = ".".join(str(v) for v in device.compute_capability)
    problem = None
    if built_trt and parse_version(built_trt) != parse_version(trt_version):
        problem = f"the plan was built for TensorRT {built_trt}, this is {trt_version}"
    elif built_cc and str(built_cc) != here_cc:
        problem = f"the plan was built for compute capability {built_cc}, this GPU is {here_cc}"
    elif prov.get("plan_sha256") and prov["plan_sha256"] != _sha256(plan):
        problem = f"the plan does not match its sidecar {sidecar_file.name} (damaged, or another plan's sidecar)"
    if problem:
        raise EdgeError(f"{problem}; a plan cannot be rebuilt without its ONNX", fix=f"{rebuild}, or run the .onnx "
                        "with --backend tensorrt (engines are then built and cached automatically)", where=str(plan))
    return sidecar


def open_layer(prefer: Optional[str]) -> Any:
    """The CUDA layer (edge.cuda.open_cuda, looked up at call time)."""
    import edge.cuda

    return edge.cuda.open_cuda(prefer)


# ------------------------------------------------------------------------------------------ the backend
class TensorRTBackend(Backend):
    """Native TensorRT over edge's CUDA layer; see the module docstring for the options."""

    name = "tensorrt"
    summary = "native TensorRT (engines built on this board, cached)"

    def __init__(self, model_path: Union[str, Path], *, threads: Optional[int] = None,
                 options: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(model_path, threads=threads, options=options)
        self._runner: Any = None
        self._layer: Any = None
        self.sidecar: Dict[str, Any] = {}
        self.plan_path: Optional[Path] = None
        self.plan_origin = ""

    @classmethod
    def unavailable_reason(cls) -> Optional[str]:
        """Short reason when tensorrt or a usable CUDA layer is missing."""
        import edge.cuda
        from edge.tensorrt.api import import_tensorrt

        try:
            import_tensorrt()
        except EdgeError:
            return "tensorrt is not installed"
        ok, _ = edge.cuda.gpu_available()
        return None if ok else "no CUDA layer with a GPU (cuda-python or pycuda)"

    @classmethod
    def install_hint(cls) -> str:
        """JetPack's TensorRT in a --system-site-packages venv, or pip install tensorrt on x86; plus a CUDA layer."""
        return INSTALL_HINT

    @property
    def is_plan(self) -> bool:
        """Whether the model file is a serialized plan rather than an ONNX."""
        return self.model_path.suffix.lower() in PLAN_SUFFIXES

    def prepare(self) -> "TensorRTBackend":
        """As Backend.prepare; a plan's tensors come from the engine, not from an ONNX read."""
        if not self._prepared and self.is_plan and not self.inputs:
            # Base.prepare reads the ONNX's tensors when none are set; a plan has none to read, and
            # _prepare replaces this placeholder with the engine's own tensors.
            self.inputs = (TensorSpec("(from the plan)", (), np.dtype(np.float32)),)
            try:
                return super().prepare()  # type: ignore[return-value]
            except BaseException:
                self.inputs = ()
                raise
        return super().prepare()  # type: ignore[return-value]

    def _prepare(self) -> None:
        from edge.tensorrt.api import import_tensorrt
        from edge.tensorrt.runner import TrtRunner

        report = self.options.get("report") or print
        trt = import_tensorrt()
        if "batch" not in self.options and "shapes" not in self.options:
            # the camera app and Model feed one frame at a time: a dynamic batch gets a 1:1:1 profile
            self.options["batch"] = (1, 1, 1)
        if not self.is_plan:
            check_request(self.model_path, self.options)  # before a CUDA context is made
        self._layer = open_layer(self.options.get("cuda"))
        try:
            if self.is_plan:
                if not self.model_path.is_file():
                    raise EdgeError("plan file not found", fix="check the path", where=str(self.model_path))
                self.sidecar = check_plan_sidecar(self.model_path, trt.__version__, self._layer.device())
                self.plan_path, self.plan_origin = self.model_path, f"file {self.model_path.name}"
            else:
                with self._layer.activate():
                    self.plan_path, self.sidecar, self.plan_origin = engine_from_onnx(
                        self.model_path, self.options, self._layer, report=report)
            dla_core = (self.sidecar.get("provenance") or {}).get("dla_core")
            self._runner = TrtRunner(self.plan_path, self._layer, zero_copy=self.options.get("zero_copy"),
                                     dla_core=dla_core, where=str(self.model_path))
        except BaseException:
            self._close()
            raise
        as_spec = {t.name: TensorSpec(t.name, tuple(None if d < 0 else d for d in t.shape), t.dtype)
                   for t in self._runner.io}
        self.inputs = tuple(as_spec[t.name] for t in self._runner.inputs)
        self.outputs = tuple(as_spec[t.name] for t in self._runner.outputs)
        self.device = f"gpu (TensorRT {trt.__version__}, {self.precision_obtained})"

    @property
    def precision_asked(self) -> str:
        """The precision the plan was built for (from its sidecar)."""
        return str((self.sidecar.get("provenance") or {}).get("precision_asked") or "unknown")

    @property
    def precision_obtained(self) -> str:
        """The precision TensorRT actually gave its layers (from its sidecar)."""
        return str((self.sidecar.get("provenance") or {}).get("precision_obtained") or "unknown")

    def _infer(self, feeds: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        return self._runner.infer(feeds)

    def _close(self) -> None:
        runner, layer = self._runner, self._layer
        self._runner = self._layer = None
        try:
            if runner is not None:
                runner.close()
        finally:
            if layer is not None:
                layer.close()

    def describe(self) -> str:
        """Backend, device, precision asked/obtained and where the plan came from."""
        return (f"{self.name} on {self.device}: precision asked {self.precision_asked}, obtained "
                f"{self.precision_obtained}; plan {self.plan_origin}")


def _sha256(path: Path) -> str:
    import hashlib  # only when a plan is checked: not on every start-up

    return hashlib.sha256(path.read_bytes()).hexdigest()
