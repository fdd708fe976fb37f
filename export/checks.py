"""Checks after every export: the ONNX checker, strict shape inference, optional simplification,
and parity: the source framework and ONNX Runtime on the same random and real inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edge.config import EdgeConfig
from edge.errors import EdgeError, MissingDependency

Runner = Callable[[np.ndarray], List[np.ndarray]]


def structural_checks(model: Any, where: str) -> List[str]:
    """onnx.checker (full) and strict shape inference; returns report lines, raises EdgeError on failure."""
    import onnx

    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise EdgeError(f"onnx.checker rejects the exported model ({_first_line(exc)})",
                        fix="try another --opset; report the model if it persists", where=where) from None
    try:
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError) as exc:
        raise EdgeError(f"shape inference fails on the exported model ({_first_line(exc)})",
                        fix="check --input-shape matches the model", where=where) from None
    return ["onnx.checker: ok (full check)", "shape inference: ok (strict)"]


def simplify(model: Any) -> Any:
    """Simplify with onnxslim (constant folding, dead nodes); returns the new model."""
    try:
        import onnxslim
    except ImportError:
        raise MissingDependency("onnxslim", "--simplify", "pip install onnxslim, or drop --simplify") from None
    return onnxslim.slim(model)


def parity_inputs(config: EdgeConfig, random_count: int, seed: int) -> Dict[str, List[np.ndarray]]:
    """Inputs for the parity check: random frames and the shipped sample images, both through the
    model's own preprocessing, so the values span exactly what the runtime will feed."""
    from edge.cv import import_cv2
    from edge.preprocess import Preprocessor

    preprocessor = Preprocessor.from_config(config)
    width, height = config.input.size_wh
    rng = np.random.default_rng(seed)
    batches: Dict[str, List[np.ndarray]] = {"random": [], "real": []}
    try:
        import_cv2()
    except ImportError:  # without OpenCV no resize: random tensors in the preprocessed range instead
        low, high = _value_range(config)
        shape = tuple(1 if not isinstance(d, int) else d for d in config.input.shape)
        batches["random"] = [rng.uniform(low, high, shape).astype(config.input.dtype) for _ in range(random_count)]
        return batches
    for _ in range(random_count):
        frame = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        batches["random"].append(preprocessor(frame)[0].copy())
    from edge.samples import SAMPLE_NAMES, load_sample

    for name in SAMPLE_NAMES:
        batches["real"].append(preprocessor(load_sample(name))[0].copy())
    return batches


def _value_range(config: EdgeConfig):
    pre = config.preprocess
    values = [((p * pre.scale) - m) / s for p in (0.0, 255.0) for m, s in zip(pre.mean, pre.std)]
    return min(values), max(values)


@dataclass
class ParityReport:
    """The source framework against ONNX Runtime on the same inputs."""

    framework: str
    samples: Dict[str, int]
    tolerance_name: str
    rows: List[Any] = field(default_factory=list)  # export.compare.OutputStats: worst case per output
    passed: bool = True
    unordered: List[str] = field(default_factory=list)  # outputs compared as unordered rows (detections)
    row_counts: List[int] = field(default_factory=list)  # their reference row count, per input

    def lines(self) -> List[str]:
        """One line per output plus a verdict."""
        counts = ", ".join(f"{n} {k}" for k, n in self.samples.items() if n)
        out = [f"parity vs {self.framework} ({counts} inputs, {self.tolerance_name} tolerance):"]
        for row in self.rows:
            top1 = "" if row.top1_agreement is None else f", top-1 {100 * row.top1_agreement:.1f}%"
            note = "" if row.reason == "within tolerance" else f" ({row.reason})"
            out.append(f"  {row.name}: max abs {row.max_abs:.3g}, max rel {row.max_rel:.3g}, "
                       f"cosine {row.cosine:.6f}{top1} — {'ok' + note if row.passed else 'FAIL: ' + row.reason}")
        if self.unordered and self.row_counts:
            out.append(f"  rows of {', '.join(self.unordered)} (dynamic count) per input: "
                       f"{min(self.row_counts)}..{max(self.row_counts)}")
            if max(self.row_counts) == 0:
                out.append("  note: no rows on any input, so only empty outputs were compared; lower the model's "
                           "score threshold to check its values")
        out.append(f"  verdict: {'pass' if self.passed else 'FAIL'}")
        return out


