"""The enums of the fake ``tensorrt`` module, numbered as the real bindings number them.

Each table row is (member, number, since, until): the member exists for ``since <= version < until``.
The numbers and members were read from the real ``tensorrt-bindings`` 8.6.1 and
``tensorrt-cu12-bindings`` 10.3.0, 10.13.3.9 and 11.1.0.106 wheels (tests/trt/test_bindings_surface.py
checks them against those wheels). Members added between 10.3 and 10.13 carry a ``since`` that is
an estimate (marked "~"); only their presence in 10.13 is checked. No 8.2 bindings wheel was ever
published (PyPI has tensorrt-bindings 8.6.1 only): the 8.2 rows were read from the binding sources at
NVIDIA/TensorRT tag 8.2.1 (python/src/infer/pyCore.cpp, pyFoundationalTypes.cpp, parsers/pyOnnx.cpp).
"""

import enum
from typing import Any, List, Sequence, Tuple


class _TrtEnum(enum.IntEnum):
    def __str__(self) -> str:  # pybind11 enums print as "DataType.FLOAT"
        return f"{type(self).__name__}.{self._name_}"


class _MethodNameEnum(_TrtEnum):
    """An enum whose ``name`` is a method returning "ErrorCode.X", as TensorRT 8.6/10.x bind ErrorCode."""

    def name(self) -> str:  # type: ignore[override]
        return f"{type(self).__name__}.{self._name_}"

Row = Tuple[str, int, Tuple[int, int], Tuple[int, int]]
ALWAYS, NEVER = (0, 0), (99, 0)

