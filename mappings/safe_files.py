"""Safe file handling: atomic writes (a temporary file beside the target, fsynced, then renamed
over it) and HDF5 files opened for reading only after checks that name the file."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path

import h5py


def atomic_write(
    path: str | os.PathLike,
    write: Callable[[Path], None],
    *,
    error: type[Exception] = OSError,
    what: str = "file",
) -> Path:
    """Call ``write(tmp)`` to create a temporary file next to ``path``, then move it into place.

    On any failure the temporary file is removed and an existing ``path`` is left untouched.
    Problems with the destination and OS errors while writing are raised as ``error`` with a
    message naming ``path`` and ``what`` was being written.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise error(f"{path}: directory {path.parent} does not exist")
    if path.is_dir():
        raise error(f"{path}: is a directory; expected a file path")
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _remove(tmp)
        if error is OSError:
            raise
        raise error(f"{path}: could not write {what}: {exc}") from exc
    except BaseException:
        _remove(tmp)
        raise
    return path


def _remove(tmp: Path) -> None:
    with contextlib.suppress(OSError):
        tmp.unlink()


def open_hdf5(path: str | os.PathLike, *, error: type[Exception], what: str) -> h5py.File:
    """Open ``path`` read-only after checking it exists and is HDF5; failures raise ``error``
    with a message naming the file and ``what`` was expected (e.g. "chip-instance file")."""
    path = Path(path)
    if not path.exists():
        raise error(f"{path}: no such {what}")
    if not path.is_file():
        raise error(f"{path}: not a regular file; expected an HDF5 {what}")
    try:
        is_hdf5 = h5py.is_hdf5(path)
    except OSError:
        is_hdf5 = False
    if not is_hdf5:
        raise error(f"{path}: not an HDF5 file (no HDF5 signature); expected a {what}")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise error(f"{path}: {what} cannot be opened (truncated or corrupted?): {exc}") from exc
