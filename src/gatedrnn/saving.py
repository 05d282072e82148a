"""The gatedrnn file format: one archive holding a JSON config and named arrays.

:func:`write_archive` / :func:`read_archive` are the primitives ``Model.save`` / ``load`` and
the checkpoints build on.

Format (``FORMAT_NAME`` = ``"gatedrnn-model"``, ``FORMAT_VERSION`` = 1):

- default: a zip file in NumPy's ``.npz`` layout (one ``<name>.npy`` member per array, readable
  with ``np.load(path, allow_pickle=False)``), plus three reserved members: ``__gatedrnn_format__``
  (0-d unicode array: the format name), ``__gatedrnn_version__`` (0-d int64) and
  ``__gatedrnn_config__`` (uint8 array: the UTF-8 JSON text of the config).  The file is written
  at exactly the path given, whatever its suffix (``np.savez`` would append ``.npz``).
- a path ending in ``.safetensors``: the safetensors format (needs ``pip install safetensors``),
  with the format name, version, config JSON and the array order in the header metadata.

Nothing is ever pickled: object arrays are refused when writing (TypeError) and files are read
with ``allow_pickle=False``.

Writes are atomic: the archive goes to a temporary file in the target's directory, which is
flushed, fsync'ed and renamed over the path (``os.replace``); the directory is then fsync'ed
(best effort).  If anything fails, the temporary file is removed and a previous file at the
path is left untouched.
"""

from __future__ import annotations

import errno
import json
import os
import struct
import tempfile
import zipfile
import zlib

import numpy as np

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "write_archive", "read_archive"]

FORMAT_NAME = "gatedrnn-model"
FORMAT_VERSION = 1

_RESERVED_PREFIX = "__gatedrnn_"
_FORMAT_KEY = "__gatedrnn_format__"
_VERSION_KEY = "__gatedrnn_version__"
_CONFIG_KEY = "__gatedrnn_config__"

_SAFETENSORS_SUFFIX = ".safetensors"
# dtypes safetensors stores natively (bool, signed/unsigned ints, IEEE floats)
_SAFETENSORS_KINDS = {"b", "i", "u", "f"}


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------

def _as_path(path):
    try:
        path = os.fspath(path)
    except TypeError:
        raise TypeError(f"path: expected a str or os.PathLike, got {type(path).__name__}") from None
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not path:
        raise ValueError("path: expected a file path, got an empty string")
    return path


def _config_json(config):
    if not isinstance(config, dict):
        raise TypeError(f"config: expected a dict, got {type(config).__name__}")
    try:
        return json.dumps(config, sort_keys=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"config: not JSON-serialisable ({exc})") from None


def _check_arrays(arrays, safetensors=False):
    if not isinstance(arrays, dict):
        raise TypeError(f"arrays: expected a dict of name -> ndarray, got {type(arrays).__name__}")
    out = {}
    for name, value in arrays.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"arrays: keys must be non-empty str, got {name!r}")
        if name.startswith(_RESERVED_PREFIX):
            raise ValueError(f"arrays[{name!r}]: names starting with {_RESERVED_PREFIX!r} are "
                             f"reserved for the file format")
        if "\x00" in name:
            raise ValueError(f"arrays[{name!r}]: names may not contain NUL characters")
        arr = np.asarray(value)
        if arr.dtype.hasobject:
            raise TypeError(f"arrays[{name!r}]: object arrays cannot be stored (they would need "
                            f"pickle); got dtype {arr.dtype}")
        if safetensors and arr.dtype.kind not in _SAFETENSORS_KINDS:
            raise TypeError(f"arrays[{name!r}]: dtype {arr.dtype} cannot be stored in "
                            f".safetensors (bool, int, uint and float only)")
        if not safetensors and arr.dtype.kind not in "biufcUS":
            raise TypeError(f"arrays[{name!r}]: dtype {arr.dtype} cannot be stored (numeric, "
                            f"bool or string arrays only)")
        out[name] = arr
    return out


# --------------------------------------------------------------------------------------------
# Atomic file replacement
# --------------------------------------------------------------------------------------------

