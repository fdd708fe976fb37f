"""edge/files.py: whole-or-nothing writes that only ever replace regular files, with the umask's mode."""

import errno
import os
import socket
import stat
from pathlib import Path

import pytest

from edge.errors import EdgeError
from edge.files import atomic_path, copy_atomic, default_file_mode, replace_file, write_atomic, write_error


def _fifo(path: Path) -> Path:
    os.mkfifo(str(path))
    return path


def _char_device(path: Path) -> Path:
    try:  # the /dev/full device numbers, made inside tmp_path: the real /dev is never at risk
        os.mknod(str(path), stat.S_IFCHR | 0o666, os.makedev(1, 7))
    except (PermissionError, AttributeError, OSError) as exc:
        pytest.skip(f"cannot create a device node here ({exc})")
    return path


def _socket(path: Path) -> Path:
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.close()  # the socket file stays
    return path


def _folder(path: Path) -> Path:
    path.mkdir()
    return path


def _link_to_fifo(path: Path) -> Path:
    target = _fifo(path.with_name("real_fifo"))
    path.symlink_to(target)
    return path


NON_REGULAR = [
    ("folder", _folder, stat.S_ISDIR, "a folder"),
    ("FIFO", _fifo, stat.S_ISFIFO, "a FIFO"),
    ("character device", _char_device, stat.S_ISCHR, "a character device"),
    ("socket", _socket, stat.S_ISSOCK, "a socket"),
    ("symlink to a FIFO", _link_to_fifo, stat.S_ISFIFO, "a FIFO"),
]

WRITERS = [
    ("write_atomic", lambda target, tmp: write_atomic(target, b"model")),
    ("copy_atomic", lambda target, tmp: copy_atomic(_regular(tmp / "source.bin"), target)),
    ("replace_file", lambda target, tmp: replace_file(_regular(tmp / "staged.bin"), target)),
]


def _regular(path: Path) -> Path:
    path.write_bytes(b"model")
    return path


@pytest.mark.parametrize("kind, make, is_kind, words", NON_REGULAR, ids=[row[0] for row in NON_REGULAR])
@pytest.mark.parametrize("writer_name, writer", WRITERS, ids=[row[0] for row in WRITERS])
def test_non_regular_targets_are_refused_and_left_alone(tmp_path, kind, make, is_kind, words, writer_name, writer):
    target = make(tmp_path / "out.onnx")
    with pytest.raises(EdgeError) as caught:
        writer(target, tmp_path)
    message = str(caught.value)
    assert words in message and "Fix:" in message and "\n" not in message
    assert is_kind(os.stat(str(target)).st_mode)  # still what it was: never renamed over
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temporary file left


def test_symlink_to_a_regular_file_writes_through_and_keeps_the_link(tmp_path):
    real = _regular(tmp_path / "v3.onnx")
    link = tmp_path / "current.onnx"
    link.symlink_to(real.name)
    write_atomic(link, b"new model")
    assert link.is_symlink() and real.read_bytes() == b"new model"


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664), (0o077, 0o600)])
@pytest.mark.parametrize("writer_name, writer", WRITERS, ids=[row[0] for row in WRITERS])
def test_written_files_get_the_umask_mode(tmp_path, umask, mode, writer_name, writer):
    old = os.umask(umask)
    try:
        target = tmp_path / "out.onnx"
        staged = tmp_path / "staged.bin"
        writer(target, tmp_path)
        if writer_name == "replace_file":
            assert not staged.exists()
        assert stat.S_IMODE(target.stat().st_mode) == mode
        assert default_file_mode() == mode
    finally:
        os.umask(old)


def test_failure_inside_removes_the_temporary_and_keeps_the_old_file(tmp_path):
    target = _regular(tmp_path / "out.onnx")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("crash")
    assert target.read_bytes() == b"model" and [p.name for p in tmp_path.iterdir()] == ["out.onnx"]


@pytest.mark.parametrize("exc, one_line", [
    (OSError(errno.ENOSPC, "No space left on device"), "No space left on device"),
    (OSError(errno.EROFS, "Read-only file system"), "Read-only file system"),
    (PermissionError(errno.EACCES, "Permission denied"), "Permission denied"),
    (OSError(errno.ENOENT, "No such file or directory"), None),  # a bug or a race, not a full disk
    (ValueError("bad"), None),
])
def test_write_error_names_unwritable_places_only(exc, one_line):
    error = write_error(exc, "--output", "the model")
    if one_line is None:
        assert error is None
    else:
        assert one_line in str(error) and "nothing was written" in str(error) and "Fix:" in str(error)