BUILDER_FLAG: List[Row] = [
    # 8.x numbering
    ("FP16", 0, ALWAYS, (11, 0)), ("INT8", 1, ALWAYS, (11, 0)), ("DEBUG", 2, ALWAYS, NEVER),
    ("GPU_FALLBACK", 3, ALWAYS, NEVER), ("STRICT_TYPES", 4, ALWAYS, (10, 0)), ("REFIT", 5, ALWAYS, (10, 0)),
    ("DISABLE_TIMING_CACHE", 6, ALWAYS, (10, 0)), ("TF32", 7, ALWAYS, (10, 0)),
    ("SPARSE_WEIGHTS", 8, ALWAYS, (10, 0)), ("SAFETY_SCOPE", 9, ALWAYS, (10, 0)),
    ("OBEY_PRECISION_CONSTRAINTS", 10, (8, 2), (10, 0)), ("PREFER_PRECISION_CONSTRAINTS", 11, (8, 2), (10, 0)),
    ("DIRECT_IO", 12, (8, 2), (10, 0)), ("REJECT_EMPTY_ALGORITHMS", 13, (8, 2), (10, 0)),
    ("ENABLE_TACTIC_HEURISTIC", 14, (8, 5), (10, 0)), ("VERSION_COMPATIBLE", 15, (8, 6), (10, 0)),
    ("EXCLUDE_LEAN_RUNTIME", 16, (8, 6), (10, 0)), ("FP8", 17, (8, 6), (10, 0)),
    # 10.x renumbered (STRICT_TYPES removed); 11.x removed the precision flags and renumbered again
    ("REFIT", 4, (10, 0), NEVER), ("DISABLE_TIMING_CACHE", 5, (10, 0), NEVER), ("TF32", 6, (10, 0), NEVER),
    ("SPARSE_WEIGHTS", 7, (10, 0), NEVER), ("SAFETY_SCOPE", 8, (10, 0), NEVER),
    ("OBEY_PRECISION_CONSTRAINTS", 9, (10, 0), (11, 0)), ("PREFER_PRECISION_CONSTRAINTS", 10, (10, 0), (11, 0)),
    ("DIRECT_IO", 11, (10, 0), NEVER), ("REJECT_EMPTY_ALGORITHMS", 12, (10, 0), (11, 0)),
    ("VERSION_COMPATIBLE", 13, (10, 0), (11, 0)), ("EXCLUDE_LEAN_RUNTIME", 14, (10, 0), (11, 0)),
    ("FP8", 15, (10, 0), (11, 0)), ("ERROR_ON_TIMING_CACHE_MISS", 16, (10, 0), (11, 0)),
    ("BF16", 17, (10, 0), (11, 0)), ("DISABLE_COMPILATION_CACHE", 18, (10, 0), (11, 0)),
    ("STRIP_PLAN", 19, (10, 0), (11, 0)), ("WEIGHTLESS", 19, (10, 0), (11, 0)),
    ("REFIT_IDENTICAL", 20, (10, 0), (11, 0)), ("WEIGHT_STREAMING", 21, (10, 0), (11, 0)),
    ("INT4", 22, (10, 0), (11, 0)), ("REFIT_INDIVIDUAL", 23, (10, 0), (11, 0)),
    ("STRICT_NANS", 24, (10, 8), (11, 0)), ("MONITOR_MEMORY", 25, (10, 8), (11, 0)),  # ~since
    ("FP4", 26, (10, 8), (11, 0)), ("EDITABLE_TIMING_CACHE", 27, (10, 8), (11, 0)),  # ~since
    ("DISTRIBUTIVE_INDEPENDENCE", 28, (10, 12), (11, 0)),  # ~since
    ("VERSION_COMPATIBLE", 12, (11, 0), NEVER), ("EXCLUDE_LEAN_RUNTIME", 13, (11, 0), NEVER),
    ("ERROR_ON_TIMING_CACHE_MISS", 15, (11, 0), NEVER), ("DISABLE_COMPILATION_CACHE", 17, (11, 0), NEVER),
    ("STRIP_PLAN", 18, (11, 0), NEVER), ("REFIT_IDENTICAL", 19, (11, 0), NEVER),
    ("WEIGHT_STREAMING", 20, (11, 0), NEVER), ("REFIT_INDIVIDUAL", 22, (11, 0), NEVER),
    ("STRICT_NANS", 23, (11, 0), NEVER), ("MONITOR_MEMORY", 24, (11, 0), NEVER),
    ("EDITABLE_TIMING_CACHE", 26, (11, 0), NEVER), ("DISTRIBUTIVE_INDEPENDENCE", 27, (11, 0), NEVER),
]
NETWORK_FLAG: List[Row] = [
    ("EXPLICIT_BATCH", 0, ALWAYS, (11, 0)), ("EXPLICIT_PRECISION", 1, ALWAYS, (10, 0)),
    ("STRONGLY_TYPED", 1, (9, 0), (11, 0)), ("PREFER_JIT_PYTHON_PLUGINS", 2, (10, 6), (11, 0)),  # ~since
    ("PREFER_AOT_PYTHON_PLUGINS", 3, (10, 8), (11, 0)),  # ~since
    ("STRONGLY_TYPED", 0, (11, 0), NEVER), ("PREFER_JIT_PYTHON_PLUGINS", 1, (11, 0), NEVER),
    ("PREFER_AOT_PYTHON_PLUGINS", 2, (11, 0), NEVER),
]
MEMORY_POOL: List[Row] = [
    ("WORKSPACE", 0, ALWAYS, NEVER), ("DLA_MANAGED_SRAM", 1, ALWAYS, NEVER), ("DLA_LOCAL_DRAM", 2, ALWAYS, NEVER),
    ("DLA_GLOBAL_DRAM", 3, ALWAYS, NEVER), ("TACTIC_DRAM", 4, (8, 6), NEVER),
    ("TACTIC_SHARED_MEMORY", 5, (10, 0), NEVER),
]
PROFILING_VERBOSITY: List[Row] = [  # DEFAULT / VERBOSE: 8.x aliases of LAYER_NAMES_ONLY / DETAILED
    ("LAYER_NAMES_ONLY", 0, ALWAYS, NEVER), ("NONE", 1, ALWAYS, NEVER), ("DETAILED", 2, ALWAYS, NEVER),
    ("DEFAULT", 0, ALWAYS, (10, 0)), ("VERBOSE", 2, ALWAYS, (10, 0)),
]
DATA_TYPE: List[Row] = [
    ("FLOAT", 0, ALWAYS, NEVER), ("HALF", 1, ALWAYS, NEVER), ("INT8", 2, ALWAYS, NEVER), ("INT32", 3, ALWAYS, NEVER),
    ("BOOL", 4, ALWAYS, NEVER), ("UINT8", 5, (8, 5), NEVER),  # 8.2.1 pyFoundationalTypes.cpp: no UINT8
    ("FP8", 6, (8, 6), NEVER), ("BF16", 7, (9, 0), NEVER),
    ("INT64", 8, (10, 0), NEVER), ("INT4", 9, (10, 0), NEVER),
    ("FP4", 10, (10, 8), NEVER), ("E8M0", 11, (10, 12), NEVER),  # ~since
]
ERROR_CODE: List[Row] = [
    ("SUCCESS", 0, ALWAYS, NEVER), ("INTERNAL_ERROR", 1, ALWAYS, NEVER), ("MEM_ALLOC_FAILED", 2, ALWAYS, NEVER),
    ("MODEL_DESERIALIZE_FAILED", 3, ALWAYS, NEVER), ("INVALID_VALUE", 4, ALWAYS, NEVER),
    ("INVALID_GRAPH", 5, ALWAYS, NEVER), ("INVALID_NODE", 6, ALWAYS, NEVER), ("UNSUPPORTED_GRAPH", 7, ALWAYS, NEVER),
    ("UNSUPPORTED_NODE", 8, ALWAYS, NEVER), ("UNSUPPORTED_NODE_ATTR", 9, (10, 0), NEVER),
    ("UNSUPPORTED_NODE_INPUT", 10, (10, 0), NEVER), ("UNSUPPORTED_NODE_DATATYPE", 11, (10, 0), NEVER),
    ("UNSUPPORTED_NODE_DYNAMIC", 12, (10, 0), NEVER), ("UNSUPPORTED_NODE_SHAPE", 13, (10, 0), NEVER),
    ("REFIT_FAILED", 14, (10, 0), NEVER),
]


