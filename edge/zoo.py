"""Where the model zoo lives, in a checkout and in an installed package.

In a checkout the models are under ``models/`` at the repository root; ``pip install .``
installs the same files as the package data ``edge/_zoo`` (see setup.py), so the default
model is found wherever edge is installed.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

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


def pipelines() -> Dict[str, Dict[str, Any]]:
    """The zoo's two-stage pipelines: name -> {"model", "then", "crop", ...} (see edge.cascade.read_pipeline)."""
    return json.loads((zoo_dir() / "manifest.json").read_text(encoding="utf-8")).get("pipelines", {})


@dataclass(frozen=True)
class ZooEntry:
    """One model of the zoo as ``--list-models`` shows it.

    input_wh: (width, height) in pixels from the model's edge config, or None when it cannot be read
    (then ``problem`` says why).
    """

    name: str
    task: str
    input_wh: Optional[Tuple[int, int]]
    summary: str
    path: Path
    problem: Optional[str] = None

    def row(self) -> str:
        """One line of the zoo table."""
        size = f"{self.input_wh[0]}x{self.input_wh[1]}" if self.input_wh else "?"
        summary = self.summary if self.problem is None else f"{self.summary} [unreadable: {self.problem}]"
        return f"{self.name:<28} {self.task:<9} {size:<9} {summary}"


TABLE_HEADER = f"{'name':<28} {'task':<9} {'input':<9} source and summary"


def list_models() -> List[ZooEntry]:
    """The zoo, by name: task and input size read from each model's own edge config."""
    from edge.model import resolve_config  # edge.model imports this module
    from edge.onnxfile import read_onnx

    entries = []
    for name, item in sorted(manifest().items()):
        path = zoo_dir() / item["file"]
        summary = " | ".join(str(item[key]) for key in ("source", "summary") if item.get(key))
        try:
            config = resolve_config(read_onnx(path))
        except EdgeError as exc:
            entries.append(ZooEntry(name, str(item.get("task", "?")), None, summary, path, exc.what))
            continue
        entries.append(ZooEntry(name, config.task, tuple(config.input.size_wh), summary, path))  # type: ignore[arg-type]
    return entries


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
