"""A gallery of named embeddings, and matching by cosine similarity (the recognition half of face recognition).

A gallery folder holds one picture per identity (``alice.jpg``: identity "alice") or one folder per
identity with several pictures (``alice/1.jpg``, ``alice/2.jpg``)::

    with Cascade(load_model("face_detector.onnx"), load_model("face_embedder.onnx")) as faces:
        gallery = Gallery.from_folder("people/", embed=faces, threshold=0.5)
        recognise = Recognizer(faces, gallery)
        result = recognise(frame)       # Embeddings with identities and similarities

``embed`` is anything that turns a BGR image into :class:`~edge.results.Embeddings`: an embedder
model alone (the whole picture is the object), or a :class:`~edge.cascade.Cascade` of a detector
and an embedder, which embeds each detection; a gallery picture in which the detector finds nothing
is an error naming the file, and where it finds several the largest is the one enrolled.
"""

import dataclasses
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import numpy as np

from edge.errors import EdgeError
from edge.results import Embeddings

WHERE = "--gallery"


class Gallery:
    """Named unit vectors; ``match`` gives each query vector its most similar identity, or None below ``threshold``.

    names: the identity of each vector (an identity may have several). vectors: (M, D), L2-normalised here.
    threshold: cosine similarity in [-1, 1] from which a match counts.
    """

    def __init__(self, names: Sequence[str], vectors: np.ndarray, threshold: float = 0.5,
                 files: Optional[Sequence[str]] = None) -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(names) or not len(names):
            raise EdgeError(f"a gallery needs one vector per name, got {len(names)} names and vectors of shape "
                            f"{vectors.shape}", fix="enrol at least one picture", where=WHERE)
        if not (isinstance(threshold, (int, float)) and -1.0 <= threshold <= 1.0):
            raise EdgeError(f"the match threshold must be a cosine similarity in [-1, 1], got {threshold!r}",
                            fix="give e.g. --match-threshold 0.5", where="--match-threshold")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        self.vectors = vectors / np.maximum(norms, 1e-12)
        self.names = list(names)
        self.identities = sorted(set(self.names))
        self.threshold = float(threshold)
        self.files = list(files) if files is not None else None
        index = {name: k for k, name in enumerate(self.identities)}
        self._identity_of = np.array([index[name] for name in self.names], np.int64)

    def __repr__(self) -> str:
        return (f"Gallery({len(self.identities)} identities, {len(self.names)} pictures, "
                f"threshold {self.threshold:g})")

    @classmethod
    def from_folder(cls, folder: Union[str, Path], embed: Callable[[np.ndarray], Embeddings],
                    threshold: float = 0.5) -> "Gallery":
        """Enrol every picture of ``folder`` (see the module docstring for the layout) through ``embed``."""
        pictures = gallery_pictures(folder)
        names, vectors, files = [], [], []
        size = None
        for name, path in pictures:
            result = embed(_read(path))
            if not len(result):
                raise EdgeError(f"nothing found to enrol in gallery picture {path} (the detector found no object)",
                                fix="use a picture where the face (or object) is large and clear, or remove it",
                                where=WHERE)
            pick = _largest(result)
            vector = result.vectors[pick]
            if size is not None and len(vector) != size:
                raise EdgeError(f"gallery picture {path} gave a vector of {len(vector)} numbers, the others "
                                f"{size}", fix="enrol every picture with the same embedder", where=WHERE)
            if not float(result.norms[pick]) > 0:
                raise EdgeError(f"the embedder gave an empty (zero or not-a-number) vector for gallery picture {path}",
                                fix="use another picture of this identity, or check the embedder model", where=WHERE)
            size = len(vector)
            names.append(name)
            vectors.append(vector)
            files.append(str(path))
        return cls(names, np.stack(vectors), threshold, files)

    def similarities(self, vectors: np.ndarray) -> np.ndarray:
        """(N, identities): each query's best cosine similarity with each identity's pictures."""
        vectors = np.asarray(vectors, dtype=np.float32).reshape(-1, self.vectors.shape[1])
        per_picture = vectors @ self.vectors.T
        out = np.full((len(vectors), len(self.identities)), -np.inf, np.float32)
        for identity in range(len(self.identities)):
            out[:, identity] = per_picture[:, self._identity_of == identity].max(axis=1)
        return out

    def match(self, result: Embeddings) -> Embeddings:
        """``result`` with ``identities`` (None: unknown) and ``similarities`` filled in."""
        if not len(result):
            return dataclasses.replace(result, identities=[], similarities=np.zeros(0, np.float32))
        if result.vectors.shape[1] != self.vectors.shape[1]:
            raise EdgeError(f"the gallery holds vectors of {self.vectors.shape[1]} numbers, the model gives "
                            f"{result.vectors.shape[1]}", fix="enrol the gallery with the same embedder", where=WHERE)
        scores = self.similarities(result.vectors)
        best = scores.argmax(axis=1)
        similarity = scores[np.arange(len(best)), best]
        identities: List[Optional[str]] = [self.identities[b] if s >= self.threshold else None
                                           for b, s in zip(best, similarity)]
        return dataclasses.replace(result, identities=identities, similarities=similarity)