def sequential(names: Sequence[str]) -> List[Row]:
    """Rows numbered 0, 1, 2... in order, present in every version."""
    return [(name, i, ALWAYS, NEVER) for i, name in enumerate(names)]


SIMPLE = {
    "DeviceType": sequential(["GPU", "DLA"]),
    "LayerInformationFormat": sequential(["ONELINE", "JSON"]),
    "TensorIOMode": sequential(["NONE", "INPUT", "OUTPUT"]),
    "Severity": sequential(["INTERNAL_ERROR", "ERROR", "WARNING", "INFO", "VERBOSE"]),
    "CalibrationAlgoType": sequential(["LEGACY_CALIBRATION", "ENTROPY_CALIBRATION", "ENTROPY_CALIBRATION_2",
                                       "MINMAX_CALIBRATION"]),
}
#: enums that a TensorRT before ``since`` lacks altogether (8.2.1 pyCore.cpp: no MemoryPoolType, no TensorIOMode)
ENUM_SINCE = {"MemoryPoolType": (8, 4), "TensorIOMode": (8, 5)}
TABLES = {"BuilderFlag": BUILDER_FLAG, "NetworkDefinitionCreationFlag": NETWORK_FLAG, "MemoryPoolType": MEMORY_POOL,
          "ProfilingVerbosity": PROFILING_VERBOSITY, "DataType": DATA_TYPE, "ErrorCode": ERROR_CODE, **SIMPLE}


def members(name: str, version: Tuple[int, int]) -> List[Tuple[str, int]]:
    """(member, number) of enum ``name`` in TensorRT ``version``, canonical names before their aliases."""
    return [(member, number) for member, number, since, until in TABLES[name] if since <= version < until]


def make_enum(base: Any, name: str, version: Tuple[int, int]) -> Any:
    """The enum class ``name`` of ``version``, derived from ``base`` (an IntEnum subclass)."""
    return base(name, members(name, version))
