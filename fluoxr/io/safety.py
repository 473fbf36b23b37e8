"""What keeps outputs safe: refused paths, input fingerprints, one writer per output, atomic files.

Every file fluoxr writes, from :func:`fluoxr.save` or from the command line,
goes through here first:

* :func:`check_output_path` refuses an output that is empty, ``"."``, the
  working directory or one of its parents, an input file or a path into an
  input store, or a folder that holds an input, comparing resolved paths
  (symlinks followed) and device+inode pairs (hard links).
* :func:`graph_inputs` finds the files a lazy result reads from the readers in
  its dask graph (fluoxr's readers know their files; zarr arrays know their
  store), not from layer names.
* :func:`fingerprint_inputs` records path, size and modification time of those
  files, so a resumed write can tell that an input changed.
* :class:`OutputLock` is a lock file beside the output (``PATH.lock``): one
  writer at a time, released when the write finishes or the process exits, and
  recognised as stale once its process is gone.
* :func:`write_file_atomically` writes a small file (figure, CSV) to a
  temporary sibling and renames it into place, so a path that is a link is
  replaced, never written through.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import errno
import json
import logging
import os
import socket
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

logger = logging.getLogger(__name__)

LOCK_SUFFIX = ".lock"

# lock owners created by this process whose write has not finished (a save(..., compute=False) not yet run)
_HELD: dict[str, str] = {}
_HELD_GUARD = threading.Lock()


# --------------------------------------------------------------------------------------------
# inputs of a lazy result


def _is_data_node(value: Any) -> bool:
    return type(value).__name__ == "DataNode" and hasattr(value, "value")


def _sources_of(value: Any, depth: int = 0) -> set[str]:
    """Files behind one graph value: a fluoxr reader, a zarr array, or xarray's lazy wrappers of one."""
    if _is_data_node(value):
        value = value.value
    files = getattr(value, "files", None)
    if callable(files) and hasattr(value, "paths"):
        return {os.path.abspath(str(f[0])) for f in files()}
    paths = getattr(value, "paths", None)
    if isinstance(paths, tuple) and paths and all(isinstance(p, str) for p in paths) and hasattr(value, "_read"):
        return {os.path.abspath(p) for p in paths}
    root = getattr(getattr(value, "store", None), "root", None)
    if root is not None:
        return {os.path.abspath(str(root))}
    found: set[str] = set()
    if depth < 6:
        for attr in ("array", "_array", "datastore", "zarr_group", "_ds"):
            inner = getattr(value, attr, None)
            if inner is not None and inner is not value:
                found |= _sources_of(inner, depth + 1)
    return found


def _graph_values(graph: Any) -> Iterator[Any]:
    """Values that a dask graph holds as data: array sources live there, never inside a task."""
    layers = getattr(graph, "layers", None)
    if layers is None:
        yield from dict(graph).values()
        return
    for layer in layers.values():
        mapping = getattr(layer, "mapping", None)
        if isinstance(mapping, Mapping):
            yield from mapping.values()
        # constants of a blockwise layer (an array source inlined with inline_array=True)
        for arg, index in getattr(layer, "indices", ()) or ():
            if index is None:
                yield arg


def graph_inputs(obj: Any) -> set[str]:
    """Absolute paths of every file or store that a lazy xarray/dask object reads.

    Examples
    --------
    >>> import numpy as np, tifffile, fluoxr
    >>> tifffile.imwrite("/tmp/doc_inputs.tif", np.zeros((4, 5, 6), np.uint16), photometric="minisblack")
    >>> sorted(graph_inputs(fluoxr.open_video("/tmp/doc_inputs.tif").mean("time")))
    ['/tmp/doc_inputs.tif']
    """
    import dask

    found: set[str] = set()
    collections = []
    if hasattr(obj, "variables"):
        collections = [v.data for v in obj.variables.values()]
    elif dask.is_dask_collection(obj):
        collections = [obj]
    for data in collections:
        if not dask.is_dask_collection(data):
            continue
        for value in _graph_values(data.__dask_graph__()):
            if value is None or isinstance(value, (int, float, str, bytes, tuple, list, dict)):
                continue
            try:
                found |= _sources_of(value)
            except Exception:  # an exotic value must not stop a save; it simply is not an input
                logger.debug("could not inspect graph value %r", type(value), exc_info=True)
    return found


def attr_sources(obj: Any) -> set[str]:
    """Paths named by ``source`` attributes (what a recording says it came from)."""
    found: set[str] = set()
    attrs_list = [getattr(obj, "attrs", {})]
    if hasattr(obj, "variables"):
        attrs_list += [v.attrs for v in obj.variables.values()]
    for attrs in attrs_list:
        src = attrs.get("source")
        if isinstance(src, str):
            found.update(os.path.abspath(s.strip()) for s in src.split(";") if s.strip())
    return found