def parity(onnx_path: Path, runner: Runner, framework: str, inputs: Dict[str, List[np.ndarray]],
           tolerance_name: str, output_names: List[str],
           transpose_input: Optional[tuple] = None) -> ParityReport:
    """Run ``runner`` (the source framework) and ONNX Runtime CPU on every input; keep the worst rows.

    ``runner`` returns the model's output tensors in ONNX output order (nested outputs flattened, see
    export/nested.py). Outputs whose first dimension is dynamic and not the batch (detections with a
    data-dependent count) are compared as unordered rows (export/rowmatch.py).
    """
    from edge.backends import create_backend

    from .compare import TOLERANCES, _failed, combine, compare, passed

    tolerance = TOLERANCES[tolerance_name]
    report = ParityReport(framework, {k: len(v) for k, v in inputs.items()}, tolerance_name)
    per_input = []
    with create_backend(onnx_path, "onnxruntime-cpu") as backend:
        input_name = backend.inputs[0].name
        unordered = dynamic_row_outputs(backend.inputs[0].shape, [(o.name, o.shape) for o in backend.outputs])
        for batch in (b for group in inputs.values() for b in group):
            source_batch = batch if transpose_input is None else np.ascontiguousarray(batch.transpose(transpose_input))
            produced = runner(source_batch)
            report.row_counts += _row_count(dict(zip(output_names, produced)), unordered)
            candidate = backend.infer({input_name: batch})
            if len(produced) != len(output_names):
                reason = (f"the {framework} model gave {len(produced)} output tensors, the ONNX model has "
                          f"{len(output_names)}")
                per_input.append([_failed(n, (), reason) for n in output_names])
                continue
            stats = compare(dict(zip(output_names, produced)), candidate, tolerance, unordered)
            per_input.append(fail_non_finite(stats, candidate))
    report.unordered = unordered
    report.rows = combine(per_input)  # worst case per output over all inputs; top-1 as the agreement rate
    report.passed = passed(report.rows)
    return report


def fail_non_finite(stats: Sequence[Any], candidate: Dict[str, np.ndarray]) -> List[Any]:
    """Fail every output whose ONNX values hold NaN or Inf, even where the source framework gives the same:
    an exported model that computes NaN is broken, however well it agrees (export.compare lets equal
    NaN pass, which suits comparing two backends of one model, not checking an export)."""
    found = []
    for row in stats:
        values = candidate.get(row.name)
        bad = 0 if values is None else int(np.count_nonzero(~np.isfinite(np.asarray(values, np.float64))))
        if bad and row.passed:
            row = replace(row, passed=False, reason=f"{bad} of {np.size(values)} values are NaN/Inf (the source "
                          "model gives them too: it is broken for these inputs)")
        found.append(row)
    return found


def _row_count(produced: Dict[str, np.ndarray], unordered: Sequence[str]) -> List[int]:
    counts = [int(np.shape(produced[n])[0]) for n in unordered if n in produced and np.ndim(produced[n])]
    return counts[:1]


def dynamic_row_outputs(input_shape: Sequence[Any], outputs: Sequence[Tuple[str, Sequence[Any]]]) -> List[str]:
    """Outputs whose first dimension is dynamic but not the input's batch: rows of a detection set."""
    batch = input_shape[0] if input_shape else None
    return [name for name, shape in outputs
            if shape and not isinstance(shape[0], int) and (isinstance(batch, int) or shape[0] != batch)]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
