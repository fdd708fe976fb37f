"""edge/cv.py: a cv2 built for NumPy 1.x under NumPy 2 (what undoing ``pip install '.[cpu]'`` on a board leaves)
is one line with the exact fix; simulated from the ImportError text, and for real with Debian's cv2."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import edge.cv
from edge.cv import numpy_fix, numpy_mismatch, require_cv2
from edge.errors import EdgeError, MissingDependency

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = Path("/usr/bin/python3")

# What `import cv2` raises for a cv2 compiled against NumPy 1.x under NumPy 2 (numpy prints the
# "compiled using NumPy 1.x cannot be run in NumPy 2..." banner and "_ARRAY_API not found" on stderr first).
ABI_ERRORS = ["numpy.core.multiarray failed to import", "numpy.core._multiarray_umath failed to import",
              "_ARRAY_API not found"]


@pytest.mark.parametrize("message", ABI_ERRORS)
def test_the_numpy_abi_error_is_diagnosed(message: str) -> None:
    error = numpy_mismatch(ImportError(message), numpy_version="2.2.6",
                           numpy_file="/home/me/edge-venv/lib/python3.10/site-packages/numpy/__init__.py",
                           cv2_file="/usr/lib/python3.10/dist-packages/cv2/python-3.10/cv2.so")
    assert isinstance(error, EdgeError) and error.where == "cv2"
    assert "the cv2 at /usr/lib/python3.10/dist-packages/cv2/python-3.10/cv2.so was built for NumPy 1.x" in error.what
    assert "NumPy 2.2.6 (from /home/me/edge-venv/lib/python3.10/site-packages)" in error.what
    assert "\n" not in str(error) and "Fix: " in str(error)


@pytest.mark.parametrize(("message", "numpy_version"), [
    ("No module named 'cv2'", "2.2.6"),  # cv2 absent: MissingDependency's job
    ("libopencv_core.so.4.5: cannot open shared object file", "2.2.6"),
    ("numpy.core.multiarray failed to import", "1.26.4"),  # an ABI error, but not NumPy 2's: not this diagnosis
])
def test_other_import_errors_are_not_a_numpy_mismatch(message: str, numpy_version: str) -> None:
    assert numpy_mismatch(ImportError(message), numpy_version=numpy_version, numpy_file="/x/numpy/__init__.py",
                          cv2_file="/x/cv2.so") is None


VENV = "/home/me/edge-venv"
USER_SITE = "/home/me/.local/lib/python3.8/site-packages"


@pytest.mark.parametrize(("numpy_dir", "prefix", "expected"), [
    # a venv (the board's --system-site-packages one): a NumPy 1.x wheel there, as jetson/setup.sh installs
    (f"{VENV}/lib/python3.10/site-packages", VENV, f'{VENV}/bin/python -m pip install "numpy<2" (in this venv'),
    # pip install --user: remove it, the distribution's python3-numpy comes back
    (USER_SITE, "/usr", f"{VENV}/bin/python -m pip uninstall numpy (the copy in {USER_SITE}"),
    # sudo pip install: the same, as root, and the distribution's package if it was damaged
    ("/usr/local/lib/python3.8/dist-packages", "/usr",
     "sudo /home/me/edge-venv/bin/python -m pip uninstall numpy (the copy in /usr/local/lib/python3.8/dist-packages"),
    ("/opt/other/site-packages", "/usr", 'pip install "numpy<2" in a venv made with python3 -m venv '
     "--system-site-packages"),
])
def test_the_fix_depends_on_where_numpy_2_is(numpy_dir: str, prefix: str, expected: str) -> None:
    fix = numpy_fix(numpy_dir, f"{VENV}/bin/python", prefix=prefix, base_prefix="/usr", user_site=USER_SITE)
    assert fix.startswith(expected) or expected in fix, fix
    assert fix.endswith(f'check with: {VENV}/bin/python -c "import cv2"')
    if numpy_dir.startswith("/usr/local"):
        assert "sudo apt install --reinstall python3-numpy" in fix


def test_require_cv2_raises_the_diagnosis_not_missing_dependency(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_cv2():
        raise ImportError("numpy.core.multiarray failed to import")

    monkeypatch.setattr(edge.cv, "import_cv2", broken_cv2)
    monkeypatch.setattr(np, "__version__", "2.1.3")
    with pytest.raises(EdgeError) as caught:
        require_cv2("reading cameras")
    assert not isinstance(caught.value, MissingDependency)
    assert "cannot import under NumPy 2.1.3" in str(caught.value) and 'pip install "numpy<2"' in str(caught.value)

    def absent_cv2():
        raise ImportError("No module named 'cv2'")

    monkeypatch.setattr(edge.cv, "import_cv2", absent_cv2)
    with pytest.raises(MissingDependency, match="reading cameras needs the Python module 'cv2'"):
        require_cv2("reading cameras")


def _system_python_has_cv2() -> bool:
    if not SYSTEM_PYTHON.exists():
        return False
    code = "import sys, cv2, numpy; print(sys.version_info[:2], numpy.__version__)"
    done = subprocess.run([str(SYSTEM_PYTHON), "-c", code],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, universal_newlines=True)
    this = str(tuple(sys.version_info[:2]))
    return done.returncode == 0 and done.stdout.startswith(this) and done.stdout.split()[-1].startswith("1.")


@pytest.mark.skipif(int(np.__version__.split(".")[0]) < 2 or not _system_python_has_cv2(),
                    reason="needs NumPy 2 here and Debian's python3-opencv (NumPy 1.x) for the same Python version")
def test_for_real_a_board_venv_with_numpy_2_and_the_system_cv2(tmp_path: Path) -> None:
    """The board after `pip install '.[cpu]'; pip uninstall opencv-python`: a --system-site-packages venv whose NumPy 2
    hides the distribution's NumPy 1.x, which the system cv2 was built against."""
    venv = tmp_path / "edge-venv"
    subprocess.run([str(SYSTEM_PYTHON), "-m", "venv", "--without-pip", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import site; print(site.getsitepackages()[0])"], check=True,
                          stdout=subprocess.PIPE, universal_newlines=True).stdout.strip()
    numpy_root = Path(np.__file__).resolve().parent.parent
    for name in os.listdir(numpy_root):  # this Python's NumPy 2, as pip would have put it in the venv
        if name in ("numpy", "numpy.libs") or (name.startswith("numpy-") and name.endswith(".dist-info")):
            os.symlink(numpy_root / name, Path(site) / name)
    done = subprocess.run([str(python), "-c", "from edge.cv import require_cv2; require_cv2('reading cameras')"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode != 0, done.stderr
    assert last.startswith("edge.errors.EdgeError: cv2 | the cv2 at /usr/lib/python3"), done.stderr
    assert f"cannot import under NumPy {np.__version__} (from {site})" in last
    assert f'Fix: {python} -m pip install "numpy<2" (in this venv' in last
