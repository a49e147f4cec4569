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
import uuid
import zlib

import numpy as np

from ..scoring import valid_rows

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
    return zlib.decompress(blob) if isinstance(blob, bytes) else blob


def _raw_docs(dataset, field):
    """Yields raw ``{_id, field}`` dicts of every sample of the dataset.

    A thread fetches the next batch from MongoDB while this one is decoded.
    """
    import queue
    import threading

    import bson

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
            for batch in coll.find_raw_batches({}, proj, batch_size=5_000):
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
            for doc in bson.decode_all(batch):
                yield doc
    finally:
        stop.set()  # also when the consumer stops early
        t.join()
    if errors:
        raise errors[0]


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
        batches = coll.find_raw_batches({}, {"_id": 1}, batch_size=100_000)
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


def _read_all(dataset, field, progress=None):
    """Reads every sample's vector of ``field``: a :class:`Matrix` (sorted)."""
    n = _coll(dataset).count_documents({})
    dec = _Decoder()
    ids = np.empty(n, dtype=ID_DTYPE)
    X = None
    present = np.zeros(n, dtype=bool)
    dim = None
    k = 0
    from concurrent.futures import ThreadPoolExecutor

    def batches(size=4096):
        docs = []
        for doc in _raw_docs(dataset, field):
            docs.append(doc)
            if len(docs) == size:
                yield docs
                docs = []
        if docs:
            yield docs

    with ThreadPoolExecutor(2) as pool:
        for docs in batches():
            blobs = [d.get(field) for d in docs]
            half = len(blobs) // 2
            parts = pool.map(lambda b: [_inflate(x) for x in b], (blobs[:half], blobs[half:]))
            raws = [r for part in parts for r in part]
            for doc, raw in zip(docs, raws):
                if k >= n:  # samples added while reading: the stamp will not match
                    break
                ids[k] = doc["_id"].binary
                if raw is None:
                    v = None
                elif isinstance(raw, list):
                    v = np.asarray(raw, dtype=np.float32)
                else:
                    v = dec.from_npy(raw)
                if v is not None:
                    if dim is None:
                        dim = v.size
                        X = np.zeros((n, dim), dtype=np.float32)
                    if v.size != dim:
                        from .fields import EmbeddingError

                        raise EmbeddingError(
                            "Embeddings of different dimensions found (%d, %d); the field "
                            "mixes models" % (dim, v.size)
                        )
                    X[k] = v
                    present[k] = True
                k += 1
            if progress is not None:
                progress(k / max(n, 1), "Read %d/%d embeddings" % (k, n))
    ids, present = ids[:k], present[:k]
    if X is None:
        X = np.zeros((k, 0), dtype=np.float32)
    X = X[:k]
    order = np.argsort(ids, kind="stable")
    if not np.all(order[1:] > order[:-1]):
        ids, present = ids[order], present[order]
        X = X[order]
    valid = present.copy()
    if X.shape[1]:
        # validate and normalize in place, in chunks (no second full-size copy)
        for s in range(0, k, 16384):
            blk = X[s : s + 16384]
            m = valid[s : s + 16384]
            m &= valid_rows(blk)
            if m.any():
                nrm = np.sqrt(np.einsum("ij,ij->i", blk[m], blk[m]))
                blk[m] /= nrm[:, None]
            blk[~m] = 0
    return Matrix(ids, X, valid, present, dim)


def load(dataset, field, progress=None, use_cache=True, current=None):
    """The field's normalized :class:`Matrix`, from the cache when still valid.

    ``current`` is the dataset's :func:`stamp` if the caller already has it.
    Returns ``(matrix, from_cache)``.
    """
    d = _dir(dataset, field)
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
    m = _read_all(dataset, field, progress=progress)
    if use_cache and stamp(dataset) == st:  # nothing changed while reading
        _save(d, m, st)
    return m, False


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


def restamp_after_own_write(dataset, before):
    """After a plugin write that did not touch embeddings: keep caches valid.

    ``before`` is :func:`stamp` taken just before the write. Caches stamped
    ``before`` (nothing else changed since they were built) get the new stamp.
    """
    root = os.path.join(cache_root(), "embeddings", str(dataset._doc.id))
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
        meta["stamp"] = after
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(meta, f)
        os.replace(tmp, path)


def clear(dataset, field=None):
    """Deletes the dataset's caches (of one field, or all)."""
    d = _dir(dataset, field) if field else os.path.dirname(_dir(dataset, "x"))
    shutil.rmtree(d, ignore_errors=True)
