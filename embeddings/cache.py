"""Fast embedding reads and an on-disk cache of normalized embedding matrices.

Reading vectors through ``values()`` costs ~10 s per 100k samples; a local
``.npy`` loads in ~0.1 s. The cache keeps, per (dataset, field), the sample IDs
(sorted, 12-byte ObjectIds), the L2-normalized float32 vectors and a validity
mask, memory-mapped on load.

Invalidation is conservative: the cache is stamped with the dataset's sample
count and its newest ``last_modified_at`` (an indexed field FiftyOne updates on
every sample edit). Any edit, addition or deletion of samples changes the stamp
and the next read rebuilds the cache. The plugin's own writes (labels,
predictions), which never touch embeddings, re-stamp the cache when nothing else
changed in between (:func:`restamp_after_own_write`).

Reads go below FiftyOne's public API (raw batches from the dataset's MongoDB
collection, decoding FiftyOne's zlib-compressed ``.npy`` vector format) because
``values()`` on 1M vectors is too slow for an interactive click.
"""

import json
import os
import shutil
import struct
import threading
import uuid

import numpy as np


try:  # zlib-ng inflates the same format ~25% faster than zlib (measured on 2 KB vectors)
    from zlib_ng import zlib_ng as _zlib
except ImportError:  # pragma: no cover
    import zlib as _zlib

ID_DTYPE = np.dtype("S12")  # ObjectId bytes; sort order == ObjectId order


def cache_root():
    return os.environ.get(
        "FEWSHOT_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "fewshot-fiftyone")
    )


def _coll(dataset):
    return dataset._sample_collection


def stamp(dataset):
    """(count, newest last_modified_at) of the dataset's samples."""
    coll = _coll(dataset)
    n = coll.count_documents({}, hint="_id_")  # counts the _id index: ~0.3 s per 1M
    doc = next(
        iter(coll.find({}, {"last_modified_at": 1}).sort("last_modified_at", -1).limit(1)), None
    )
    lma = doc.get("last_modified_at") if doc else None
    return [int(n), lma.isoformat() if lma is not None else None]


# -- decoding ------------------------------------------------------------------


class _Decoder(object):
    """Decodes FiftyOne's serialized vectors (zlib-compressed ``.npy``)."""

    def __init__(self):
        self._headers = {}

    def from_npy(self, raw):
        """An array from uncompressed ``.npy`` bytes (headers parsed once)."""
        # .npy v1/v2: 6-byte magic, 2-byte version, header length, header
        if raw[6] == 1:
            off = 10 + int.from_bytes(raw[8:10], "little")
        else:
            off = 12 + int.from_bytes(raw[8:12], "little")
        hdr = raw[:off]
        info = self._headers.get(hdr)
        if info is None:
            import io

            arr = np.load(io.BytesIO(raw))
            if arr.dtype.hasobject or arr.dtype.byteorder == ">" or np.isfortran(arr) and arr.ndim > 1:
                return arr.ravel()
            info = self._headers[hdr] = (arr.dtype, arr.size)
        dtype, size = info
        return np.frombuffer(raw, dtype=dtype, count=size, offset=off)


def _inflate(blob):
    # zlib releases the GIL while inflating: two threads use both cores
    return _zlib.decompress(blob) if isinstance(blob, (bytes, memoryview)) else blob


def _raw_batches(dataset, field):
    """Yields the raw BSON batches of every sample's ``{_id, field}``.

    A thread fetches the next batch from MongoDB while this one is decoded.
    """
    import queue
    import threading

    coll = _coll(dataset)
    proj = {"_id": 1, field: 1}
    batches = queue.Queue(maxsize=4)
    errors = []
    stop = threading.Event()

    def put(item):
        while not stop.is_set():
            try:
                batches.put(item, timeout=0.2)
                return True
            except queue.Full:
                pass
        return False

    def fetch():
        try:
            # 1,000 documents (~2 MB) a batch: larger ones cost more CPU to receive
            # (measured: ~0.35 vs ~0.6 s per 100k 512-d vectors with 5,000)
            for batch in coll.find_raw_batches({}, proj, batch_size=1_000):
                if not put(batch):
                    return
        except Exception as e:  # re-raised by the consumer
            errors.append(e)
        finally:
            put(None)

    t = threading.Thread(target=fetch, daemon=True)
    t.start()
    try:
        while True:
            batch = batches.get()
            if batch is None:
                break
            yield batch
    finally:
        stop.set()  # also when the consumer stops early
        t.join()
    if errors:
        raise errors[0]


