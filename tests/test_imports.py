"""Every module imports with only the base dependencies (numpy, onnx) installed.

The optional libraries are blocked in a fresh interpreter by an import hook that raises
ImportError for them, exactly what a missing package does.
"""

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OPTIONAL = ["cv2", "onnxruntime", "tensorrt", "pycuda", "cuda", "cupy", "torch", "tensorflow", "skimage",
            "tflite2onnx", "matplotlib", "paho", "tritonclient", "kserve", "modelopt"]

SCRIPT = textwrap.dedent("""
    import importlib, pkgutil, sys
    blocked = set(sys.argv[1].split(","))

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in blocked:
                raise ImportError(f"No module named {name!r} (blocked by the test)")
            return None

    sys.meta_path.insert(0, Block())
    imported = []
    # export/ (edge-export) runs on 3.8+ and says so on import; the runtime on 3.6+
    for package in ("edge", "export", "benchmarks") if sys.version_info >= (3, 8) else ("edge", "benchmarks"):
        try:
            root = importlib.import_module(package)
        except ModuleNotFoundError:
            continue
        imported.append(package)
        for info in pkgutil.walk_packages(root.__path__, package + "."):
            if info.name.endswith("__main__"):
                continue
            importlib.import_module(info.name)
            imported.append(info.name)
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in blocked)
    assert not leaked, leaked
    print(len(imported), " ".join(imported))
""")


def test_every_module_imports_with_base_dependencies_only():
    done = subprocess.run([sys.executable, "-c", SCRIPT, ",".join(OPTIONAL)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    count, names = done.stdout.split(" ", 1)
    assert int(count) >= 20
    expected = ["edge.camera", "edge.backends.onnxruntime", "edge.backends.opencv", "edge.sources.capture",
                "edge.sinks", "edge.preprocess", "benchmarks.suite"]
    expected += ["export.tflite"] if sys.version_info >= (3, 8) else []
    for module in expected:
        assert module in names.split()


def test_cli_names_the_missing_library_and_its_fix():
    script = textwrap.dedent("""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("cv2", "onnxruntime"):
                    raise ImportError(name)
        sys.meta_path.insert(0, Block())
        from edge.camera import main
        sys.exit(main(["--headless", "--max-frames", "1", "--source", "demo://"]))
    """)
    done = subprocess.run([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, cwd=ROOT, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "pip install 'edge[cpu]'" in done.stderr
