"""Writing files whole or not at all: a crash or Ctrl-C never leaves half a plan, cache or model.

Everything goes through a temporary file in the target's folder (same file system), then
``os.replace`` — atomic on POSIX and Windows. The temporary file is removed on any failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Union

PathLike = Union[str, "os.PathLike[str]"]


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on a clean exit it replaces ``path``, else it is removed."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + target.name + ".", suffix=".tmp", dir=str(target.parent))
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, str(target))
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_atomic(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` whole (flushed to disk before the rename)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def copy_atomic(source: PathLike, target: PathLike) -> None:
    """Copy ``source`` to ``target`` whole."""
    with atomic_path(target) as tmp:
        shutil.copyfile(str(source), str(tmp))