_INT32 = struct.Struct("<i")
_ID_ELEM = np.frombuffer(b"\x07_id\x00", dtype=np.uint8)


def _split_batch(batch, field):
    """``(ids, values)`` of a raw batch of ``{_id, field}`` documents.

    ``values[i]`` is a memoryview of the document's binary value (FiftyOne
    stores a vector as zlib-compressed ``.npy`` bytes) or, for any other layout,
    the decoded value (None when absent). Locating the binaries with numpy
    instead of decoding every document saves ~7 s of CPU per 1M samples.
    """
    import bson

    size = len(batch)
    starts = []
    off = 0
    while off < size:  # documents are back to back, each led by its length
        starts.append(off)
        off += _INT32.unpack_from(batch, off)[0]
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.append(starts[1:], size)
    # {_id: ObjectId, <field>: BinData} and nothing else
    felem = np.frombuffer(b"\x05" + field.encode() + b"\x00", dtype=np.uint8)
    a = np.frombuffer(batch, dtype=np.uint8)
    # zero padding: the fixed-width peeks below stay in bounds for short documents
    a = np.concatenate([a, np.zeros(32 + len(felem), np.uint8)])

    def peek(at, k):
        return a[at[:, None] + np.arange(k)]

    p = starts + 4 + len(_ID_ELEM) + 12
    q = p + len(felem)  # binary length, subtype, data
    blen = np.ascontiguousarray(peek(q, 4)).view("<i4").ravel().astype(np.int64)
    fast = (
        (peek(starts + 4, len(_ID_ELEM)) == _ID_ELEM).all(axis=1)
        & (peek(p, len(felem)) == felem).all(axis=1)
        & (a[q + 4] == 0)  # generic subtype: what bson decodes to bytes
        & (blen >= 0)
        & (q + 5 + blen + 1 == ends)
        & (a[ends - 1] == 0)
    )
    ids = np.ascontiguousarray(peek(starts + 4 + len(_ID_ELEM), 12)).view(ID_DTYPE).ravel()
    buf = memoryview(batch)
    values = [None] * len(starts)
    for i in np.flatnonzero(fast).tolist():
        s = q[i] + 5
        values[i] = buf[s : s + blen[i]]
    for i in np.flatnonzero(~fast).tolist():
        doc = bson.decode(buf[starts[i] : ends[i]])
        ids[i] = doc["_id"].binary
        values[i] = doc.get(field)
    return ids, values


_ID_DOC = b"\x16\x00\x00\x00\x07_id\x00"  # BSON {_id: ObjectId}: 22 bytes


def _parse_id_batch(batch):
    """ObjectId bytes of a raw batch of ``{_id}`` documents (None if unusual)."""
    if len(batch) % 22:
        return None
    a = np.frombuffer(batch, dtype=np.uint8).reshape(-1, 22)
    if len(a) and not (
        (a[:, :9] == np.frombuffer(_ID_DOC, dtype=np.uint8)).all() and (a[:, 21] == 0).all()
    ):
        return None
    return a[:, 9:21].copy().view(ID_DTYPE).ravel()


def view_ids(view):
    """ObjectId bytes (``S12`` array) of the samples of a view, fast.

    Parses the raw ``{_id}`` documents directly; ~10x faster than
    ``values("id")``.
    """
    coll = _coll(view._root_dataset)
    pipeline = view._pipeline()
    if pipeline:
        batches = coll.aggregate_raw_batches(pipeline + [{"$project": {"_id": 1}}], allowDiskUse=True)
    else:
        # a covered scan of the _id index: no sample document is fetched
        # (without the hint MongoDB reads every document: ~8 s vs ~1 s at 1M)
        batches = coll.find_raw_batches({}, {"_id": 1}, batch_size=100_000, hint="_id_")
    parts = []
    for batch in batches:
        ids = _parse_id_batch(batch)
        if ids is None:  # some other layout: decode it properly
            import bson

            ids = np.array([d["_id"].binary for d in bson.decode_all(batch)], dtype=ID_DTYPE)
        parts.append(ids)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=ID_DTYPE)


