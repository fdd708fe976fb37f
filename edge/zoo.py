"""Where the model zoo lives, in a checkout and in an installed package.

In a checkout the models are under ``models/`` at the repository root; ``pip install .``
installs the same files as the package data ``edge/_zoo`` (see setup.py), so the default
model is found wherever edge is installed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Union

from edge.errors import EdgeError

DEFAULT_MODEL = "face_detection_short_range"
_PACKAGE = Path(__file__).resolve().parent


def zoo_dir() -> Path:
    """The folder holding the zoo: installed package data first, then the checkout's models/."""
    for candidate in (_PACKAGE / "_zoo", _PACKAGE.parent / "models"):
        if (candidate / "manifest.json").is_file():
            return candidate
    raise EdgeError("the model zoo is missing from this installation",
                    fix="reinstall edge (pip install --force-reinstall edge) or pass --model PATH.onnx",
                    where=str(_PACKAGE))


def manifest() -> Dict[str, Dict[str, str]]:
    """The zoo manifest: model name -> {"file": relative path, "summary": …}."""
    return json.loads((zoo_dir() / "manifest.json").read_text(encoding="utf-8"))["models"]


def zoo_names() -> List[str]:
    """Names of the models shipped with edge."""
    return sorted(manifest())


def resolve_model(model: Optional[Union[str, Path]]) -> Path:
    """A model argument (None for the default, a zoo name, or a path) as a file path."""
    if model is None:
        model = DEFAULT_MODEL
    text = str(model)
    if not Path(text).suffix and not Path(text).exists():
        models = manifest()
        if text in models:
            return zoo_dir() / models[text]["file"]
        raise EdgeError(f"'{text}' is neither a file nor a model shipped with edge",
                        fix=f"give a path to a .onnx file, or one of: {', '.join(sorted(models))}",
                        where="--model")
    return Path(text)
