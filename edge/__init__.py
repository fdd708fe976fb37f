"""edge: run a trained vision model on a Jetson camera (or any CPU), fast, with numbers to prove it.

    import edge
    model = edge.load_model()                 # the built-in face detector
    with edge.open_source("demo://") as source:
        for frame in source:
            detections = model(frame.image)   # boxes in source-frame pixels
    for item in edge.run_streams(["demo://?seed=1", "demo://?seed=2"], model):
        print(item.stream, item.name, item.result)  # several sources, batched where the model allows

Attributes are imported on first use, so ``import edge`` stays cheap and needs only numpy and onnx
(on Python 3.6, which has no module ``__getattr__``, through the module's class).
"""

import importlib
import sys
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_model": "edge.model",
    "Model": "edge.model",
    "open_source": "edge.sources",
    "list_cameras": "edge.sources",
    "EdgeError": "edge.errors",
    "Detections": "edge.results",
    "Classification": "edge.results",
    "Segmentation": "edge.results",
    "Keypoints": "edge.results",
    "Embeddings": "edge.results",
    "Frame": "edge.results",
    "Cascade": "edge.cascade",
    "CropSpec": "edge.cascade",
    "Gallery": "edge.gallery",
    "Recognizer": "edge.gallery",
    "Tracker": "edge.tracking",
    "EdgeConfig": "edge.config",
    "run_streams": "edge.streams",
    "open_streams": "edge.streams",
    "StreamResult": "edge.streams",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'edge' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


if sys.version_info < (3, 7):  # no module __getattr__ before Python 3.7 (PEP 562): the same through the class
    import types

    class _LazyModule(types.ModuleType):
        """``edge`` on Python 3.6: attributes looked up on the class when the module has none (Python 3.5+
        lets a module's __class__ be replaced). Importing every export eagerly made ``python -m edge.camera``
        spend its first 0.3 s in imports, before the app's own Ctrl-C handler existed."""

        def __getattr__(self, name: str) -> Any:
            return __getattr__(name)

    sys.modules[__name__].__class__ = _LazyModule
