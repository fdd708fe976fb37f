"""A KServe v2 inference server for the Triton backend's tests: KServe's ModelServer over ONNX Runtime.

Triton itself does not install with pip; KServe's Python model server speaks the same protocol (KServe v2 /
Open Inference Protocol: REST with the binary tensor extension, and the ``inference.GRPCInferenceService``
gRPC service). This runtime serves every entry of a Triton model repository written by ``edge-export
triton`` (``REPO/NAME/<version>/model.onnx``, the highest version) under its folder name, like Triton does.

    python kserve_server.py REPO --http-port 8000 --grpc-port 8001
"""

import argparse
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

# ONNX Runtime element types -> KServe v2 datatypes
DATATYPES = {
    "tensor(bool)": "BOOL", "tensor(uint8)": "UINT8", "tensor(uint16)": "UINT16", "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64", "tensor(int8)": "INT8", "tensor(int16)": "INT16", "tensor(int32)": "INT32",
    "tensor(int64)": "INT64", "tensor(float16)": "FP16", "tensor(float)": "FP32", "tensor(double)": "FP64",
}


def entry_models(repository: Path) -> Dict[str, Path]:
    """Model name -> the ONNX file of its highest numbered version, for every entry in the repository."""
    found = {}
    for entry in sorted(p for p in repository.iterdir() if p.is_dir()):
        versions = sorted((int(v.name), v) for v in entry.iterdir() if v.is_dir() and v.name.isdigit())
        if versions and (versions[-1][1] / "model.onnx").is_file():
            found[entry.name] = versions[-1][1] / "model.onnx"
    return found


def tensor_metadata(node: Any) -> Dict[str, Any]:
    """One input or output as model metadata: name, datatype, shape (-1 for a dynamic dimension)."""
    return {"name": node.name, "datatype": DATATYPES[node.type],
            "shape": [d if isinstance(d, int) else -1 for d in node.shape]}


def make_model_class() -> Any:
    """The kserve.Model subclass (defined after kserve is imported, which parses sys.argv on import)."""
    import kserve
    from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

    class OnnxModel(kserve.Model):
        """One ONNX file on ONNX Runtime's CPU provider."""

        def __init__(self, name: str, path: Path) -> None:
            super().__init__(name)
            self.path = path
            self.session: Any = None

        def load(self) -> bool:
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = 1
            self.session = onnxruntime.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
            self.ready = True
            return self.ready

        def get_input_types(self) -> List[Dict[str, Any]]:
            return [tensor_metadata(node) for node in self.session.get_inputs()]

        def get_output_types(self) -> List[Dict[str, Any]]:
            return [tensor_metadata(node) for node in self.session.get_outputs()]

        def predict(self, payload: InferRequest, headers: Optional[Dict[str, str]] = None,
                    response_headers: Optional[Dict[str, str]] = None) -> InferResponse:
            feeds = {tensor.name: tensor.as_numpy() for tensor in payload.inputs}
            types = {node.name: DATATYPES[node.type] for node in self.session.get_outputs()}
            requested = payload.request_outputs
            names = [o.name for o in requested] if requested else list(types)
            arrays = self.session.run(names, feeds)
            binary = payload.use_binary_outputs
            outputs = []
            for name, array in zip(names, arrays):
                output = InferOutput(name, list(array.shape), types[name])
                output.set_data_from_numpy(np.ascontiguousarray(array), binary_data=binary)
                outputs.append(output)
            return InferResponse(response_id=payload.id or "", model_name=self.name, infer_outputs=outputs,
                                 from_grpc=payload.from_grpc, use_binary_outputs=binary,
                                 requested_outputs=requested)

    return OnnxModel


def main(argv: Optional[List[str]] = None) -> None:
    """Serve the repository until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("repository", type=Path)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--grpc-port", type=int, required=True)
    args = parser.parse_args(argv)
    sys.argv = sys.argv[:1]  # kserve parses the command line when imported
    import kserve

    model_class = make_model_class()
    models = []
    for name, path in entry_models(args.repository).items():
        model = model_class(name, path)
        model.load()
        models.append(model)
    server = kserve.ModelServer(http_port=args.http_port, grpc_port=args.grpc_port, enable_grpc=True,
                                enable_latency_logging=False, workers=1)
    server.start(models)


if __name__ == "__main__":
    main()
