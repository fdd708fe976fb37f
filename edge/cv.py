"""Lazy access to OpenCV, which is never a hard dependency.

On a Jetson, pip's opencv-python would shadow JetPack's GStreamer-enabled OpenCV, so the
package imports cv2 only when a feature needs it, and says how to get it when it is missing.
A cv2 built against NumPy 1.x (JetPack's, a distribution's) fails to import under NumPy 2 —
what ``pip install '.[cpu]'`` leaves behind on a board once opencv-python is uninstalled — and
:func:`numpy_mismatch` turns that into one line with the exact fix for where NumPy 2 was installed.
"""

import functools
import os
import sys
from types import ModuleType
from typing import Optional

from edge.errors import EdgeError, MissingDependency

CV2_FIX = (
    "pip install 'edge[cpu]' (brings opencv-python); on a Jetson use JetPack's OpenCV "
    "(sudo apt install nvidia-opencv) in a venv made with --system-site-packages"
)


@functools.lru_cache(maxsize=None)
def import_cv2() -> ModuleType:
    """Import cv2 once (ImportError when absent), with OpenCV's own logging quietened."""
    # OpenCV logs failed device probes as warnings on stderr; edge reports them as EdgeErrors.
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    import cv2

    return cv2


def require_cv2(purpose: str = "this feature") -> ModuleType:
    """Return the cv2 module, or raise MissingDependency naming ``purpose`` and the fix.

    A cv2 that is there but was built for NumPy 1.x under NumPy 2 raises numpy_mismatch's EdgeError.
    """
    try:
        return import_cv2()
    except ImportError as exc:
        mismatch = numpy_mismatch(exc)
        if mismatch is not None:
            raise mismatch from None
        raise MissingDependency("cv2", purpose, CV2_FIX) from None


# What importing a module compiled against NumPy 1.x prints and raises under NumPy 2.
NUMPY_ABI_MARKERS = ("numpy.core.multiarray failed to import", "numpy.core._multiarray_umath failed to import",
                     "_ARRAY_API not found", "compiled using NumPy 1.x cannot be run in")


def numpy_mismatch(exc: BaseException, numpy_version: Optional[str] = None, numpy_file: Optional[str] = None,
                   cv2_file: Optional[str] = None) -> Optional[EdgeError]:
    """The EdgeError for a cv2 built against NumPy 1.x failing to import under NumPy 2, or None for other errors.

    numpy_version, numpy_file, cv2_file: what is installed (default: looked up; numpy is imported, cv2 only located).
    """
    if not any(marker in str(exc) for marker in NUMPY_ABI_MARKERS):
        return None
    if numpy_version is None or numpy_file is None:
        try:
            import numpy
        except ImportError:
            return None
        numpy_version, numpy_file = numpy.__version__, numpy.__file__ or ""
    if not numpy_version.split(".")[0].isdigit() or int(numpy_version.split(".")[0]) < 2:
        return None
    if cv2_file is None:
        cv2_file = _module_origin("cv2")
    numpy_dir = os.path.dirname(os.path.dirname(os.path.abspath(numpy_file)))
    return EdgeError(
        f"the cv2 at {cv2_file} was built for NumPy 1.x and cannot import under NumPy {numpy_version} "
        f"(from {numpy_dir}), which pip installed for edge's cpu extra or another package",
        fix=numpy_fix(numpy_dir, sys.executable or "python3"),
        where="cv2",
    )


def numpy_fix(numpy_dir: str, executable: str, prefix: Optional[str] = None, base_prefix: Optional[str] = None,
              user_site: Optional[str] = None) -> str:
    """The commands that bring back a NumPy 1.x for a cv2 built against it, given where NumPy 2 is installed.

    In a venv: a NumPy 1.x wheel in the venv (what jetson/setup.sh installs). In the user's site-packages or
    /usr/local (pip install --user, sudo pip): uninstall it, so the distribution's python3-numpy, the one
    JetPack's and Debian's cv2 were built against, is imported again.
    """
    prefix = sys.prefix if prefix is None else prefix
    base_prefix = getattr(sys, "base_prefix", sys.prefix) if base_prefix is None else base_prefix
    if user_site is None:
        import site

        user_site = site.getusersitepackages() if hasattr(site, "getusersitepackages") else ""
    check = f'; check with: {executable} -c "import cv2"'
    real = os.path.realpath(numpy_dir)
    if prefix != base_prefix and _under(real, prefix):
        return (f'{executable} -m pip install "numpy<2" (in this venv; JetPack\'s and the distributions\' cv2 '
                "need NumPy 1.x)" + check)
    if user_site and _under(real, user_site):
        return (f"{executable} -m pip uninstall numpy (the copy in {user_site}; the system's python3-numpy is "
                "used then)" + check)
    if real.startswith("/usr/local/"):
        return (f"sudo {executable} -m pip uninstall numpy (the copy in {numpy_dir}; the system's python3-numpy is "
                "used then; if numpy no longer imports: sudo apt install --reinstall python3-numpy)" + check)
    return (f'{executable} -m pip install "numpy<2" in a venv made with python3 -m venv --system-site-packages '
            "(jetson/setup.sh makes one), or reinstall the cv2 built for this NumPy" + check)


def _under(path: str, folder: str) -> bool:
    folder = os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _module_origin(name: str) -> str:
    """Where a module would be imported from, without importing it."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return name
    return (spec.origin if spec is not None and spec.origin else name)


def has_gstreamer() -> bool:
    """Whether the installed OpenCV was built with GStreamer (OpenCV 3.x and 4.x+ layouts)."""
    try:
        cv2 = import_cv2()
    except ImportError:
        return False
    lines = cv2.getBuildInformation().splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("GStreamer:"):
            rest = stripped[len("GStreamer:"):].strip()
            if rest:
                return rest.upper().startswith("YES")
            following = lines[i + 1].strip() if i + 1 < len(lines) else ""
            return following.startswith("base:") and "YES" in following
    return False
