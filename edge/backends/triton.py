"""Triton Inference Server (or any server speaking its KServe v2 protocol) as a backend.

The model is a repository entry written by ``edge-export triton`` (``REPO/NAME``, or the
``REPO/NAME/<version>/model.onnx`` inside it): the edge config comes from its ``edge_config.json``,
preprocessing and decoding run here, and only the tensors cross the network. The server's model
metadata must match the entry (names, element types, static dimensions), else prepare fails.

HTTP/REST uses the standard library on one keep-alive connection, with the binary tensor
extension (raw little-endian bytes after a JSON header) where the server takes it, JSON
otherwise; gRPC uses ``tritonclient.grpc``. Each call's round trip (send, server, receive; not the
encoding around it) is ``last_network_ms``, the "network" stage of the camera pipeline.
"""

import json
import re
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union
from urllib.parse import quote, urlsplit

import numpy as np

from edge.backends.base import Backend
from edge.errors import EdgeError, MissingDependency
from edge.onnxfile import TensorSpec

#: numpy dtype name -> KServe v2 datatype
DATATYPES = {
    "bool": "BOOL", "uint8": "UINT8", "uint16": "UINT16", "uint32": "UINT32", "uint64": "UINT64",
    "int8": "INT8", "int16": "INT16", "int32": "INT32", "int64": "INT64", "float16": "FP16",
    "float32": "FP32", "float64": "FP64",
}
NUMPY_TYPES = {v2: np.dtype(name) for name, v2 in DATATYPES.items()}
DEFAULT_PORTS = {"http": 8000, "https": 443, "grpc": 8001}
DEFAULT_TIMEOUT_S = 10.0
HEADER_LENGTH = "Inference-Header-Content-Length"
URL_FIX = "pass the server's address as --triton-url http://HOST:8000 (HTTP) or grpc://HOST:8001 (gRPC)"
START_FIX = "start the server (tritonserver --model-repository REPO) or correct --triton-url"
GRPC_FIX = "pip install 'tritonclient[grpc]', or use the server's HTTP port (--triton-url http://HOST:8000)"
ENTRY_MODEL = "model.onnx"
MISMATCH_FIX = ("serve this entry's model (copy the entry to the server's repository and load it), or pass the "
                "entry of the model the server has")


class ServerGone(Exception):
    """The server did not answer (refused, reset, timed out); str() is the reason."""


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


def _first_line(text: Any) -> str:
    lines = str(text).strip().splitlines()
    return (lines[0] if lines else "")[:300]


