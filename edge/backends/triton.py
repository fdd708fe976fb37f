"""Triton Inference Server (or any server speaking its KServe v2 protocol) as a backend.

The model is a repository entry written by ``edge-export triton`` (``REPO/NAME``, or the
``REPO/NAME/<version>/model.onnx`` inside it): the edge config comes from its ``edge_config.json``,
preprocessing and decoding run here, and only the tensors cross the network. The server's model
metadata must match the entry (names, element types, static dimensions), else prepare fails.

HTTP/REST uses the standard library on one keep-alive connection, with the binary tensor
extension (raw little-endian bytes after a JSON header) where the server takes it, JSON
otherwise; gRPC uses ``tritonclient.grpc`` (the clients: edge/backends/kserve.py). Each call's round
trip (send, server, receive; not the encoding around it) is ``last_network_ms``, the "network" stage of the
camera pipeline.
"""

import re
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple, Union
from urllib.parse import urlsplit

import numpy as np

from edge.backends.base import Backend
from edge.backends.kserve import NUMPY_TYPES, GrpcClient, HttpClient, ServerGone
from edge.errors import EdgeError
from edge.onnxfile import TensorSpec

DEFAULT_PORTS = {"http": 8000, "https": 443, "grpc": 8001}
DEFAULT_TIMEOUT_S = 10.0
URL_FIX = "pass the server's address as --triton-url http://HOST:8000 (HTTP) or grpc://HOST:8001 (gRPC)"
START_FIX = "start the server (tritonserver --model-repository REPO) or correct --triton-url"
ENTRY_MODEL = "model.onnx"
MISMATCH_FIX = ("serve this entry's model (copy the entry to the server's repository and load it), or pass the "
                "entry of the model the server has")


def repository_entry(path: Path) -> Optional[Path]:
    """The repository entry (``REPO/NAME``) that ``path`` is or lies in, or None."""
    path = Path(path)
    for candidate in (path, path.parent.parent):
        if candidate.is_dir() and (candidate / "config.pbtxt").is_file():
            return candidate
    return None


def triton_entry(path: Path, config_file: Optional[Union[str, Path]]) -> Tuple[Path, Optional[Union[str, Path]]]:
    """For Model(): (ONNX file, config file) of a repository entry; other paths come back unchanged.

    The ONNX file is the given one, else the highest version's model.onnx; the config file is the
    entry's edge_config.json unless one was given (--config).
    """
    entry = repository_entry(path)
    if entry is None:
        return Path(path), config_file
    onnx = Path(path)
    if onnx == entry:
        versions = sorted((int(p.name), p) for p in entry.iterdir() if p.name.isdigit() and (p / ENTRY_MODEL).is_file())
        if not versions:
            raise EdgeError(f"the repository entry has no <version>/{ENTRY_MODEL}",
                            fix="write the entry with edge-export triton MODEL --repository REPO", where=str(entry))
        onnx = versions[-1][1] / ENTRY_MODEL
    written = entry / "edge_config.json"
    return onnx, config_file if config_file is not None or not written.is_file() else written


def entry_max_batch_size(entry: Path) -> Optional[int]:
    """``max_batch_size`` from the entry's config.pbtxt (the most frames per request), or None if absent."""
    found = re.search(r"^max_batch_size:\s*(\d+)", (entry / "config.pbtxt").read_text(encoding="utf-8"), re.M)
    return int(found.group(1)) if found else None


def parse_url(url: Any) -> Tuple[str, str, int]:
    """(scheme, host, port) of http://, https:// or grpc:// URL; EdgeError otherwise."""
    parts = urlsplit(str(url or ""))
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port, scheme = None, ""  # a port that is not a number
    if scheme not in DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/"):
        raise EdgeError(f"'{url}' is not a server address" if url else "the triton backend needs the server's address",
                        fix=URL_FIX, where="--triton-url")
    return scheme, parts.hostname, port or DEFAULT_PORTS[scheme]