def _stat_entry(path: str) -> dict[str, Any]:
    """Path, size and modification time of a file; for a folder (a zarr store) its total size and newest mtime."""
    if os.path.isdir(path):
        size = 0
        newest = os.stat(path).st_mtime_ns
        for root, _, names in os.walk(path):
            for n in names:
                st = os.stat(os.path.join(root, n))
                size += st.st_size
                newest = max(newest, st.st_mtime_ns)
        return {"path": path, "size": size, "mtime_ns": newest}
    st = os.stat(path)
    return {"path": path, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def fingerprint_inputs(paths: Iterable[str]) -> list[dict[str, Any]]:
    """Path, size and modification time (ns) of each existing input, sorted by path."""
    return [_stat_entry(p) for p in sorted(set(paths)) if os.path.exists(p)]


def describe_fingerprint_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What differs between two write fingerprints, in words (empty when they are equal)."""
    reasons = []
    old_inputs = {e["path"]: e for e in old.get("inputs", [])}
    new_inputs = {e["path"]: e for e in new.get("inputs", [])}
    for p in sorted(set(old_inputs) | set(new_inputs)):
        a, b = old_inputs.get(p), new_inputs.get(p)
        if a is None:
            reasons.append(f"the result now reads {p}, which the interrupted write did not")
        elif b is None:
            reasons.append(f"the interrupted write read {p}, which the result no longer reads")
        elif a["size"] != b["size"] or a["mtime_ns"] != b["mtime_ns"]:
            when = datetime.datetime.fromtimestamp(b["mtime_ns"] / 1e9).isoformat(timespec="seconds")
            reasons.append(f"input {p} changed since the interrupted write (size {a['size']} -> {b['size']} bytes, "
                           f"modified {when})")
    if old.get("plan") != new.get("plan"):
        reasons.append("the variables, shapes, dtypes or chunks differ")
    if old.get("token") != new.get("token") and not reasons:
        reasons.append("the computation differs (other parameters or other data; dask token "
                       f"{old.get('token')} -> {new.get('token')})")
    return reasons


# --------------------------------------------------------------------------------------------
# output paths


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _inside(child: str, parent: str) -> bool:
    parent = parent.rstrip(os.sep) or os.sep
    return child != parent and child.startswith(parent if parent == os.sep else parent + os.sep)


def check_output_path(path: Any, inputs: Iterable[str] = (), *, name: str = "path",
                      siblings: Iterable[str] = ()) -> str:
    """Refuse an output path that could destroy data; return it as an absolute path.

    Refused: an empty path, ``"."``, the working directory or a folder that
    holds it, an input (same resolved path, or the same device and inode, as
    for a hard link), a path inside an input store, and a folder that holds an
    input. ``siblings`` are suffixes of files written beside the output (such
    as ``".partial"``); they get the same checks.

    Examples
    --------
    >>> check_output_path("", name="-o")
    Traceback (most recent call last):
    ...
    ValueError: -o is empty; give the path of the output to write
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path, got {type(path).__name__}")
    text = os.fspath(path)
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a text path, got {type(text).__name__}")
    if not text.strip():
        raise ValueError(f"{name} is empty; give the path of the output to write")
    stripped = text.rstrip("/\\") or text
    if os.path.basename(stripped) in (".", "..") or stripped in (".", ".."):
        raise ValueError(f"{name} {text!r} names a directory by '.' or '..'; give the path of a new output")
    absolute = os.path.abspath(stripped)
    real = os.path.realpath(absolute)
    cwd = os.path.realpath(os.getcwd())
    if real == cwd or _inside(cwd, real):
        raise ValueError(f"{name} {text!r} is the working directory or holds it ({cwd}); give the path of a new output")
    home = os.path.realpath(os.path.expanduser("~"))
    if real == home or real == os.path.realpath(os.sep):
        raise ValueError(f"{name} {text!r} is {real}; give the path of a new output")
    candidates = [(absolute, real)] + [(absolute + s, os.path.realpath(absolute + s)) for s in siblings]
    for src in sorted(set(inputs)):
        src_real = os.path.realpath(src)
        for shown, out in candidates:
            if out == src_real or _same_file(out, src_real):
                raise ValueError(f"{name} {text!r} is an input ({src}); inputs are never written")
            if _inside(out, src_real):
                raise ValueError(f"{name} {text!r} lies inside an input ({src}); inputs are never written")
            if _inside(src_real, out):
                raise ValueError(f"{name} {text!r} holds an input ({src}); inputs are never written")
    return absolute


def write_file_atomically(path: str, write: Callable[[str], None]) -> None:
    """Call ``write(tmp)`` on a temporary sibling of ``path``, then rename it onto ``path``.

    The rename replaces a link at ``path`` instead of writing through it, and a
    reader never sees half a file.
    """
    folder = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(folder, exist_ok=True)
    base, ext = os.path.splitext(os.path.basename(path))
    tmp = os.path.join(folder, f".{base}.{uuid.uuid4().hex[:8]}.tmp{ext}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


# --------------------------------------------------------------------------------------------
# one writer at a time


def _process_start(pid: int) -> str | None:
    """Start time of a process (Linux clock ticks since boot), to tell a reused pid from the original."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            text = fh.read()
        return text[text.rindex(")") + 2 :].split()[19]
    except (OSError, ValueError, IndexError):
        return None


def _alive(info: Mapping[str, Any]) -> bool | None:
    """Whether the process that wrote a lock still runs (None: on another host, cannot tell)."""
    if info.get("host") != socket.gethostname():
        return None
    pid = int(info.get("pid", -1))
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    start = info.get("start")
    now = _process_start(pid)
    if start is not None and now is not None and start != now:
        return False  # the pid was reused by another process
    if pid == os.getpid():
        with _HELD_GUARD:
            return info.get("owner") in _HELD.values()
    return True


@contextlib.contextmanager
def _directory_guard(folder: str) -> Iterator[None]:
    """Serialise lock-file changes in one folder between processes (best effort where flock exists)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # pragma: no cover - a file system without flock
            pass
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _read_lock(lock: str) -> dict[str, Any] | None:
    try:
        with open(lock) as fh:
            return json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # half-written by a process killed while creating it


class OutputLock:
    """An exclusive lock on an output path: the file ``PATH.lock`` beside it.

    Taking it fails at once if another live process holds it; a lock left by a
    process that is gone (killed) is taken over. Released by :meth:`release`,
    by the end of the write (from any process), or when this process exits.
    """

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self.lock = self.path + LOCK_SUFFIX
        self.owner = uuid.uuid4().hex

    def acquire(self) -> OutputLock:
        folder = os.path.dirname(self.lock)
        os.makedirs(folder, exist_ok=True)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "start": _process_start(os.getpid()),
                "owner": self.owner, "since": datetime.datetime.now().isoformat(timespec="seconds"),
                "command": " ".join(sys.argv)[:500]}
        with _directory_guard(folder):
            held = _read_lock(self.lock)
            if held is not None:
                alive = _alive(held) if held else False
                if held and alive is not False:
                    who = f"process {held.get('pid')} on {held.get('host')}"
                    if held.get("pid") == os.getpid() and held.get("host") == socket.gethostname():
                        who = "this process (a save(..., compute=False) that has not been computed yet)"
                    raise ValueError(
                        f"path {self.path!r} is being written by {who} since {held.get('since')} "
                        f"(command: {held.get('command') or '?'}); wait for it to finish. If that process is gone "
                        f"{'(fluoxr cannot check another host) ' if alive is None else ''}"
                        f"delete {self.lock} and try again"
                    )
                logger.info("%s: taking over the lock of a writer that is gone (%s)", self.path, held or "unreadable")
                os.remove(self.lock)
            fd = os.open(self.lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, "w") as fh:
                json.dump(info, fh)
        with _HELD_GUARD:
            _HELD[self.lock] = self.owner
        return self

    def release(self) -> None:
        release_lock(self.lock, self.owner)


def release_lock(lock: str, owner: str) -> None:
    """Remove ``lock`` if ``owner`` still holds it (callable from any process that can see the file)."""
    folder = os.path.dirname(lock)
    with _HELD_GUARD:
        if _HELD.get(lock) == owner:
            del _HELD[lock]
    if not os.path.isdir(folder):
        return
    with _directory_guard(folder):
        held = _read_lock(lock)
        if held and held.get("owner") == owner:
            with contextlib.suppress(FileNotFoundError):
                os.remove(lock)


@atexit.register
def _release_all() -> None:  # pragma: no cover - runs at interpreter exit
    with _HELD_GUARD:
        held = list(_HELD.items())
    for lock, owner in held:
        with contextlib.suppress(OSError):
            release_lock(lock, owner)


def fsync_dir(folder: str) -> None:
    """Flush a folder's entries (a rename) to disk where the platform allows."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover
        return
    try:
        os.fsync(fd)
    except OSError as exc:  # pragma: no cover - some file systems refuse fsync on folders
        if exc.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(fd)
