"""The KServe v2 inference protocol (Triton's) as the triton backend speaks it: a standard-library HTTP/REST
client on one keep-alive connection, with the binary tensor extension (raw little-endian bytes after a JSON
header) where the server takes it and JSON otherwise, and a gRPC client over ``tritonclient.grpc``. Both
raise ServerGone when the server does not answer; edge/backends/triton.py turns that into one-line errors."""

import json
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple
from urllib.parse import quote

import numpy as np

from edge.errors import EdgeError, MissingDependency

#: numpy dtype name -> KServe v2 datatype
DATATYPES = {
    "bool": "BOOL", "uint8": "UINT8", "uint16": "UINT16", "uint32": "UINT32", "uint64": "UINT64",
    "int8": "INT8", "int16": "INT16", "int32": "INT32", "int64": "INT64", "float16": "FP16",
    "float32": "FP32", "float64": "FP64",
}
NUMPY_TYPES = {v2: np.dtype(name) for name, v2 in DATATYPES.items()}

HEADER_LENGTH = "Inference-Header-Content-Length"
GRPC_FIX = "pip install 'tritonclient[grpc]', or use the server's HTTP port (--triton-url http://HOST:8000)"

def _first_line(text: Any) -> str:
    lines = str(text).strip().splitlines()
    return (lines[0] if lines else "")[:300]


class ServerGone(Exception):
    """The server did not answer (refused, reset, timed out); str() is the reason."""


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
