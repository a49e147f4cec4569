"""The on-disk embedding cache: per (dataset, field), the sorted sample IDs,
L2-normalized vectors, validity, and the ``last_modified_at`` each vector was
read with.

A row is a memo "this sample, as of this ``last_modified_at``, has this vector":
it stays right as long as the sample's ``last_modified_at`` is unchanged
(FiftyOne sets it on every write). :mod:`.source` decides which rows are still
current; this module only stores and verifies files:

- paths come from hashes of the dataset ID and field name, under
  :func:`cache_root` (a user string never becomes a path);
- every file is checksummed (size + CRC-32) when written and verified before
  use; any doubt -> the field's cache is deleted and rebuilt;
- a version is written to a temporary folder, moved into place, then made
  current by replacing ``meta.json`` atomically under a file lock; files are
  never modified in place; temporary folders of dead processes are swept.
"""

import fcntl
import hashlib
import json
import mmap
import os
import shutil
import socket
import threading
import time
import uuid

import numpy as np

from ..fastdb import crc32

VERSION = 2
_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]
TMP_PREFIX = ".tmp-"
STALE_TMP_SECONDS = 24 * 3600
CHECKSUM_CHUNK = 64 << 20


def cache_root():
    root = (os.environ.get("FEWSHOT_CACHE_DIR") or "").strip()
    return os.path.abspath(root or os.path.join(os.path.expanduser("~"), ".cache", "fewshot-fiftyone"))