def to_bytes(ids):
    """Sample ID strings -> ``S12`` array."""
    return np.array([bytes.fromhex(i) for i in ids], dtype=ID_DTYPE)


def to_str(ids):
    return [bytes(b).ljust(12, b"\0").hex() for b in ids]


# -- the cache -----------------------------------------------------------------


class Matrix(object):
    """Normalized embeddings of a dataset's field: sorted ``ids``, ``X``, ``valid``.

    Rows of samples without an embedding are zero with ``present`` False.
    """

    def __init__(self, ids, X, valid, present, dim):
        self.ids, self.X, self.valid, self.present, self.dim = ids, X, valid, present, dim

    def rows(self, ids):
        """Row index of each ``S12`` id (-1 if not in the matrix)."""
        pos = np.searchsorted(self.ids, ids)
        pos = np.minimum(pos, len(self.ids) - 1) if len(self.ids) else np.zeros(len(ids), int)
        ok = (self.ids[pos] == ids) if len(self.ids) else np.zeros(len(ids), bool)
        return np.where(ok, pos, -1)


def _dir(dataset, field):
    return os.path.join(cache_root(), "embeddings", str(dataset._doc.id), field)


def _decode_batch(ids, values, dec, pool, dim):
    """``(ids, X, present, dim)`` of a batch split by :func:`_split_batch`;
    ``X`` rows are the raw vectors (zeros where absent). Inflates in ``pool``'s
    2 threads."""
    half = len(values) // 2
    parts = pool.map(lambda b: [_inflate(x) for x in b], (values[:half], values[half:]))
    raws = [r for part in parts for r in part]
    fast = _decode_uniform(raws, dec, dim)
    if fast is not None:
        return ids, fast, np.ones(len(raws), dtype=bool), fast.shape[1]
    present = np.zeros(len(raws), dtype=bool)
    X = None
    for i, raw in enumerate(raws):
        if raw is None:
            continue
        v = np.asarray(raw, dtype=np.float32) if isinstance(raw, list) else dec.from_npy(raw)
        if dim is None:
            dim = v.size
        if v.size != dim:
            from .fields import EmbeddingError

            raise EmbeddingError(
                "Embeddings of different dimensions found (%d, %d); the field "
                "mixes models" % (dim, v.size)
            )
        if X is None:
            X = np.zeros((len(raws), dim), dtype=np.float32)
        X[i] = v
        present[i] = True
    if X is None:
        X = np.zeros((len(raws), dim or 0), dtype=np.float32)
    return ids, X, present, dim


def _decode_uniform(raws, dec, dim):
    """The batch's ``[n, dim]`` float32 matrix in one pass when every vector is
    ``.npy`` bytes with the same header (one model wrote them all), else None."""
    if not raws or not all(type(r) is bytes for r in raws):
        return None
    L = len(raws[0])
    if any(len(r) != L for r in raws):
        return None
    first = dec.from_npy(raws[0])
    if first.dtype != np.float32 or first.ndim != 1 or (dim is not None and first.size != dim):
        return None
    off = L - first.nbytes
    A = np.frombuffer(b"".join(raws), dtype=np.uint8).reshape(len(raws), L)
    if not (A[:, :off] == A[0, :off]).all():
        return None
    return A[:, off:].view(np.float32)  # a view: the caller copies it once, into place


def _normalize_rows(X, valid):
    """Validates and L2-normalizes ``X`` in place; returns the valid mask."""
    if X.shape[1]:
        # valid_rows' rule (finite and non-zero) from the squared norms, in one
        # pass: NaN/inf rows (or ones whose squared norm overflows) are invalid
        with np.errstate(all="ignore"):
            sq = np.einsum("ij,ij->i", X, X)
            valid = valid & np.isfinite(sq) & (sq > 0)
            X /= np.where(valid, np.sqrt(sq), 1.0).astype(X.dtype)[:, None]
        X[~valid] = 0
    return valid