class HttpClient:
    """KServe v2 over HTTP/REST on one keep-alive connection (standard library only)."""

    def __init__(self, scheme: str, host: str, port: int, timeout_s: float, binary: Optional[bool]) -> None:
        self.scheme, self.host, self.port, self.timeout_s = scheme, host, port, timeout_s
        self.binary = binary  # True/False as asked; None: binary where the server takes it (decided at connect)
        self._connection: Any = None

    def _connect(self) -> Any:
        import http.client  # here, not at the top: http.client brings email and ssl (~10 ms of start-up)
        import socket

        opener = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        connection = opener(self.host, self.port, timeout=self.timeout_s)
        connection.connect()
        connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small requests leave at once
        return connection

    def request(self, method: str, path: str, body: Optional[bytes] = None,
                headers: Optional[Dict[str, str]] = None) -> Tuple[int, Any, bytearray]:
        """(status, response headers, body); ServerGone when the server does not answer.

        A kept-alive connection the server has since closed is retried once on a new connection.
        """
        import http.client

        reused = self._connection is not None
        try:
            return self._exchange(method, path, body, headers)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            if not reused:
                raise ServerGone(_first_line(exc) or type(exc).__name__) from None
        try:
            return self._exchange(method, path, body, headers)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise ServerGone(_first_line(exc) or type(exc).__name__) from None

    def _exchange(self, method: str, path: str, body: Optional[bytes],
                  headers: Optional[Dict[str, str]]) -> Tuple[int, Any, bytearray]:
        if self._connection is None:
            self._connection = self._connect()
        self._connection.request(method, path, body=body, headers=headers or {})
        response = self._connection.getresponse()
        import http.client

        length = response.getheader("Content-Length")
        if length is not None and length.isdigit():
            data = bytearray(int(length))
            if response.readinto(data) != len(data):
                raise http.client.IncompleteRead(bytes(data))
        else:
            data = bytearray(response.read())
        return response.status, response.headers, data

    def get_json(self, path: str, method: str = "GET") -> Tuple[int, Any]:
        """(status, parsed JSON body or None)."""
        status, _, data = self.request(method, path, b"" if method == "POST" else None)
        try:
            return status, json.loads(data.decode("utf-8")) if data else None
        except ValueError:
            return status, None

    def live(self) -> Dict[str, Any]:
        """The server metadata (name, version, extensions); ServerGone when it does not answer."""
        status, metadata = self.get_json("/v2")
        metadata = metadata if status == 200 and isinstance(metadata, dict) else {}
        if self.binary is None and "binary_tensor_data" in (metadata.get("extensions") or ()):
            self.binary = True
        return metadata

    def model_ready(self, model: str, version: str) -> bool:
        """Whether the server has the model loaded and ready."""
        return self.get_json(_model_path(model, version) + "/ready")[0] == 200

    def model_metadata(self, model: str, version: str) -> Dict[str, Any]:
        """The model's metadata: inputs and outputs (name, datatype, shape)."""
        status, body = self.get_json(_model_path(model, version))
        if status != 200 or not isinstance(body, dict):
            raise EdgeError(f"the server gave no metadata for model '{model}' (HTTP {status}: {_server_error(body)})",
                            fix="check the model loaded on the server", where="--triton-model")
        return body

    def model_names(self) -> Optional[List[str]]:
        """The models the server knows (Triton's repository index, else KServe's model list), or None."""
        status, index = self.get_json("/v2/repository/index", "POST")
        if status == 200 and isinstance(index, list):
            return [f"{m.get('name')} ({m.get('state') or 'unknown state'})" for m in index if isinstance(m, dict)]
        status, listed = self.get_json("/v2/models")
        if status == 200 and isinstance(listed, dict) and isinstance(listed.get("models"), list):
            return [str(name) for name in listed["models"]]
        return None

    def infer(self, model: str, version: str, feeds: Dict[str, np.ndarray],
              outputs: Sequence[str]) -> Tuple[Dict[str, np.ndarray], float]:
        """(outputs by name, round trip in ms). A server refusing binary tensors is asked again in JSON."""
        binary = self.binary is not False
        body, headers = _encode_request(feeds, outputs, binary)
        start = time.perf_counter()
        status, response_headers, data = self.request("POST", _model_path(model, version) + "/infer", body, headers)
        network_ms = (time.perf_counter() - start) * 1e3
        if status in (400, 415, 422) and binary and self.binary is None:
            self.binary = False  # a guess that failed: this server takes JSON only
            return self.infer(model, version, feeds, outputs)
        if status == 200 and self.binary is None:
            self.binary = True
        if status != 200:
            raise EdgeError(f"the server failed the inference (HTTP {status}: {_server_error(_json_or_none(data))})",
                            fix="check the server's log", where=f"--triton-model {model}")
        return _decode_response(data, response_headers.get(HEADER_LENGTH)), network_ms

    def close(self) -> None:
        """Close the connection (a later request opens a new one)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _model_path(model: str, version: str) -> str:
    path = "/v2/models/" + quote(model, safe="")
    return path + ("/versions/" + quote(version, safe="") if version else "")


def _json_or_none(data: bytes) -> Any:
    try:
        return json.loads(bytes(data).decode("utf-8"))
    except ValueError:
        return None


def _server_error(body: Any) -> str:
    if isinstance(body, dict):
        return _first_line(body.get("error") or body.get("detail") or body) or "no reason given"
    return "no reason given"


def _datatype(array: np.ndarray) -> str:
    name = array.dtype.name
    if name not in DATATYPES:
        raise EdgeError(f"tensors of {name} have no KServe v2 datatype", fix="feed a numeric tensor",
                        where="--backend triton")
    return DATATYPES[name]


def _encode_request(feeds: Dict[str, np.ndarray], outputs: Sequence[str], binary: bool) -> Tuple[bytes, Dict[str, str]]:
    """The body and headers of an infer request: a JSON header, then raw tensors when ``binary``."""
    inputs, raw = [], []
    for name, array in feeds.items():
        tensor: Dict[str, Any] = {"name": name, "shape": list(array.shape), "datatype": _datatype(array)}
        if binary:
            chunk = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
            tensor["parameters"] = {"binary_data_size": len(chunk)}
            raw.append(chunk)
        else:
            tensor["data"] = array.ravel().tolist()
        inputs.append(tensor)
    wanted = [{"name": name, "parameters": {"binary_data": binary}} for name in outputs]
    header = json.dumps({"inputs": inputs, "outputs": wanted}, separators=(",", ":")).encode("utf-8")
    if not binary:
        return header, {"Content-Type": "application/json"}
    return header + b"".join(raw), {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(len(header))}


def _decode_response(data: bytearray, header_length: Optional[str]) -> Dict[str, np.ndarray]:
    """Output arrays from a response body: JSON, or a JSON header and raw tensors after it."""
    size = int(header_length) if header_length and header_length.isdigit() else len(data)
    body = _json_or_none(data[:size])
    if not isinstance(body, dict) or not isinstance(body.get("outputs"), list):
        raise EdgeError("the server's response holds no outputs", fix="check the server speaks KServe v2",
                        where="--triton-url")
    view, offset, arrays = memoryview(data), size, {}
    for output in body["outputs"]:
        dtype = NUMPY_TYPES.get(output.get("datatype"))
        if dtype is None:
            raise EdgeError(f"output '{output.get('name')}' is {output.get('datatype')}, which edge cannot decode",
                            fix="serve a model with numeric outputs", where="--triton-model")
        shape = [int(d) for d in output.get("shape", [])]
        length = (output.get("parameters") or {}).get("binary_data_size")
        if length is not None:
            array = np.frombuffer(view[offset:offset + int(length)], dtype=dtype.newbyteorder("<"))
            offset += int(length)
        else:
            array = np.asarray(output.get("data"), dtype=dtype)
        arrays[output["name"]] = array.astype(dtype, copy=False).reshape(shape)
    return arrays


class GrpcClient:
    """KServe v2 over gRPC through tritonclient.grpc (imported on connect)."""

    binary = True  # tensors travel as raw bytes in gRPC

    def __init__(self, host: str, port: int, timeout_s: float) -> None:
        try:
            import tritonclient.grpc as grpcclient
            from tritonclient.utils import InferenceServerException
        except ImportError:
            raise MissingDependency("tritonclient.grpc", "the triton backend over gRPC", GRPC_FIX) from None
        self._grpc, self._failure, self.timeout_s = grpcclient, InferenceServerException, timeout_s
        self._client = grpcclient.InferenceServerClient(url=f"{host}:{port}")

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self._client, method)(*args, **kwargs)
        except self._failure as exc:
            if "UNAVAILABLE" in str(exc.status()) or "DEADLINE_EXCEEDED" in str(exc.status()):
                raise ServerGone(_first_line(exc.message()) or "unavailable") from None
            raise EdgeError(f"the server refused {method} ({_first_line(exc.message())})",
                            fix="check the server's log", where="--triton-url") from None

    def live(self) -> Dict[str, Any]:
        """The server metadata (name, version, extensions); ServerGone when it does not answer."""
        self._call("is_server_live", client_timeout=self.timeout_s)
        return self._call("get_server_metadata", as_json=True, client_timeout=self.timeout_s) or {}

    def model_ready(self, model: str, version: str) -> bool:
        """Whether the server has the model loaded and ready."""
        try:
            return bool(self._call("is_model_ready", model, version, client_timeout=self.timeout_s))
        except EdgeError:  # an unknown model is an error status here, not False
            return False

    def model_metadata(self, model: str, version: str) -> Dict[str, Any]:
        """The model's metadata: inputs and outputs (name, datatype, shape)."""
        metadata = self._call("get_model_metadata", model, version, as_json=True, client_timeout=self.timeout_s)
        for tensor in list(metadata.get("inputs", [])) + list(metadata.get("outputs", [])):
            tensor["shape"] = [int(d) for d in tensor.get("shape", [])]  # JSON from protobuf writes int64 as text
        return metadata

    def model_names(self) -> Optional[List[str]]:
        """The models in the server's repository index, or None where it has no index."""
        try:
            index = self._call("get_model_repository_index", as_json=True, client_timeout=self.timeout_s)
        except EdgeError:
            return None
        return [f"{m.get('name')} ({m.get('state') or 'unknown state'})" for m in (index or {}).get("models", [])]

    def infer(self, model: str, version: str, feeds: Dict[str, np.ndarray],
              outputs: Sequence[str]) -> Tuple[Dict[str, np.ndarray], float]:
        """(outputs by name, round trip in ms, protobuf encoding included)."""
        inputs = []
        for name, array in feeds.items():
            tensor = self._grpc.InferInput(name, list(array.shape), _datatype(array))
            tensor.set_data_from_numpy(np.ascontiguousarray(array))
            inputs.append(tensor)
        wanted = [self._grpc.InferRequestedOutput(name) for name in outputs]
        start = time.perf_counter()
        result = self._call("infer", model, inputs, model_version=version, outputs=wanted,
                            client_timeout=self.timeout_s)
        network_ms = (time.perf_counter() - start) * 1e3
        return {name: result.as_numpy(name) for name in outputs}, network_ms

    def close(self) -> None:
        """Close the channel."""
        self._client.close()


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

