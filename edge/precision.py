"""Which file a CPU backend runs when a precision is asked (``--precision fp16|int8``).

TensorRT builds an engine at the precision asked; ONNX Runtime's CPU provider and OpenCV's DNN run the
precision of the file they are given. So when fp16 or int8 is asked and the backend that will run is a
CPU one (onnxruntime-cpu, opencv; onnxruntime and ``auto`` when no GPU backend is available here), the
model file is swapped for a reduced one, first found wins:

1. the model file itself, when it already has that precision;
2. its sibling written by ``edge-export quantize`` (``face.onnx`` -> ``face.int8.onnx``), when the
   provenance stored in it says it was made from these very bytes (source sha256);
3. a copy made here with :func:`edge.quantize.quantized_for` (int8 with calibration images, fp16 without),
   quantized once and cached under edge's cache folder / ``quantized``;
4. else (int8 without calibration images) a one-line error saying how to make one.

Notes say what is slow or surprising: an int8 file placed for TensorRT runs slower on ONNX Runtime's CPU
than a ``--target cpu`` one, fp16 is slower there than fp32, fp32 asked on a reduced file runs that file.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional

from edge.config import EdgeConfig
from edge.errors import EdgeError

Report = Callable[[str], None]
#: backends that only ever run on the CPU
CPU_BACKENDS = ("onnxruntime-cpu", "opencv")
REDUCED = ("fp16", "int8")
# Measured on a 2-core AVX-512 x86, ResNet-50, ONNX Runtime 1.32 (see edge/quantize.py).
TENSORRT_PLACEMENT_NOTE = ("placed for TensorRT (signed activations, only Conv/Gemm inputs quantized): ONNX "
                           "Runtime's CPU runs it slower than a --target cpu file (ResNet-50: 51 ms vs 17.9 ms; "
                           "fp32 41.9 ms); edge-export quantize MODEL --precision int8 --target cpu makes that one")
FP16_NOTE = ("ONNX Runtime's CPU has few fp16 kernels and casts around the rest, so fp16 runs slower there than "
             "fp32 (ResNet-50: 70 ms vs 41.9 ms); int8 --target cpu is the fast CPU precision")


@dataclass
class RunFile:
    """The file a CPU backend runs for a model, its precision, the precision asked and how it was found."""

    path: Path
    precision: str
    asked: str
    origin: str  # "model", "sibling" or "cache"
    provenance: Dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """e.g. 'int8 file face.int8.onnx' (the full path for a cached copy)."""
        name = str(self.path) if self.origin == "cache" else self.path.name
        return f"{self.precision} file {name}"


def runs_on_cpu(backend: str) -> bool:
    """Whether ``backend`` (a name or auto) will run on the CPU here: onnxruntime-cpu and opencv always,
    onnxruntime and auto when no GPU backend is available."""
    from edge.backends import AUTO_ORDER, BACKENDS

    if backend in CPU_BACKENDS:
        return True
    if backend == "onnxruntime":
        gpu = ("onnxruntime-tensorrt", "onnxruntime-cuda")
    elif backend == "auto":
        gpu = tuple(name for name in AUTO_ORDER if name not in CPU_BACKENDS)
    else:
        return False
    return all(BACKENDS[name].unavailable_reason() is not None for name in gpu)


def file_to_run(model: Path, backend: str, options: Mapping[str, Any], config: EdgeConfig,
                report: Optional[Report] = None) -> Optional[RunFile]:
    """The file a CPU backend runs for ``model`` at ``options['precision']`` (with ``options['calib_images']``
    for int8), or None when nothing was asked or a GPU backend will run (it handles precision itself)."""
    asked = options.get("precision")
    calib_images = options.get("calib_images")
    if not (asked or calib_images) or not runs_on_cpu(backend):
        return None
    from edge.quantize import file_precision

    own = file_precision(model)
    if asked is None or asked == "fp32":
        if calib_images:
            _say(report, "note: --calib-images calibrates int8; without --precision int8 the CPU runs "
                 f"{model.name} as it is ({own})")
        if asked == "fp32" and own != "fp32":
            _say(report, f"note: --precision fp32, but {model.name} is itself {own}; it runs as it is (give the "
                 "float32 model it was made from for fp32)")
        return RunFile(model, own, asked or own, "model")
    if asked not in REDUCED:
        raise EdgeError(f"unknown precision '{asked}'", fix="use fp32, fp16 or int8", where="--precision")
    if asked == "fp16" and calib_images:
        _say(report, "note: --calib-images calibrates int8; fp16 needs none (they are not used)")
    if own == asked:
        return RunFile(model, own, asked, "model", _provenance(model))
    found = matching_sibling(model, asked, report)
    if found is not None:
        _say(report, f"precision: {asked} runs {found.path} (made by edge-export quantize from {model.name})")
        return found
    if asked == "int8" and not calib_images:
        raise EdgeError(f"int8 on the CPU needs a quantized file, and {model.name} is {own} with no "
                        f"{model.stem}.int8.onnx made from it beside it",
                        fix=f"edge-export quantize {model} --precision int8 --target cpu --calib-images DIR, or "
                        "pass --calib-images DIR (a few hundred frames like the camera's; quantized once, cached)",
                        where="--precision int8")
    return cached_copy(model, asked, calib_images, config, report)


def matching_sibling(model: Path, precision: str, report: Optional[Report] = None) -> Optional[RunFile]:
    """``edge-export quantize``'s file beside ``model`` when its provenance says it was made from these bytes
    at ``precision``; a stale or foreign one is named in a note and not used."""
    from edge.quantize import read_provenance, sha256_file, sibling_path

    sibling = sibling_path(model, precision)
    if not sibling.is_file():
        return None
    provenance = read_provenance(sibling) or {}
    if not provenance:
        why = "has no edge_quantization provenance (not written by edge-export quantize)"
    elif provenance.get("source_sha256") != sha256_file(model):
        why = f"was made from another {model.name} (its source sha256 differs)"
    elif provenance.get("precision") != precision:
        why = f"is {provenance.get('precision')}, not {precision}"
    else:
        why = ""
    if why:
        _say(report, f"note: {sibling.name} {why}; not used (re-run edge-export quantize to refresh it)")
        return None
    return RunFile(sibling, precision, precision, "sibling", provenance)


def cached_copy(model: Path, precision: str, calib_images: Optional[Any], config: EdgeConfig,
                report: Optional[Report] = None) -> RunFile:
    """A quantized copy of ``model`` made for the CPU (target cpu) once and kept in edge's cache folder."""
    from edge.quantize import QuantizeOptions, quantized_for, read_provenance
    from edge.settings import cache_dir

    options = QuantizeOptions(precision, target="cpu", config=config,
                              calib_images=Path(calib_images) if calib_images and precision == "int8" else None)
    path = quantized_for(model, options, folder=cache_dir() / "quantized", report=report)
    return RunFile(path, precision, precision, "cache", read_provenance(path) or {})


def report_run_notes(run: Optional[RunFile], backend: str, report: Optional[Report]) -> None:
    """Report :func:`run_notes` as ``note:`` lines (nothing for None: the model file runs as given)."""
    for line in run_notes(run, backend) if run is not None else ():
        _say(report, f"note: {line}")


def run_notes(run: RunFile, backend: str) -> List[str]:
    """One-line notes on running ``run`` on ``backend`` (the name of the backend that was created)."""
    if not backend.startswith("onnxruntime") or run.asked == "fp32":
        return []
    if run.precision == "int8" and run.provenance.get("target") == "tensorrt":
        return [f"{run.path.name} is int8 {TENSORRT_PLACEMENT_NOTE}"]
    if run.precision == "fp16":
        return [FP16_NOTE]
    return []


def _provenance(path: Path) -> Dict[str, Any]:
    from edge.quantize import read_provenance

    return read_provenance(path) or {}


def _say(report: Optional[Report], line: str) -> None:
    if report is not None:
        report(line)
