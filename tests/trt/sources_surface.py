"""The Python API surface of a TensorRT release read from its binding *sources*, for releases whose
bindings were never published as a wheel (8.2: JetPack 4.6.1+, Jetson Nano).

PyPI has ``tensorrt-bindings`` 8.6.1 and later only, so the 8.2 fake cannot be compared with a real
module the way bindings_surface.py does for 8.6 and newer. Instead this reads NVIDIA/TensorRT at a
release tag - the pybind11 sources ``python/src/**/*.cpp`` (``py::class_`` / ``.def*("name"`` /
``py::enum_`` / ``.value("NAME"`` / ``m.def("name"``), the Python wrapper
``python/packaging/tensorrt/__init__.py`` (what it adds: ``volume``, ``nptype``, ``Logger.Severity``
...), and the enum numbers from ``include/*.h`` - and writes the same shape of JSON as
:func:`bindings_surface.surface`: {"version", "source", "names", "classes": {name: [members, inherited
included]}, "enums": {name: {member: number}}}.

Checked once where both exist: run on branch release/8.6, it gives exactly the members of the real
``tensorrt-bindings`` 8.6.1 wheel for 103 of its 106 classes (every class edge or the fakes touch);
the other 3 (NodeIndices, PluginFieldCollection, SubGraphCollection) lack only the list methods
pybind11's ``bind_vector`` adds. Enum numbers agree except the ONNX parser's ErrorCode, whose header
is not in that repository (its numbers are left null).

The result for 8.2.1 is committed as ``tensorrt_8_2_1_surface.json`` (the sources are not reachable
from CI); regenerate it with a clone of NVIDIA/TensorRT:

    python tests/trt/sources_surface.py /path/to/TensorRT.git 8.2.1 > tests/trt/tensorrt_8_2_1_surface.json
"""

import json
import re
import subprocess
import sys
from typing import Callable, Dict, List, Set

Reader = Callable[[str], str]
_CLASS = re.compile(r"py::class_<([^;{]*?)>\s*(?:\w+\s*)?[({]\s*m\s*,\s*\"(\w+)\"")
_ENUM = re.compile(r"py::enum_<([\w:]+)>\s*\(\s*(\w+)\s*,\s*\"(\w+)\"")
_MEMBER = re.compile(r"(?<!\bm)\.def(?:_property_readonly|_property|_readwrite|_static)?\(\s*\"(\w+)\"")
_VALUE = re.compile(r"\.value\(\s*\"(\w+)\"\s*,\s*([\w:]+)")
_MODULE_DEF = re.compile(r"\bm\.def\(\s*\"(\w+)\"")


def git_reader(git_dir: str, tag: str) -> Reader:
    """Read files of ``tag`` from a clone (``git show TAG:PATH``)."""
    def read(path: str) -> str:
        return subprocess.run(["git", "-C", git_dir, "show", f"{tag}:{path}"], check=True, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE,
                              universal_newlines=True).stdout
    return read


def _files(git_dir: str, tag: str, folder: str) -> List[str]:
    out = subprocess.run(["git", "-C", git_dir, "ls-tree", "-r", "--name-only", tag, folder], check=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True).stdout
    return [p for p in out.split() if p.endswith((".cpp", ".h"))]


def _header_enums(headers: List[str]) -> Dict[str, Dict[str, int]]:
    """C++ enumerator numbers: {"DataType": {"kFLOAT": 0, ...}} from ``enum class X : int32_t { ... };``."""
    numbers: Dict[str, Dict[str, int]] = {}
    for text in headers:
        text = re.sub(r"//[^\n]*", "", text)
        for name, body in re.findall(r"enum class (\w+)\s*:\s*\w+\s*\{(.*?)\};", text, re.S):
            value, members = -1, {}
            for item in (i.strip() for i in body.split(",")):
                match = re.match(r"(\w+)(?:\s+[A-Z_]+)*\s*(?:=\s*(.+))?$", item)  # kX TRT_DEPRECATED_ENUM = 4
                if not match:
                    continue
                expr = (match.group(2) or "").strip()
                if expr and expr in members:
                    value = members[expr]  # an alias (kDEFAULT = kLAYER_NAMES_ONLY)
                elif expr:
                    value = int(expr.rstrip("uU"), 0) if re.fullmatch(r"-?\d+[uU]?", expr) else value + 1
                else:
                    value += 1
                members[match.group(1)] = value
            numbers.setdefault(name, members)
    return numbers