def read_vectors(dataset, field, ids):
    """Normalized vectors of a few samples (``S12`` ids): ``(ids, X, valid,
    present)`` in the order MongoDB returns them (deleted ids are absent)."""
    from concurrent.futures import ThreadPoolExecutor

    from bson import ObjectId

    coll = _coll(dataset)
    dec = _Decoder()
    out = []
    dim = None
    with ThreadPoolExecutor(2) as pool:
        for s in range(0, len(ids), 50_000):
            q = {"_id": {"$in": [ObjectId(h) for h in to_str(ids[s : s + 50_000])]}}
            for batch in coll.find_raw_batches(q, {"_id": 1, field: 1}):
                bid, X, present, dim = _decode_batch(*_split_batch(batch, field), dec, pool, dim)
                out.append((bid, X, present))
    if not out:
        return np.empty(0, ID_DTYPE), np.zeros((0, 0), np.float32), np.zeros(0, bool), np.zeros(0, bool)
    d = max(x[1].shape[1] for x in out)
    ids_ = np.concatenate([x[0] for x in out])
    X = np.concatenate([x[1] if x[1].shape[1] == d else np.zeros((len(x[0]), d), np.float32) for x in out])
    present = np.concatenate([x[2] for x in out])
    return ids_, X, _normalize_rows(X, present.copy()), present


ON_BATCH_ROWS = 16384  # rows per on_batch call (scoring and write batches stay large)


def read_all(dataset, field, progress=None, on_batch=None):
    """Reads every sample's vector of ``field``: a :class:`Matrix` (sorted).

    ``on_batch(ids, X, valid)`` is called with each batch's normalized rows as
    they arrive (streaming consumers: scoring and writing overlap the read).
    """
    n = _coll(dataset).count_documents({})
    dec = _Decoder()
    ids = np.empty(n, dtype=ID_DTYPE)
    X = None
    present = np.zeros(n, dtype=bool)
    valid = np.zeros(n, dtype=bool)
    dim = None
    k = passed = 0  # rows read / passed to on_batch
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        for batch in _raw_batches(dataset, field):
            bid, values = _split_batch(batch, field)
            m = min(len(bid), max(n - k, 0))  # samples added while reading: the stamp will not match
            if not m:
                break
            bid, bX, bpresent, dim = _decode_batch(bid[:m], values[:m], dec, pool, dim)
            if X is None and dim is not None:
                X = np.zeros((n, dim), dtype=np.float32)
            ids[k : k + m] = bid
            present[k : k + m] = bpresent
            if X is not None and bX.shape[1]:
                X[k : k + m] = bX
                valid[k : k + m] = _normalize_rows(X[k : k + m], bpresent.copy())
            k += m
            if on_batch is not None and X is not None and k - passed >= ON_BATCH_ROWS:
                on_batch(ids[passed:k], X[passed:k], valid[passed:k])
                passed = k
            if progress is not None:
                progress(k / max(n, 1), "Read %d/%d embeddings" % (k, n))
        if on_batch is not None and X is not None and k > passed:
            on_batch(ids[passed:k], X[passed:k], valid[passed:k])
    ids, present, valid = ids[:k], present[:k], valid[:k]
    if X is None:
        X = np.zeros((k, 0), dtype=np.float32)
    X = X[:k]
    order = np.argsort(ids, kind="stable")
    if not np.all(order[1:] > order[:-1]):
        ids, present, valid = ids[order], present[order], valid[order]
        X = X[order]
    return Matrix(ids, X, valid, present, dim)


def is_fresh(dataset, field, current):
    """Whether the field's cache is valid for stamp ``current``."""
    wait_pending(_dir(dataset, field))
    try:
        with open(os.path.join(_dir(dataset, field), "meta.json")) as f:
            return json.load(f).get("stamp") == current
    except (OSError, ValueError):
        return False


def load(dataset, field, progress=None, use_cache=True, current=None):
    """The field's normalized :class:`Matrix`, from the cache when still valid.

    ``current`` is the dataset's :func:`stamp` if the caller already has it.
    Returns ``(matrix, from_cache)``.
    """
    d = _dir(dataset, field)
    wait_pending(d)
    st = current if current is not None else stamp(dataset)
    if use_cache:
        try:
            with open(os.path.join(d, "meta.json")) as f:
                meta = json.load(f)
            if meta.get("stamp") == st:
                m = Matrix(
                    np.load(os.path.join(d, "ids.npy"), mmap_mode="r"),
                    np.load(os.path.join(d, "X.npy"), mmap_mode="r"),
                    np.load(os.path.join(d, "valid.npy")),
                    np.load(os.path.join(d, "present.npy")),
                    meta.get("dim"),
                )
                return m, True
        except (OSError, ValueError):
            pass
    m = read_all(dataset, field, progress=progress)
    if use_cache and stamp(dataset) == st:  # nothing changed while reading
        _save(d, m, st)
    return m, False


