"""TFLite -> ONNX, through the ``tflite2onnx`` converter.

tflite2onnx rewrites the graph from TFLite's NHWC to ONNX's NCHW, so the resulting model
takes (N, 3, H, W) input; the edge config records that layout.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import warnings
from pathlib import Path
from typing import Callable, List, Optional

import numpy as np

from edge.errors import EdgeError, MissingDependency


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tflite_to_onnx(source: Path, destination: Path) -> Path:
    """Convert a .tflite file to ONNX at ``destination`` (a file written whole or not at all)."""
    try:
        import tflite2onnx
    except ImportError:
        raise MissingDependency("tflite2onnx", "TFLite export", "pip install tflite2onnx") from None
    source, destination = Path(source), Path(destination)
    if not source.is_file():
        raise EdgeError("TFLite file not found", fix="check the path", where=str(source))
    with open(source, "rb") as handle:
        magic = handle.read(8)
    if magic[4:8] != b"TFL3":
        raise EdgeError("not a TFLite flatbuffer (no TFL3 identifier)", fix="give a .tflite model file",
                        where=str(source))
    partial = destination.with_name(destination.name + ".partial")
    # tflite2onnx warns once per float16 tensor; parity is checked instead (models/*/README.md)
    logging.getLogger("tflite2onnx").setLevel(logging.ERROR)
    try:
        tflite2onnx.convert(str(source), str(partial))
    except Exception as exc:  # noqa: BLE001 - tflite2onnx raises anything on operators it lacks or a broken file
        from edge.files import write_error

        unwritable = write_error(exc, "--output", "the converted model")
        if unwritable is not None:
            raise unwritable from None
        first = str(exc).strip().splitlines()[0][:250] if str(exc).strip() else ""
        raise EdgeError(f"tflite2onnx cannot convert this model ({type(exc).__name__}: {first})",
                        fix="check the .tflite is complete (re-export it); if it uses an operator tflite2onnx lacks, "
                        "convert with tf2onnx instead", where=str(source)) from None
    partial.replace(destination)
    return destination


def tflite_runner(path: Path) -> Optional[Callable[[np.ndarray], List[np.ndarray]]]:
    """A function running the TFLite interpreter (LiteRT, tflite-runtime or TensorFlow), or None
    when none is installed. It takes NHWC batches: TFLite's own layout."""
    interpreter_class = None
    for module_name in ("ai_edge_litert.interpreter", "tflite_runtime.interpreter", "tensorflow.lite"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        interpreter_class = getattr(module, "Interpreter", None)
        if interpreter_class is not None:
            break
    if interpreter_class is None:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TensorFlow's own deprecation notice for tf.lite
        interpreter = interpreter_class(model_path=str(path))
    interpreter.allocate_tensors()
    input_index = interpreter.get_input_details()[0]["index"]
    outputs = interpreter.get_output_details()

    def run(batch: np.ndarray) -> List[np.ndarray]:
        interpreter.set_tensor(input_index, np.ascontiguousarray(batch, dtype=np.float32))
        interpreter.invoke()
        return [interpreter.get_tensor(o["index"]).copy() for o in outputs]

    run.output_names = [o["name"] for o in outputs]  # type: ignore[attr-defined]
    return run