def _h(s):
    return hashlib.sha256(str(s).encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _inside_root(path):
    root = os.path.realpath(cache_root())
    real = os.path.realpath(path)
    if real == root or os.path.commonpath([root, real]) != root:
        raise RuntimeError("refusing to touch %s: not under the cache root %s" % (real, root))
    return real


def dataset_hash(dataset_id):
    return _h(dataset_id)


def dataset_dir(dataset):
    return _inside_root(os.path.join(cache_root(), "v%d" % VERSION, dataset_hash(dataset._doc.id)))


inside_root = _inside_root  # (for orphans.sweep)


def field_dir(dataset, field):
    return _inside_root(os.path.join(dataset_dir(dataset), _h(field)))


def _legacy_dir(dataset):
    # version 1 kept <root>/embeddings/<dataset id>/<field>: removed on reset
    return _inside_root(os.path.join(cache_root(), "embeddings", str(dataset._doc.id)))


# -- the matrix ------------------------------------------------------------------


class Matrix(object):
    """Sorted ``ids``; ``X`` (possibly memory-mapped, read-only), ``valid``,
    ``present``, ``lma`` per row; rows re-read since ``X`` was written live in
    the overlay ``patch`` (row indices, vectors) and win over ``X``."""

    def __init__(self, ids, X, valid, present, lma, dim, patch_rows=None, patch_X=None):
        self.ids, self.X, self.valid, self.present, self.lma, self.dim = ids, X, valid, present, lma, dim
        self.patch_rows = np.zeros(0, np.int64) if patch_rows is None else patch_rows
        self.patch_X = np.zeros((0, X.shape[1]), np.float32) if patch_X is None else patch_X
        self.base = None  # the base version the rows of X come from (None: not on disk)
        self.from_cache = False

    def rows(self, ids):
        """Row index of each ``S12`` id (-1 if not in the matrix)."""
        if not len(self.ids):
            return np.full(len(ids), -1, np.int64)
        pos = np.minimum(np.searchsorted(self.ids, ids), len(self.ids) - 1)
        return np.where(self.ids[pos] == ids, pos, -1).astype(np.int64)

    def block(self, rows):
        """``X[rows]`` (a copy) with the overlay applied."""
        out = np.asarray(self.X[rows], dtype=np.float32)
        if len(self.patch_rows) and len(rows):
            pos = np.minimum(np.searchsorted(self.patch_rows, rows), len(self.patch_rows) - 1)
            hit = self.patch_rows[pos] == rows
            out[hit] = self.patch_X[pos[hit]]
        return out

    def set_rows(self, rows, X, valid, present, lma):
        """Replaces rows (re-read vectors): in ``X`` when writable, else in the overlay."""
        self.valid[rows], self.present[rows], self.lma[rows] = valid, present, lma
        if self.dim is None and X.shape[1]:
            self.dim = X.shape[1]
        if self.X.flags.writeable and self.X.shape[1] == X.shape[1]:
            self.X[rows] = X
            return
        keep = ~np.isin(self.patch_rows, rows)
        pr = np.concatenate([self.patch_rows[keep], rows])
        px = np.concatenate([self.patch_X[keep], X.astype(np.float32)])
        order = np.argsort(pr, kind="stable")
        self.patch_rows, self.patch_X = pr[order], px[order]


# -- files -----------------------------------------------------------------------


def _checksum(path):
    """``[size, CRC-32]`` of a file, read through a memory map: at 1M x 512
    (2 GB) reading it in 64 MB copies took 1.28 s of a click, the map 0.07 s
    (pages cached; zlib-ng's CRC runs at ~16 GB/s here)."""
    size = os.path.getsize(path)
    c = 0
    if not size:
        return [0, c]
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        with memoryview(mm) as view:
            for start in range(0, size, CHECKSUM_CHUNK):
                with view[start : start + CHECKSUM_CHUNK] as part:
                    c = crc32(part, c)
    return [size, c]


def _write_npys(folder, arrays):
    os.makedirs(folder)
    sums = {}
    for name, arr in arrays.items():
        path = os.path.join(folder, name + ".npy")
        np.save(path, np.ascontiguousarray(arr))
        sums[name] = _checksum(path)
    return sums


def _tmp_name():
    return "%s%s-%d-%s" % (TMP_PREFIX, _HOST, os.getpid(), uuid.uuid4().hex[:8])


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep(folder):
    """Deletes temporary folders left by dead processes (or very old ones)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if not name.startswith(TMP_PREFIX):
            continue
        path = os.path.join(folder, name)
        parts = name[len(TMP_PREFIX):].split("-")
        try:
            dead = parts[0] == _HOST and not _pid_alive(int(parts[1]))
            old = time.time() - os.path.getmtime(path) > STALE_TMP_SECONDS
        except (IndexError, ValueError, OSError):
            dead, old = False, True
        if dead or old:
            shutil.rmtree(_inside_root(path), ignore_errors=True)


class _Lock(object):
    """An exclusive ``flock`` on the field folder (threads and processes)."""

    def __init__(self, folder):
        os.makedirs(folder, exist_ok=True)
        self.path = os.path.join(folder, "lock")

    def __enter__(self):
        self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *a):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def _read_meta(folder):
    with open(os.path.join(folder, "meta.json")) as f:
        meta = json.load(f)
    if meta.get("version") != VERSION:
        raise ValueError("cache version %r" % meta.get("version"))
    return meta


def _verified(folder, meta):
    """``{name: path}`` of the current version's files, each checked."""
    out = {}
    for part in ("base", "overlay"):
        for name, want in meta["sums"][part].items():
            path = os.path.join(folder, meta[part], name + ".npy")
            if _checksum(path) != want:
                raise ValueError("checksum of %s" % path)
            out[name if part == "base" else "o_" + name] = path
    return out


def load(dataset, field):
    """The cached :class:`Matrix` (every file verified) with ``.stamp``, or None.

    A cache that fails a check is deleted (it is rebuilt by the next save).
    """
    folder = field_dir(dataset, field)
    wait_pending(folder)
    if not os.path.exists(os.path.join(folder, "meta.json")):
        return None
    sweep(folder)
    for _ in range(3):  # a concurrent commit may replace the version being opened
        try:
            meta = _read_meta(folder)
            p = _verified(folder, meta)
            m = Matrix(
                np.load(p["ids"], mmap_mode="r"), np.load(p["X"], mmap_mode="r"),
                np.array(np.load(p["o_valid"])), np.array(np.load(p["o_present"])),
                np.array(np.load(p["o_lma"])), meta["dim"],
                np.array(np.load(p["o_rows"])), np.array(np.load(p["o_X"])),
            )
            if not (len(m.ids) == len(m.X) == len(m.valid) == len(m.lma) == meta["count"]):
                raise ValueError("row counts disagree")
            m.base, m.stamp, m.from_cache = meta["base"], meta["stamp"], True
            return m
        except FileNotFoundError:
            time.sleep(0.05)
        except (OSError, ValueError, KeyError, TypeError):
            break
    clear_field(dataset, field)
    return None


def _overlay_arrays(m):
    return {"lma": m.lma, "valid": m.valid, "present": m.present, "rows": m.patch_rows, "X": m.patch_X}


def _publish(folder, meta, staged):
    """Moves staged folders into place and makes ``meta`` current; drops the
    versions no longer referenced."""
    with _Lock(folder):
        for tmp, final in staged:
            os.rename(tmp, os.path.join(folder, final))
        if not os.path.isdir(os.path.join(folder, meta["base"])):
            return False  # the base was removed by a concurrent save
        tmp_meta = os.path.join(folder, _tmp_name() + ".json")
        with open(tmp_meta, "w") as f:
            json.dump(meta, f)
        os.replace(tmp_meta, os.path.join(folder, "meta.json"))
        keep = {meta["base"], meta["overlay"], "meta.json", "lock"}
        for name in os.listdir(folder):
            if name not in keep and not name.startswith(TMP_PREFIX):
                path = _inside_root(os.path.join(folder, name))
                shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.remove(path)
    return True


def _stage_base(folder, m, staged):
    X = m.block(np.arange(len(m.ids))) if len(m.patch_rows) else m.X
    tmp = os.path.join(folder, _tmp_name())
    staged.append((tmp, "base-" + uuid.uuid4().hex[:12]))
    sums = _write_npys(tmp, {"ids": m.ids, "X": X})
    return staged[-1][1], sums, Matrix(m.ids, X, m.valid, m.present, m.lma, m.dim)


def _base_sums(folder, base):
    try:
        meta = _read_meta(folder)
    except (OSError, ValueError):
        return None
    return meta["sums"]["base"] if meta.get("base") == base else None


def save(dataset, field, m, stamp, full=False):
    """Stores ``m`` as the field's cache, valid for ``stamp``. When ``m``'s
    base is the current one on disk (and not ``full``) only a new overlay is
    written (per-row state + re-read rows: MBs, not GBs). Returns whether it
    became the current version."""
    folder = field_dir(dataset, field)
    os.makedirs(folder, exist_ok=True)
    sweep(folder)
    staged = []
    try:
        if full or m.base is None:
            base, base_sums, m = _stage_base(folder, m, staged)
        else:
            base, base_sums = m.base, _base_sums(folder, m.base)
            if base_sums is None:
                return False  # another process replaced the base: keep its version
        tmp = os.path.join(folder, _tmp_name())
        staged.append((tmp, "ovl-" + uuid.uuid4().hex[:12]))
        sums = {"base": base_sums, "overlay": _write_npys(tmp, _overlay_arrays(m))}
        meta = {"version": VERSION, "dim": m.dim, "count": int(len(m.ids)), "stamp": stamp,
                "base": base, "overlay": staged[-1][1], "sums": sums}
        return _publish(folder, meta, staged)
    except OSError:
        for tmp, _ in staged:
            shutil.rmtree(tmp, ignore_errors=True)
        return False


_pending = {}  # field folder -> thread saving it


def save_in_background(dataset, field, m, stamp):
    """:func:`save` in a thread (a 1M x 512 base is 2 GB: seconds a click need
    not wait for); the next load of the field waits for it."""
    folder = field_dir(dataset, field)
    wait_pending(folder)
    t = threading.Thread(target=save, args=(dataset, field, m, stamp), name="fewshot-cache-save")
    _pending[folder] = t
    t.start()


def wait_pending(folder):
    t = _pending.pop(folder, None)
    if t is not None:
        t.join()


def clear_field(dataset, field):
    folder = field_dir(dataset, field)
    wait_pending(folder)
    if os.path.isdir(folder):
        with _Lock(folder):
            for name in os.listdir(folder):
                if name != "lock":
                    path = _inside_root(os.path.join(folder, name))
                    shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.remove(path)


def clear(dataset):
    """Deletes every cache of the dataset (all fields, this and older versions)."""
    for folder in list(_pending):
        wait_pending(folder)
    for d in (dataset_dir(dataset), _legacy_dir(dataset)):
        shutil.rmtree(d, ignore_errors=True)
