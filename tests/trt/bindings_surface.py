"""The API surface of a real ``tensorrt`` bindings wheel, loaded without TensorRT's native libraries.

The ``tensorrt-bindings`` / ``tensorrt-cu12-bindings`` wheels hold only the pybind11 module
(``tensorrt_bindings/tensorrt.so``); it links against ``libnvinfer.so.N``, ``libnvonnxparser.so.N``,
``libnvinfer_plugin.so.N`` (and ``libnvparsers.so.8`` on 8.x), which are not installable here.
:func:`real_surface` unpacks the wheel, compiles one tiny C file that defines every function the
module imports from those libraries (each returns NULL) as each needed soname, and imports the
bindings in a subprocess with those stubs on ``LD_LIBRARY_PATH``. The module then imports as it would
on a machine whose GPU cannot start: ``trt.Builder(logger)`` raises ``TypeError`` ("factory function
returned nullptr"), exactly what real TensorRT does when CUDA cannot initialise.

:func:`surface` describes a module the same way for the real bindings and for the fakes:
public attributes of every class, and every enum's members with their numbers.

Wheels come from ``tests/trt/fetch_bindings.sh`` (a cache folder under /tmp, never committed).
"""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

WHEEL_DIR_ENV = "EDGE_TRT_WHEELS"
DEFAULT_WHEEL_DIR = Path("/tmp/edge-trt-wheels")
# fake version -> (PyPI distribution, version): the bindings the fake of that version must match
WHEELS = {
    "8.6.1": ("tensorrt_bindings", "8.6.1"),
    "10.3.0": ("tensorrt_cu12_bindings", "10.3.0"),
    "10.13.3": ("tensorrt_cu12_bindings", "10.13.3.9"),
    "11.1.0": ("tensorrt_cu12_bindings", "11.1.0.106"),
}


def wheel_dir() -> Path:
    """Where fetch_bindings.sh puts the wheels ($EDGE_TRT_WHEELS, else /tmp/edge-trt-wheels)."""
    return Path(os.environ.get(WHEEL_DIR_ENV) or DEFAULT_WHEEL_DIR)


def _is_enum(obj: Any) -> bool:
    return isinstance(obj, type) and isinstance(getattr(obj, "__members__", None), Mapping)


def _name_kind(enum_cls: Any) -> str:
    """'method' when ``member.name`` is a method (pybind11 enums of TensorRT 8.6/10.x), else 'property'."""
    members = list(enum_cls.__members__.values())
    return "method" if members and callable(members[0].name) else "property"


def surface(module: Any) -> Dict[str, Any]:
    """{"version", "classes": {name: [public attributes]}, "enums": {name: {member: number}},
    "enum_name_kind": {name: "method"|"property"}} for ``module`` and its nested enums (ILogger.Severity)."""
    classes: Dict[str, List[str]] = {}
    enums: Dict[str, Dict[str, int]] = {}
    name_kind: Dict[str, str] = {}
    for name in dir(module):
        obj = getattr(module, name)
        if name.startswith("_") or not isinstance(obj, type):
            continue
        if _is_enum(obj):
            enums[name] = {k: int(v) for k, v in obj.__members__.items()}
            name_kind[name] = _name_kind(obj)
            continue
        classes[name] = sorted(a for a in dir(obj) if not a.startswith("_"))
        for attr in classes[name]:
            nested = getattr(obj, attr, None)
            if _is_enum(nested) and attr[:1].isupper() and attr not in enums:
                enums[f"{name}.{attr}"] = {k: int(v) for k, v in nested.__members__.items()}
                name_kind[f"{name}.{attr}"] = _name_kind(nested)
    names = sorted(n for n in dir(module) if not n.startswith("_"))
    return {"version": str(module.__version__), "names": names, "classes": classes, "enums": enums,
            "enum_name_kind": name_kind}


def find_wheel(fake_version: str, folder: Optional[Path] = None) -> Tuple[Optional[Path], str]:
    """(wheel for this interpreter, "") or (None, why it is missing)."""
    dist, version = WHEELS[fake_version]
    folder = folder or wheel_dir()
    tag = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    found = sorted(folder.glob(f"{dist}-{version}-{tag}-*linux*_x86_64.whl")) if folder.is_dir() else []
    if found:
        return found[0], ""
    return None, (f"no {dist}=={version} wheel for {tag} in {folder} (run tests/trt/fetch_bindings.sh; "
                  "it needs PyPI)")