_pending = {}  # cache dir -> thread saving it


def save(dataset, field, m, st, background=False):
    """Caches matrix ``m`` of ``field`` as valid for stamp ``st``.

    With ``background``, a thread writes it (a 1M x 512 matrix is 2 GB: seconds
    the click need not wait for); the next :func:`is_fresh`/:func:`load` of the
    same field waits for it.
    """
    d = _dir(dataset, field)
    wait_pending(d)
    if not background:
        _save(d, m, st)
        return
    t = threading.Thread(target=_save, args=(d, m, st), name="fewshot-cache-save")
    _pending[d] = t
    t.start()


def wait_pending(d):
    t = _pending.pop(d, None)
    if t is not None:
        t.join()


def _wait_pending_under(root):
    for key in [k for k in list(_pending) if k == root or k.startswith(root + os.sep)]:
        wait_pending(key)


def only_own_writes(dataset, before, write_time, count=None):
    """Whether the only sample changes since stamp ``before`` are writes made
    at ``write_time`` (the plugin stamps all of one click's writes with one
    time): same count, and no other ``last_modified_at`` newer than before.

    ``count``: the number of samples now, when the caller has just taken a
    :func:`stamp` (counting 1M samples costs ~0.3 s).
    """
    import datetime

    coll = _coll(dataset)
    if count is None:
        count = coll.count_documents({}, hint="_id_")
    if count != before[0]:
        return False
    q = {"$ne": write_time}
    if before[1] is not None:
        q["$gt"] = datetime.datetime.fromisoformat(before[1])
    return coll.count_documents({"last_modified_at": q}, limit=1) == 0


def _save(d, m, st):
    tmp = d + ".tmp-" + uuid.uuid4().hex[:8]
    os.makedirs(tmp, exist_ok=True)
    try:
        np.save(os.path.join(tmp, "ids.npy"), m.ids)
        np.save(os.path.join(tmp, "X.npy"), m.X)
        np.save(os.path.join(tmp, "valid.npy"), m.valid)
        np.save(os.path.join(tmp, "present.npy"), m.present)
        with open(os.path.join(tmp, "meta.json"), "w") as f:
            json.dump({"stamp": st, "dim": m.dim, "count": int(len(m.ids))}, f)
        if os.path.isdir(d):
            shutil.rmtree(d, ignore_errors=True)
        os.makedirs(os.path.dirname(d), exist_ok=True)
        os.replace(tmp, d)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)


def restamp_after_own_write(dataset, before, write_time=None):
    """After a plugin write that did not touch embeddings: keep caches valid.

    ``before`` is :func:`stamp` taken just before the write. Caches stamped
    ``before`` (nothing else changed since they were built) get the new stamp;
    with ``write_time`` (the time stamped on the plugin's writes), only if no
    other sample changed meanwhile.
    """
    root = os.path.join(cache_root(), "embeddings", str(dataset._doc.id))
    _wait_pending_under(root)
    if not os.path.isdir(root):
        return
    after = None
    for field in os.listdir(root):
        path = os.path.join(root, field, "meta.json")
        try:
            with open(path) as f:
                meta = json.load(f)
        except (OSError, ValueError):
            continue
        if meta.get("stamp") != before:
            continue
        if after is None:
            after = stamp(dataset)
        if after[0] != before[0]:
            return  # samples were added/deleted meanwhile
        if write_time is not None and not only_own_writes(dataset, before, write_time, after[0]):
            return  # someone else edited samples meanwhile
        meta["stamp"] = after
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(meta, f)
        os.replace(tmp, path)


def clear(dataset, field=None):
    """Deletes the dataset's caches (of one field, or all)."""
    d = _dir(dataset, field) if field else os.path.dirname(_dir(dataset, "x"))
    _wait_pending_under(d)
    shutil.rmtree(d, ignore_errors=True)

