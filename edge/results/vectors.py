"""Embeddings (embed): unit vectors, one per frame or per detection, with gallery identities."""

from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import numpy as np


@dataclass
class Embeddings:
    """Embedding vectors for one frame: one for the whole frame (an embedder alone) or one per detection
    (a detector + embedder cascade, see :mod:`edge.cascade`), each optionally matched to a gallery.

    vectors: (N, D) float32, unit length when normalised (a zero or non-finite model output stays all
        zeros: it matches nothing). norms: (N,) float32, each vector's length before normalisation.
    boxes_xyxy: (N, 4) float32 source-frame pixels of the object each vector describes, or None (the
        whole frame). scores: (N,) detection scores, or None.
    identities: the gallery name each vector matched (None: unknown, below the match threshold), or
        None when no gallery was asked. similarities: (N,) cosine similarity to that best identity.
    """

    vectors: np.ndarray
    norms: np.ndarray
    boxes_xyxy: Optional[np.ndarray] = None
    scores: Optional[np.ndarray] = None
    identities: Optional[List[Optional[str]]] = None
    similarities: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        self.vectors = np.asarray(self.vectors, dtype=np.float32)
        if self.vectors.ndim != 2:
            self.vectors = self.vectors.reshape(-1, self.vectors.shape[-1] if self.vectors.ndim else 0)
        n = len(self.vectors)
        self.norms = np.asarray(self.norms, dtype=np.float32).reshape(n)
        if self.boxes_xyxy is not None:
            self.boxes_xyxy = np.asarray(self.boxes_xyxy, dtype=np.float32).reshape(n, 4)
        if self.scores is not None:
            self.scores = np.asarray(self.scores, dtype=np.float32).reshape(n)
        if self.similarities is not None:
            self.similarities = np.asarray(self.similarities, dtype=np.float32).reshape(n)
        if self.identities is not None and len(self.identities) != n:
            raise ValueError(f"{len(self.identities)} identities for {n} vectors")

    @classmethod
    def from_raw(cls, vectors: np.ndarray, normalize: bool = True, **fields: Any) -> "Embeddings":
        """Wrap raw model vectors (N, D): non-finite ones become zeros, then each is L2-normalised."""
        raw = np.asarray(vectors, dtype=np.float32)
        raw = np.where(np.isfinite(raw).all(axis=1, keepdims=True), raw, np.float32(0))
        norms = np.linalg.norm(raw, axis=1).astype(np.float32)
        if normalize:
            raw = raw / np.maximum(norms, np.float32(1e-12))[:, None]
        return cls(raw, norms, **fields)

    @classmethod
    def empty(cls, size: int) -> "Embeddings":
        """No vectors of length ``size`` (a cascade whose detector found nothing)."""
        return cls(np.zeros((0, size), np.float32), np.zeros(0, np.float32), boxes_xyxy=np.zeros((0, 4), np.float32),
                   scores=np.zeros(0, np.float32))

    def __len__(self) -> int:
        return len(self.vectors)

    def to_json(self) -> Dict[str, Any]:
        """Plain-JSON form: one dict per vector (the vector to 6 decimals, with box, identity when known)."""
        items = []
        for i in range(len(self)):
            item: Dict[str, Any] = {"vector": [round(float(v), 6) for v in self.vectors[i]],
                                    "norm": round(float(self.norms[i]), 4)}
            if self.boxes_xyxy is not None:
                item["box_xyxy"] = [round(float(v), 2) for v in self.boxes_xyxy[i]]
            if self.scores is not None:
                item["score"] = round(float(self.scores[i]), 4)
            if self.identities is not None:
                item["identity"] = self.identities[i]
                item["similarity"] = round(float(self.similarities[i]), 4) if self.similarities is not None else None
            items.append(item)
        return {"task": "embed", "embeddings": items}
