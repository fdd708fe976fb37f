"""Writing files whole or not at all: a crash or Ctrl-C never leaves half a plan, cache or model.

Everything goes through a temporary file in the target's folder (same file system), then
``os.replace`` — atomic on POSIX and Windows. The temporary file is removed on any failure.
Only a regular file (or nothing) is ever replaced: a device, FIFO, socket or folder at the
target is refused, so ``--output /dev/full`` can never turn a device node into a file. A
symbolic link is followed: the file it points to is replaced, the link stays. New files get
the mode the umask gives (0666 & ~umask), like any file the user's shell would create, not
``mkstemp``'s private 0600.
"""

import contextlib
import errno
import os
import secrets
import shutil
import stat
from pathlib import Path
from typing import Iterator, Optional, Union

from edge.errors import EdgeError

PathLike = Union[str, "os.PathLike[str]"]


def check_writable_target(path: PathLike) -> Path:
    """The path a write to ``path`` replaces (symlinks followed); EdgeError unless it is a regular file or absent."""
    target = Path(path)
    if target.is_symlink():
        target = Path(os.path.realpath(str(target)))
    try:
        mode = os.stat(str(target)).st_mode
    except FileNotFoundError:
        return target
    except OSError as exc:
        raise EdgeError(f"cannot inspect the output ({exc.strerror})", fix="choose another output path",
                        where=str(path)) from None
    if stat.S_ISREG(mode):
        return target
    kind = "a folder" if stat.S_ISDIR(mode) else _special_kind(mode)
    fix = "give a file path inside it (e.g. DIR/model.onnx)" if stat.S_ISDIR(mode) else \
        "give the path of a regular file: only regular files are replaced"
    raise EdgeError(f"the output is {kind}, not a regular file", fix=fix, where=str(path))


def _special_kind(mode: int) -> str:
    for test, name in ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "a special file"


def _create_temporary(folder: Path, name: str) -> Path:
    """A new empty file beside the target, created with mode 0666 & ~umask (O_EXCL: never an existing file)."""
    for _ in range(100):
        candidate = folder / f".{name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(str(candidate), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return candidate
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(folder))  # pragma: no cover


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on a clean exit it replaces ``path``, else it is removed.

    EdgeError before anything is written when ``path`` is a folder, a device or another non-regular file.
    """
    target = check_writable_target(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temporary(target.parent, target.name)
    try:
        yield tmp
        check_writable_target(target)  # something may have appeared there meanwhile
        os.replace(str(tmp), str(target))
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(str(tmp))


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


def replace_file(staged: PathLike, target: PathLike) -> Path:
    """Move the finished file ``staged`` onto ``target`` (same file system); refuses a non-regular target.

    The moved file gets the mode a new file would (0666 & ~umask), whatever ``staged`` was created with.
    """
    destination = check_writable_target(target)
    os.chmod(str(staged), default_file_mode())
    os.replace(str(staged), str(destination))
    return destination


def default_file_mode() -> int:
    """0666 & ~umask: the mode of a file created now by open()."""
    mask = os.umask(0o022)  # reading the umask means setting it; restored at once
    os.umask(mask)
    return 0o666 & ~mask


# errno values that mean "this place cannot take the file", not a bug
WRITE_ERRNOS = frozenset(getattr(errno, name) for name in ("ENOSPC", "EROFS", "EDQUOT", "EACCES", "EPERM", "EFBIG")
                         if hasattr(errno, name))


def write_error(exc: BaseException, where: str, what: str = "the file") -> Optional[EdgeError]:
    """An EdgeError for a write that failed because of where it went (disk full, read-only, permissions), else None."""
    if not isinstance(exc, OSError) or exc.errno not in WRITE_ERRNOS:
        return None
    return EdgeError(f"cannot write {what} ({exc.strerror}); nothing was written",
                     fix="free space, or choose an output on a writable file system", where=where)