class TritonBackend(Backend):
    """A model on a Triton (KServe v2) server. Options: triton_url, triton_model, triton_version,
    triton_timeout_s (default 10), triton_binary (HTTP: None = where the server takes it, True, False)."""

    name = "triton"
    summary = "Triton Inference Server or another KServe v2 server, over HTTP or gRPC (--triton-url)"
    #: runs on a server named by its options: never chosen by auto, not benchmarked without one
    remote = True

    def __init__(self, model_path: Union[str, Path], **kwargs: Any) -> None:
        super().__init__(model_path, **kwargs)
        self.url = str(self.options.get("triton_url") or "")
        entry = repository_entry(self.model_path)
        self.model = str(self.options.get("triton_model") or (entry.name if entry else self.model_path.stem))
        self.version = str(self.options.get("triton_version") or "")
        #: Triton's max_batch_size from the entry's config.pbtxt (0: the model's own batch dim, fixed), or None
        self.max_batch_size = entry_max_batch_size(entry) if entry else None
        self.last_network_ms = 0.0
        self._client: Any = None

    def _prepare(self) -> None:
        scheme, host, port = parse_url(self.url)
        timeout_s = float(self.options.get("triton_timeout_s") or DEFAULT_TIMEOUT_S)
        binary = self.options.get("triton_binary")
        self._client = GrpcClient(host, port, timeout_s) if scheme == "grpc" else \
            HttpClient(scheme, host, port, timeout_s, None if binary is None else bool(binary))
        try:
            server = self._client.live()
            if not self._client.model_ready(self.model, self.version):
                self._not_ready()
            metadata = self._client.model_metadata(self.model, self.version)
            where = f"--triton-model {self.model}"
            check_metadata("input", self.inputs, metadata.get("inputs"), where)
            check_metadata("output", self.outputs, metadata.get("outputs"), where)
        except ServerGone as exc:
            self._client.close()
            raise EdgeError(f"cannot reach the inference server at {self.url} ({exc})", fix=START_FIX,
                            where="--triton-url") from None
        except EdgeError:
            self._client.close()
            raise
        self._names = [o.name for o in self.outputs]
        served_by = " ".join(str(server.get(k)) for k in ("name", "version") if server.get(k)) or "a KServe v2 server"
        self.device = f"{served_by} at {self.url}, model {self.model}"
        if self.options.get("precision") or self.options.get("calib_images"):
            self.notes.append("the server's model decides the precision (edge-export triton --tensorrt-accelerator); "
                              "--precision and --calib-images are not used by --backend triton")

    def _not_ready(self) -> None:
        names = self._client.model_names()
        listed = f"models there: {', '.join(names) or 'none'}" if names is not None else "it does not list its models"
        raise EdgeError(f"the server at {self.url} has no ready model '{self.model}' ({listed})",
                        fix="pass --triton-model with one of them, or load the entry on the server",
                        where="--triton-model")

    def _infer(self, feeds: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        try:
            outputs, self.last_network_ms = self._client.infer(self.model, self.version, feeds, self._names)
        except ServerGone as exc:
            raise EdgeError(f"lost the inference server at {self.url} ({exc})",
                            fix="check the server is running and reachable, then run again",
                            where="--triton-url") from None
        missing = [name for name in self._names if name not in outputs]
        if missing:
            raise EdgeError(f"the server's response lacks output '{missing[0]}'", fix="check the server's model",
                            where=f"--triton-model {self.model}")
        return outputs

    def _close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def describe(self) -> str:
        """One line: the server, its address and the model (HTTP: binary or JSON tensors)."""
        transport = "" if self._client is None or isinstance(self._client, GrpcClient) else \
            {True: ", binary tensors", False: ", JSON tensors", None: ""}[self._client.binary]
        return f"{self.name} on {self.device}{transport}"


def check_metadata(kind: str, local: Sequence[TensorSpec], served: Any, where: str) -> None:
    """Every local input/output must be on the server with its element type and static dimensions."""
    served_by_name = {t.get("name"): t for t in served or () if isinstance(t, dict)}
    for spec in local:
        tensor = served_by_name.get(spec.name)
        if tensor is None:
            raise EdgeError(f"the server's model has no {kind} '{spec.name}' (its {kind}s: "
                            f"{', '.join(map(str, served_by_name)) or 'none'})", fix=MISMATCH_FIX, where=where)
        dims = [int(d) for d in tensor.get("shape") or ()]
        same_dims = len(dims) == len(spec.shape) and all(
            not isinstance(d, int) or s < 0 or d == s for d, s in zip(spec.shape, dims))
        if not same_dims or NUMPY_TYPES.get(tensor.get("datatype")) != spec.dtype:
            local_dims = [d if isinstance(d, int) else -1 for d in spec.shape]
            raise EdgeError(f"{kind} '{spec.name}' is {dims} {tensor.get('datatype')} on the server but "
                            f"{local_dims} {spec.dtype.name} in the repository entry", fix=MISMATCH_FIX, where=where)