def _fsync_directory(dirname):
    """Make the rename durable where the platform allows it (not on Windows)."""
    try:
        fd = os.open(dirname, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _current_umask():
    # Linux reports the umask without changing it; elsewhere, set-and-restore (which leaves the
    # umask at 0 for an instant: a file another thread creates right then gets mode 0666).
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic_write(path, write_fn):
    """Call ``write_fn(fileobj)`` on a temporary file next to ``path``, then move it onto
    ``path``.  On any exception the temporary file is removed and ``path`` is untouched."""
    dirname = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(dirname):
        raise FileNotFoundError(errno.ENOENT, f"Cannot write {path!r}: no such directory",
                                dirname)
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "Cannot write a gatedrnn file over a directory",
                                path)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=dirname)
    try:
        with os.fdopen(fd, "wb") as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates the file 0600; give it the mode a plain open() would.
        try:
            mode = (os.stat(path).st_mode & 0o7777) if os.path.exists(path) \
                else 0o666 & ~_current_umask()
            os.chmod(tmp, mode)
        except OSError:
            pass
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_directory(dirname)


# --------------------------------------------------------------------------------------------
# npz
# --------------------------------------------------------------------------------------------

def _write_npz(fileobj, members):
    """Write ``members`` (name -> ndarray) as an uncompressed .npz zip to ``fileobj``."""
    with zipfile.ZipFile(fileobj, mode="w", compression=zipfile.ZIP_STORED,
                         allowZip64=True) as zf:
        for name, arr in members.items():
            with zf.open(name + ".npy", mode="w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(arr), allow_pickle=False)


def _npz_members(config_json, arrays):
    members = {
        _FORMAT_KEY: np.array(FORMAT_NAME),
        _VERSION_KEY: np.array(FORMAT_VERSION, dtype=np.int64),
        _CONFIG_KEY: np.frombuffer(config_json.encode("utf-8"), dtype=np.uint8),
    }
    members.update(arrays)
    return members


class _NotOurs(Exception):
    """Internal: the file is readable but is not a gatedrnn archive."""


def _read_npz(path):
    members = {}
    with open(path, "rb") as f:
        # np.load on a non-zip file would try .npy / pickle; insist on a zip first.
        if not zipfile.is_zipfile(f):
            raise _NotOurs("not a zip archive: truncated, corrupt or another format")
        f.seek(0)
        with np.load(f, allow_pickle=False) as npz:
            for name in npz.files:
                members[name] = npz[name]
    return members


def _decode_members(path, members):
    if _FORMAT_KEY not in members:
        raise ValueError(f"{path}: not a gatedrnn file (format marker {_FORMAT_KEY!r} missing)")
    marker = members.pop(_FORMAT_KEY)
    if marker.shape != () or marker.dtype.kind != "U" or str(marker) != FORMAT_NAME:
        raise ValueError(f"{path}: not a gatedrnn file (format marker is {marker!r}, "
                         f"expected {FORMAT_NAME!r})")
    version = members.pop(_VERSION_KEY, None)
    if version is None or version.shape != () or version.dtype.kind not in "iu":
        raise ValueError(f"{path}: not a gatedrnn file (format version missing or malformed)")
    _check_version(path, int(version))
    config_bytes = members.pop(_CONFIG_KEY, None)
    if config_bytes is None or config_bytes.dtype != np.uint8 or config_bytes.ndim != 1:
        raise ValueError(f"{path}: not a gatedrnn file (config missing or malformed)")
    config = _parse_config(path, config_bytes.tobytes())
    return config, members


def _check_version(path, version):
    if version > FORMAT_VERSION:
        raise ValueError(f"{path}: written in gatedrnn format version {version}, newer than "
                         f"this gatedrnn reads (up to {FORMAT_VERSION}); upgrade gatedrnn")
    if version < 1:
        raise ValueError(f"{path}: not a gatedrnn file (format version {version})")


def _parse_config(path, raw):
    try:
        config = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a gatedrnn file (config is not valid JSON: {exc})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: not a gatedrnn file (config is not a JSON object)")
    return config


# --------------------------------------------------------------------------------------------
# safetensors
# --------------------------------------------------------------------------------------------

def _import_safetensors():
    try:
        import safetensors.numpy as st
    except ImportError:
        raise ImportError("saving to or loading from a .safetensors path needs the safetensors "
                          "package: pip install safetensors") from None
    return st


def _write_safetensors(fileobj, config_json, arrays):
    st = _import_safetensors()
    metadata = {
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        "config": config_json,
        "array_order": json.dumps(list(arrays)),
    }
    data = st.save({k: np.ascontiguousarray(v) for k, v in arrays.items()}, metadata=metadata)
    fileobj.write(data)


def _read_safetensors(path):
    st = _import_safetensors()
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise _NotOurs("file too short for a safetensors header")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > len(data) - 8:
        raise _NotOurs("truncated safetensors header")
    try:
        header = json.loads(data[8:8 + header_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _NotOurs("safetensors header is not JSON") from None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(metadata, dict) or "format" not in metadata:
        raise ValueError(f"{path}: not a gatedrnn file (format marker missing from the "
                         f"safetensors metadata)")
    if metadata["format"] != FORMAT_NAME:
        raise ValueError(f"{path}: not a gatedrnn file (format marker is "
                         f"{metadata['format']!r}, expected {FORMAT_NAME!r})")
    try:
        version = int(metadata.get("format_version", ""))
    except ValueError:
        raise ValueError(f"{path}: not a gatedrnn file (format version missing or "
                         f"malformed)") from None
    _check_version(path, version)
    config = _parse_config(path, metadata.get("config", ""))
    try:
        tensors = st.load(data)
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise _NotOurs(f"safetensors could not read it: {exc}") from None
    try:
        order = json.loads(metadata.get("array_order", "[]"))
    except json.JSONDecodeError:
        order = []
    arrays = {k: tensors[k] for k in order if k in tensors}
    arrays.update({k: v for k, v in tensors.items() if k not in arrays})
    return config, arrays


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------

def _is_safetensors(path):
    return path.lower().endswith(_SAFETENSORS_SUFFIX)


def write_archive(path, config, arrays):
    """Write ``config`` (a JSON-serialisable dict) and ``arrays`` (name -> ndarray) to exactly
    ``path``, atomically (see the module docstring).

    Raises:
        TypeError: ``config`` is not a JSON-serialisable dict, or an array cannot be stored
            (object dtype; for .safetensors also complex/string dtypes).
        ValueError: an array name is reserved (``__gatedrnn_...``).
        FileNotFoundError: the directory of ``path`` does not exist.
        ImportError: a ``.safetensors`` path without the safetensors package.
    """
    path = _as_path(path)
    config_json = _config_json(config)
    if _is_safetensors(path):
        arrays = _check_arrays(arrays, safetensors=True)
        _import_safetensors()  # fail before touching the file system
        _atomic_write(path, lambda f: _write_safetensors(f, config_json, arrays))
        return
    arrays = _check_arrays(arrays)
    members = _npz_members(config_json, arrays)
    # Looked up at call time so a test can substitute a failing writer.
    _atomic_write(path, lambda f: _write_npz(f, members))


def read_archive(path):
    """Read a file written by :func:`write_archive`: returns ``(config, arrays)`` with the
    arrays in the order they were written.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a gatedrnn archive (not a zip / truncated / corrupt /
            format marker missing or different), or was written by a newer format version.
        ImportError: a ``.safetensors`` path without the safetensors package.
    """
    path = _as_path(path)
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, "No such gatedrnn file", path)
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "A directory, not a gatedrnn file", path)
    if _is_safetensors(path):
        try:
            return _read_safetensors(path)
        except _NotOurs as exc:
            raise ValueError(f"{path}: not a gatedrnn file ({exc})") from None
    try:
        members = _read_npz(path)
    except _NotOurs as exc:
        raise ValueError(f"{path}: not a gatedrnn file ({exc})") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error, KeyError,
            ValueError, OSError, NotImplementedError) as exc:
        if isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM):
            raise  # a permission problem is not a corrupt file
        raise ValueError(f"{path}: not a gatedrnn file, or a corrupt/truncated one "
                         f"({type(exc).__name__}: {exc})") from None
    return _decode_members(path, members)