def gallery_pictures(folder: Union[str, Path]) -> List[Tuple[str, Path]]:
    """(identity, picture path) for every picture of a gallery folder, in natural order."""
    from edge.sources.images import image_files

    root = Path(folder)
    if not root.is_dir():
        raise EdgeError(f"gallery folder {root} not found" if not root.exists() else f"{root} is not a folder",
                        fix="give a folder with one picture per person (alice.jpg) or one folder per person",
                        where=WHERE)
    pictures = [(path.stem, path) for path in image_files(root)]
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        pictures += [(sub.name, path) for path in image_files(sub)]
    if not pictures:
        raise EdgeError(f"the gallery folder {root} holds no pictures (.jpg, .png, ...)",
                        fix="add one picture per person (alice.jpg) or one folder of pictures per person", where=WHERE)
    return pictures


def _read(path: Path) -> np.ndarray:
    from edge.sources.images import read_image

    try:
        return read_image(path)
    except EdgeError:
        raise EdgeError(f"cannot decode gallery picture {path}", fix="check that it opens in an image viewer, "
                        "or remove it", where=WHERE) from None


def _largest(result: Embeddings) -> int:
    """The object to enrol from a picture: the largest box (the only vector when there are no boxes)."""
    if result.boxes_xyxy is None or len(result) == 1:
        return 0
    boxes = result.boxes_xyxy
    return int(np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])))


class Recognizer:
    """An embedding model (or a detector + embedder :class:`~edge.cascade.Cascade`) whose results are matched
    against a gallery: the same stages as a Model, so the camera pipeline runs and times it unchanged."""

    def __init__(self, model: Any, gallery: Gallery) -> None:
        if model.task != "embed":
            raise EdgeError(f"--gallery matches embeddings, but this model gives {model.task} results",
                            fix="drop --gallery, or use an embedding model (alone or with --then)", where=WHERE)
        self.model, self.gallery = model, gallery

    task = property(lambda self: self.model.task)
    config = property(lambda self: self.model.config)
    last_timings_ms = property(lambda self: getattr(self.model, "last_timings_ms", {}))

    def describe(self) -> str:
        """The model's line and the gallery's."""
        return f"{self.model.describe()}; {self.gallery!r}"

    def preprocess(self, image_bgr: np.ndarray) -> Any:
        """The model's preprocessing."""
        return self.model.preprocess(image_bgr)

    def infer(self, tensor: np.ndarray) -> Any:
        """The model's inference."""
        return self.model.infer(tensor)

    def decode(self, outputs: Any, transform: Any) -> Embeddings:
        """The model's embeddings, matched to the gallery."""
        return self.gallery.match(self.model.decode(outputs, transform))

    def __call__(self, image_bgr: np.ndarray) -> Embeddings:
        """All stages on one frame."""
        return self.gallery.match(self.model(image_bgr))

    def close(self) -> None:
        """Close the model."""
        self.model.close()

    def __enter__(self) -> "Recognizer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
