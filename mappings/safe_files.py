"""Safe file handling: atomic writes (a temporary file beside the target, fsynced, then renamed
over it) and HDF5 files opened for reading only after checks that name the file, read through
:class:`H5Reader`, whose every error names the file and the HDF5 path."""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Self

import h5py
import numpy as np
from numpy.typing import DTypeLike

__all__ = ["H5Reader", "atomic_write", "open_hdf5", "read_toml"]


def read_toml(path: str | os.PathLike, *, error: type[Exception], what: str) -> dict[str, Any]:
    """Parse a TOML file; a missing, unreadable, non-UTF-8 or invalid file raises ``error``
    naming the file and ``what`` it should be (e.g. "chip file")."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: no such {what}") from None
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text ({exc.reason}); expected TOML") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: invalid TOML: {exc}") from None


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


# What a dataset's dtype kinds and an attribute's Python kind read as in messages.
_KIND_NAMES = {
    "f": "a floating dtype",
    "i": "a signed integer dtype",
    "u": "an unsigned integer dtype",
    "iu": "an integer dtype",
    "b": "a boolean dtype",
}
_ATTR_KINDS = {str: "text", int: "an integer", float: "a number"}
# What h5py raises on damaged files: wrapped into the reader's error with the file name.
_H5_ERRORS = (OSError, RuntimeError, KeyError, TypeError)
_READ_ERRORS = (OSError, RuntimeError, KeyError, ValueError)


class H5Reader:
    """Typed, validated reads from one open HDF5 file.

    Every problem is raised as ``error`` with the message ``"FILE: WHERE: problem; expected
    ..."``, where WHERE is the HDF5 path (``/layers/000/weights``) or, for an attribute,
    ``PATH@NAME`` (``/layers/000@p``). Subclass it for format-specific readers.
    """

    def __init__(self, f: h5py.File, path: str | os.PathLike, error: type[Exception]) -> None:
        self.f, self.path, self._error = f, Path(path), error

    @classmethod
    @contextlib.contextmanager
    def open(cls, path: str | os.PathLike, *, error: type[Exception], what: str) -> Iterator[Self]:
        """Open ``path`` with :func:`open_hdf5` and yield a reader; h5py failures while
        reading (a damaged file) are re-raised as ``error`` naming the file and ``what``."""
        with open_hdf5(path, error=error, what=what) as f:
            try:
                yield cls(f, path, error)
            except error:
                raise
            except _H5_ERRORS as exc:
                raise error(
                    f"{path}: HDF5 read failed (corrupted {what}?): {type(exc).__name__}: {exc}"
                ) from exc

    def error(self, where: str, msg: str) -> Exception:
        """The reader's error for ``msg`` at HDF5 location ``where`` (to raise)."""
        return self._error(f"{self.path}: {where}: {msg}")

    def group(self, parent: h5py.Group, name: str, what: str = "a group") -> h5py.Group:
        """The sub-group ``name`` of ``parent``."""
        where = f"{parent.name.rstrip('/')}/{name}"
        obj = parent.get(name)
        if obj is None:
            raise self.error(where, f"missing group; expected {what}")
        if not isinstance(obj, h5py.Group):
            raise self.error(where, f"is a {type(obj).__name__}; expected a group ({what})")
        return obj

    # ------------------------------------------------------------------------ attributes

    def raw_attr(self, obj: h5py.HLObject, name: str, what: str) -> Any:
        """Attribute ``name`` of ``obj`` as stored: text decoded (UTF-8), numpy scalars as
        Python scalars, arrays as arrays."""
        where = f"{obj.name}@{name}"
        if name not in obj.attrs:
            raise self.error(where, f"missing attribute; expected {what}")
        try:
            v = obj.attrs[name]
        except (OSError, TypeError, ValueError) as exc:
            raise self.error(where, f"unreadable attribute ({exc})") from exc
        if isinstance(v, (bytes, np.bytes_)):
            try:
                return v.decode("utf-8")
            except UnicodeDecodeError:
                raise self.error(where, f"not UTF-8 text; expected {what}") from None
        return v.item() if isinstance(v, np.generic) else v

    def attr(
        self,
        obj: h5py.HLObject,
        name: str,
        kind: type = str,
        what: str | None = None,
        *,
        minimum: float | None = None,
        finite: bool = True,
    ) -> Any:
        """Attribute ``name`` of ``obj`` as ``kind`` (str, int or float); bools are not numbers.

        ``minimum`` bounds numbers from below; floats must be finite unless ``finite=False``
        (e.g. NaN for "unknown").
        """
        if kind not in _ATTR_KINDS:
            raise ValueError(f"H5Reader.attr reads str, int or float, not {kind!r}")
        what = what or _ATTR_KINDS[kind]
        v = self.raw_attr(obj, name, what)
        where = f"{obj.name}@{name}"
        if kind is str:
            if not isinstance(v, str):
                raise self.error(where, f"value {v!r} is not a string; expected {what}")
            return v
        if isinstance(v, np.ndarray) and v.shape == (1,):
            v = v[0].item()
        numbers = (int,) if kind is int else (int, float)
        if isinstance(v, bool) or not isinstance(v, numbers):
            raise self.error(where, f"value {v!r} is not {_ATTR_KINDS[kind]}; expected {what}")
        v = kind(v)
        if finite and not math.isfinite(v):
            raise self.error(where, f"value {v!r} is not finite; expected {what}")
        if minimum is not None and v < minimum:
            raise self.error(where, f"value {v!r}; expected {what}")
        return v

    def json_attr(self, obj: h5py.HLObject, name: str, kind: type, what: str) -> Any:
        """Text attribute ``name`` parsed as JSON, which must be a ``kind`` (dict or list)."""
        text = self.attr(obj, name, str, what)
        where = f"{obj.name}@{name}"
        try:
            out = json.loads(text)
        except json.JSONDecodeError as exc:
            raise self.error(where, f"invalid JSON ({exc}); expected {what}") from None
        if not isinstance(out, kind):
            raise self.error(where, f"is a JSON {type(out).__name__}; expected {what}")
        return out

    # -------------------------------------------------------------------------- datasets

    def dataset(
        self,
        group: h5py.Group,
        name: str,
        *,
        kinds: str,
        ndim: int | None = None,
        shape: tuple[int, ...] | None = None,
        what: str,
        required: bool = True,
    ) -> h5py.Dataset | None:
        """Dataset ``name`` of ``group`` (unread), its dtype of one of ``kinds`` ('f', 'iu',
        ...) and exactly ``shape``, or else ``ndim`` dimensions and no empty axis. ``None``
        for a missing dataset that is not ``required``."""
        where = f"{group.name.rstrip('/')}/{name}"
        ds = group.get(name)
        if ds is None:
            if not required:
                return None
            raise self.error(where, f"missing dataset; expected {what}")
        if not isinstance(ds, h5py.Dataset):
            raise self.error(where, f"is a {type(ds).__name__}; expected a dataset ({what})")
        if shape is not None and tuple(ds.shape) != tuple(shape):
            raise self.error(where, f"{ds.dtype} shaped {ds.shape}; expected {what}")
        if ndim is not None and ds.ndim != ndim:
            raise self.error(
                where, f"has {ds.ndim} dimensions {ds.shape}; expected {ndim} ({what})"
            )
        if ds.dtype.kind not in kinds:
            raise self.error(where, f"dtype {ds.dtype}; expected {_KIND_NAMES[kinds]} ({what})")
        if shape is None and min(ds.shape, default=0) < 1:
            raise self.error(where, f"shape {ds.shape} has an empty axis; expected {what}")
        return ds

    def read(
        self, ds: h5py.Dataset, dtype: DTypeLike | None = None, *, finite: bool = False
    ) -> np.ndarray:
        """The data of ``ds`` as an array (of ``dtype`` if given); with ``finite``
        NaN and infinities are refused."""
        try:
            raw = ds[()]
        except _READ_ERRORS as exc:
            raise self.error(ds.name, f"cannot read data (corrupted file?): {exc}") from exc
        a = np.asarray(raw, dtype=dtype)
        if finite and a.dtype.kind == "f":
            bad = ~np.isfinite(a)
            if bad.any():
                first = tuple(int(i) for i in np.argwhere(bad)[0])
                raise self.error(
                    ds.name,
                    f"holds NaN or infinite values ({int(bad.sum())}, first at {first}); "
                    "expected finite numbers",
                )
        return a

    def array(
        self,
        group: h5py.Group,
        name: str,
        shape: tuple[int, ...],
        dtype: DTypeLike,
        *,
        what: str | None = None,
        required: bool = True,
    ) -> np.ndarray | None:
        """Dataset ``name`` of ``group`` read as ``dtype`` (same kind stored) shaped exactly
        ``shape``, floats finite; ``None`` for a missing dataset that is not ``required``."""
        dtype = np.dtype(dtype)
        what = what or f"{dtype.name} shaped {tuple(shape)}"
        ds = self.dataset(
            group, name, kinds=dtype.kind, shape=shape, what=what, required=required
        )
        return None if ds is None else self.read(ds, dtype, finite=True)
