"""Atomic file writes: a temporary file beside the target, fsynced, then renamed over it."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path


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