def _imported_functions(library: Path) -> Tuple[List[str], List[str]]:
    """(TensorRT sonames, TensorRT functions) the bindings library needs, read with readelf."""
    text = subprocess.run(["readelf", "-d", "--dyn-syms", "-W", str(library)], check=True, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE,
                          universal_newlines=True).stdout
    sonames = [line.split("[", 1)[1].rstrip("]") for line in text.splitlines() if "(NEEDED)" in line]
    functions = set()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 8 and parts[6] == "UND" and parts[3] == "FUNC" and "@" not in parts[7] \
                and not parts[7].startswith(("Py", "_Py")):
            functions.add(parts[7])
    return [s for s in sonames if s.startswith("libnv")], sorted(functions)


def prepare(wheel: Path, workdir: Path) -> Tuple[Path, Path]:
    """Unpack ``wheel`` and build its stub libraries; (folder for PYTHONPATH, folder for LD_LIBRARY_PATH)."""
    site = workdir / "site"
    stubs = workdir / "stubs"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    (site / "tensorrt").symlink_to("tensorrt_bindings")  # importable as ``tensorrt``, as the full wheels install it
    stubs.mkdir(parents=True, exist_ok=True)
    sonames, functions = _imported_functions(site / "tensorrt_bindings" / "tensorrt.so")
    source = stubs / "stub.c"
    source.write_text("".join(f'void *edge_stub_{i}(void) __asm__("{name}");\n'
                              f"void *edge_stub_{i}(void) {{ return 0; }}\n" for i, name in enumerate(functions)))
    for soname in sonames:
        subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(stubs / soname), f"-Wl,-soname,{soname}", str(source)],
                       check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return site, stubs


def tools_missing() -> str:
    """Why stub libraries cannot be built here ("" when gcc and readelf exist on Linux x86-64)."""
    if not sys.platform.startswith("linux") or os.uname().machine != "x86_64":
        return "the bindings wheels compared are for Linux x86-64"
    missing = [tool for tool in ("gcc", "readelf") if shutil.which(tool) is None]
    return f"{' and '.join(missing)} not found (needed to build stub TensorRT libraries)" if missing else ""


PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])
import bindings_surface
import tensorrt_bindings as trt
result = bindings_surface.surface(trt)
try:
    trt.Builder(trt.Logger(trt.Logger.WARNING))
    result["builder_without_cuda"] = "no error"
except Exception as exc:
    result["builder_without_cuda"] = type(exc).__name__ + ": " + str(exc)
try:
    trt.Runtime(trt.Logger(trt.Logger.WARNING))
    result["runtime_without_cuda"] = "no error"
except Exception as exc:
    result["runtime_without_cuda"] = type(exc).__name__ + ": " + str(exc)
member = trt.ErrorCode.UNSUPPORTED_NODE
result["error_code_name"] = member.name() if callable(member.name) else member.name
result["error_code_str"] = str(member)
print(json.dumps(result))
"""


def run_with_bindings(workdir: Path, code: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``python -c code args`` with the bindings prepared in ``workdir`` importable as ``tensorrt``."""
    root = Path(__file__).resolve().parents[2]
    path = os.pathsep.join([str(workdir / "site"), str(root)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    env = dict(os.environ, LD_LIBRARY_PATH=str(workdir / "stubs"), PYTHONPATH=path, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([sys.executable, "-c", code, *args], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=120)


def real_surface(wheel: Path, workdir: Path) -> Dict[str, Any]:
    """:func:`surface` of the bindings in ``wheel``, imported in a subprocess over stub libraries."""
    prepare(wheel, workdir)
    done = run_with_bindings(workdir, PROBE, str(Path(__file__).resolve().parent))
    if done.returncode != 0:
        raise RuntimeError(f"importing {wheel.name} over stub libraries failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout)


if __name__ == "__main__":  # python tests/trt/bindings_surface.py WHEEL > surface.json
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(real_surface(Path(sys.argv[1]), Path(tmp)), indent=1, sort_keys=True))