def extract(read: Reader, sources: List[str], headers: List[str], version: str, source: str) -> Dict[str, object]:
    """The surface of the bindings built from ``sources`` (+ the wrapper package and ``headers``)."""
    classes: Dict[str, Set[str]] = {}
    bases: Dict[str, List[str]] = {}
    cxx_to_py: Dict[str, str] = {}
    enums: Dict[str, Dict[str, object]] = {}
    names: Set[str] = set()
    numbers = _header_enums([read(h) for h in headers])
    for path in sources:
        text = re.sub(r"//[^\n]*", "", read(path))
        # blocks behind build options that NVIDIA's wheels leave off (#if ENABLE_INETWORK_SERIALIZE)
        text = re.sub(r"#if ENABLE_\w+.*?#endif", "", text, flags=re.S)
        names.update(_MODULE_DEF.findall(text))
        names.update(re.findall(r"\bm\.attr\(\s*\"(\w+)\"", text))  # aliases: trt.float32 = DataType.FLOAT
        marks = sorted([(m.start(), "class", m) for m in _CLASS.finditer(text)]
                       + [(m.start(), "enum", m) for m in _ENUM.finditer(text)], key=lambda x: x[0])
        for i, (start, kind, match) in enumerate(marks):
            end = marks[i + 1][0] if i + 1 < len(marks) else len(text)
            chunk = text[start:end]
            if kind == "class":
                args = [a.strip() for a in match.group(1).split(",")]
                py = match.group(2)
                cxx_to_py[args[0]] = py
                bases[py] = args[1:]
                classes.setdefault(py, set()).update(_MEMBER.findall(chunk))
                # members added later through the binding variable (baseLoggerBinding.def(...))
                var = re.match(r"py::class_<[^>]*>\s*(\w+)\s*\{", chunk)
                if var:
                    for later in re.findall(rf"\b{var.group(1)}\s*((?:\.def\w*\([^;]*)+);", text):
                        classes[py].update(_MEMBER.findall(later))
                names.add(py)
            else:
                cxx, scope, py = match.groups()
                table = numbers.get(cxx.split("::")[-1], {})
                members = {n: table.get("k" + c.split("::k")[-1], None) for n, c in _VALUE.findall(chunk)}
                if None in members.values():  # another namespace's enum of that name (nvonnxparser::ErrorCode)
                    members = dict.fromkeys(members)
                if scope != "m":  # an enum nested in a class binding variable (ILogger.Severity)
                    owner = _owner_of(text, scope, cxx_to_py)
                    key = f"{owner}.{py}"
                    if "export_values" in chunk:
                        classes.setdefault(owner, set()).update(members)
                    classes.setdefault(owner, set()).add(py)
                else:
                    key = py
                    names.add(py)
                enums[key] = members
    try:
        wrapper = read("python/packaging/tensorrt/__init__.py")  # <= 8.5
    except subprocess.CalledProcessError:
        wrapper = read("python/packaging/bindings_wheel/tensorrt/__init__.py")  # 8.6+
    names.update(re.findall(r"^def ([a-zA-Z]\w*)\(", wrapper, re.M))
    names.update(re.findall(r"^([a-zA-Z]\w*)\s*=", wrapper, re.M))
    for cls, attr in re.findall(r"^(\w+)\.(\w+)\s*=", wrapper, re.M):
        if cls in classes and not attr.startswith("_"):
            classes[cls].add(attr)
            if attr in ("Severity",) and "ILogger.Severity" in enums:
                enums[f"{cls}.{attr}"] = enums["ILogger.Severity"]
    if re.search(r"setattr\(Logger, attr, value\)", wrapper) and "ILogger.Severity" in enums:
        classes.setdefault("Logger", set()).update(enums["ILogger.Severity"])

    def members_of(py: str, seen: Set[str]) -> Set[str]:
        found = set(classes.get(py, ()))
        for base in bases.get(py, []):
            parent = cxx_to_py.get(base)
            if parent and parent not in seen:
                found |= members_of(parent, seen | {parent})
        return found

    return {"version": version, "source": source, "names": sorted(n for n in names if not n.startswith("_")),
            "classes": {c: sorted(m for m in members_of(c, {c}) if not m.startswith("_")) for c in sorted(classes)},
            "enums": {k: v for k, v in sorted(enums.items())}}


def _owner_of(text: str, variable: str, cxx_to_py: Dict[str, str]) -> str:
    """The Python class a binding variable (``py::class_<ILogger, PyLogger> baseLoggerBinding``) belongs to."""
    match = re.search(rf"py::class_<\s*([\w:]+)[^>]*>\s*{variable}\b", text)
    return cxx_to_py.get(match.group(1), match.group(1)) if match else variable


def main(argv: List[str]) -> None:
    git_dir, tag = argv[0], argv[1]
    read = git_reader(git_dir, tag)
    commit = subprocess.run(["git", "-C", git_dir, "rev-parse", f"{tag}^{{commit}}"], check=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True).stdout.strip()
    sources = [p for p in _files(git_dir, tag, "python/src") if p.endswith(".cpp")]
    headers = [p for p in _files(git_dir, tag, "include") if p.endswith(".h")]
    surface = extract(read, sources, headers, tag, f"NVIDIA/TensorRT tag {tag} (commit {commit}): python/src, "
                      "python/packaging/tensorrt/__init__.py, include/*.h")
    print(json.dumps(surface, indent=1, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1:])
