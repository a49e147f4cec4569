"""Reads from a dataset's sample collection: IDs, vectors with their
``last_modified_at``, and the dataset's change stamp."""

import queue
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import codec
from .codec import ID_DTYPE


def _coll(dataset):
    return dataset._sample_collection


def view_ids(view):
    """``S12`` IDs of a view's samples (~10x faster than ``values("id")``)."""
    coll = _coll(view._root_dataset)
    pipeline = view._pipeline()
    if pipeline:
        batches = coll.aggregate_raw_batches(pipeline + [{"$project": {"_id": 1}}], allowDiskUse=True)
    else:
        # a covered scan of the _id index: no sample document is fetched
        # (without the hint MongoDB reads every document: ~8 s vs ~1 s at 1M)
        batches = coll.find_raw_batches({}, {"_id": 1}, batch_size=100_000, hint="_id_")
    parts = [codec.split_id_batch(b) for b in batches]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=ID_DTYPE)


def ids_matching(dataset, query):
    """``S12`` IDs of the samples matching a MongoDB ``query``."""
    batches = _coll(dataset).find_raw_batches(query, {"_id": 1}, batch_size=100_000)
    parts = [codec.split_id_batch(b) for b in batches]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=ID_DTYPE)


def count(dataset, query):
    return _coll(dataset).count_documents(query)


# the stamp: count and two sums over every sample's last_modified_at, read from
# its index alone (a covered scan: ~0.08 s per 100k samples). Any sample added,
# deleted or edited through FiftyOne changes it (FiftyOne sets last_modified_at
# on every write); two independent sums make cancelling changes implausible.
P1, P2 = 2147483647, 65521
_STAMP = [
    {"$sort": {"last_modified_at": 1}},
    {"$project": {"_id": 0, "last_modified_at": 1}},
    {"$group": {
        "_id": None,
        "n": {"$sum": 1},
        "s1": {"$sum": {"$mod": [{"$toLong": "$last_modified_at"}, P1]}},
        "s2": {"$sum": {"$pow": [{"$mod": [{"$toLong": "$last_modified_at"}, P2]}, 2]}},
    }},
]


def stamp(dataset):
    """``[count, s1, s2]`` of the dataset's samples (see :func:`stamp_of`)."""
    doc = next(iter(_coll(dataset).aggregate(_STAMP)), None)
    if doc is None:
        return [0, 0, 0]
    return [int(doc["n"]), int(doc["s1"]), int(doc["s2"])]


def stamp_of(lma):
    """The stamp of samples whose ``last_modified_at`` values are ``lma`` (ms)."""
    v = np.asarray(lma, dtype=np.int64)
    v = v[v != codec.NO_LMA]
    return [int(len(lma)), int((v % P1).sum()), int(((v % P2) ** 2).sum())]


def _vector_pipeline(field, match=None):
    # computed names fix the layout {_id, a, b} whatever the documents' field order
    proj = {"$project": {"_id": 1, "a": "$last_modified_at", "b": "$" + field}}
    return ([{"$match": match}] if match else []) + [proj]


def _prefetched(batches):
    """Iterates ``batches`` with a thread fetching the next while one is used."""
    q = queue.Queue(maxsize=4)
    errors = []
    stop = threading.Event()

    def put(item):
        while not stop.is_set():
            try:
                q.put(item, timeout=0.2)
                return True
            except queue.Full:
                pass
        return False

    def fetch():
        try:
            for b in batches:
                if not put(b):
                    return
        except Exception as e:  # re-raised by the consumer
            errors.append(e)
        finally:
            put(None)

    t = threading.Thread(target=fetch, daemon=True)
    t.start()
    try:
        while True:
            b = q.get()
            if b is None:
                break
            yield b
    finally:
        stop.set()
        t.join()
    if errors:
        raise errors[0]


def _decode(batch, dec, pool, dim):
    """``(ids, lma, X, present, dim)`` of one raw batch; inflates in 2 threads."""
    ids, lma, values = codec.split_batch(batch)
    half = len(values) // 2
    try:
        parts = pool.map(lambda b: [codec.inflate(x) for x in b], (values[:half], values[half:]))
        raws = [r for part in parts for r in part]
        X, present, dim = codec.decode_vectors(raws, dec, dim)
    except codec.VectorError:
        raise
    except Exception as e:  # strings, dicts, raw bytes...: not FiftyOne vectors
        raise codec.VectorError(
            "The field holds values that are not vectors (%s: %s); fix or recompute them"
            % (type(e).__name__, str(e)[:120])) from None
    if dim == 0:
        raise codec.VectorError("The field holds empty vectors; fix or recompute them")
    return ids, lma, X, present, dim


def scan_vectors(dataset, field, progress=None):
    """Every sample's ``(ids, lma, X, valid, present)`` (X normalized), in
    MongoDB's order. Raises :class:`codec.DimensionError` on mixed dimensions."""
    n = _coll(dataset).estimated_document_count()
    # 1,000 documents (~2 MB) a batch: larger ones cost more CPU to receive
    # (measured: ~0.35 vs ~0.6 s per 100k 512-d vectors with 5,000)
    raw = _coll(dataset).aggregate_raw_batches(_vector_pipeline(field), batchSize=1000)
    return _collect(_prefetched(raw), n, progress)


def read_vectors(dataset, field, ids, dim=None):
    """``(ids, lma, X, valid, present)`` of the given samples (deleted ones left
    out); raises :class:`codec.DimensionError` for a vector that is not ``dim``-d."""
    out = []
    for s in range(0, len(ids), 50_000):
        match = {"_id": {"$in": codec.object_ids(ids[s : s + 50_000])}}
        out.append(_coll(dataset).aggregate_raw_batches(_vector_pipeline(field, match), batchSize=1000))
    return _collect((b for batches in out for b in batches), len(ids), None, dim)


def _collect(batches, n_hint, progress, dim=None):
    """``(ids, lma, X, valid, present)`` of raw batches, X L2-normalized, in
    one preallocated matrix (peak memory ~1x the matrix)."""
    dec = codec.NpyDecoder()
    cap = max(int(n_hint), 1)
    ids = np.empty(cap, ID_DTYPE)
    lma = np.empty(cap, np.int64)
    present = np.zeros(cap, bool)
    X = None
    k = 0
    with ThreadPoolExecutor(2) as pool:
        for batch in batches:
            bid, blma, bX, bpresent, dim = _decode(batch, dec, pool, dim)
            m = len(bid)
            if k + m > cap:  # more samples than counted: grow
                cap = max(2 * cap, k + m)
                ids, lma, present = (np.resize(a, cap) for a in (ids, lma, present))
                if X is not None:
                    X = np.concatenate([X, np.zeros((cap - len(X), X.shape[1]), np.float32)])
            if X is None and dim is not None:
                X = np.zeros((cap, dim), np.float32)
            ids[k : k + m], lma[k : k + m], present[k : k + m] = bid, blma, bpresent
            if X is not None and bX.shape[1]:
                X[k : k + m] = bX
            k += m
            if progress is not None:
                progress(min(k / max(n_hint, 1), 1.0), "Read %d/%d embeddings" % (k, n_hint))
    if X is None:
        X = np.zeros((k, 0), np.float32)
    X, ids, lma, present = X[:k], ids[:k], lma[:k], present[:k]
    valid = codec.normalize_rows(X, present)
    return ids, lma, X, valid, present


def scan_lma(dataset, match=None):
    """``(ids, lma)`` of every sample (or those matching ``match``)."""
    pipe = ([{"$match": match}] if match else []) + [{"$project": {"_id": 1, "a": "$last_modified_at"}}]
    parts = [codec.split_id_lma_batch(b) for b in _coll(dataset).aggregate_raw_batches(pipe, batchSize=100_000)]
    if not parts:
        return np.zeros(0, ID_DTYPE), np.zeros(0, np.int64)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def changed_after(dataset, ms):
    """``(ids, lma)`` of samples modified after ``ms`` (a range of the index)."""
    from bson.datetime_ms import DatetimeMS

    return scan_lma(dataset, {"last_modified_at": {"$gt": DatetimeMS(int(ms))}})


def label_flags(dataset, ids, pos_field, neg_field):
    """``(ids, is_pos, is_neg)`` of the given samples, each document read once
    (both fields from one read)."""
    out_ids, out_p, out_n = [], [], []
    for s in range(0, len(ids), 50_000):
        q = {"_id": {"$in": codec.object_ids(ids[s : s + 50_000])}}
        for d in _coll(dataset).find(q, {"_id": 1, pos_field: 1, neg_field: 1}):
            out_ids.append(d["_id"].binary)
            out_p.append(d.get(pos_field) is True)
            out_n.append(d.get(neg_field) is True)
    return np.array(out_ids, dtype=ID_DTYPE), np.array(out_p, bool), np.array(out_n, bool)


def stored_fields(dataset, names):
    """``{name: {"ftype", "embedded_doc_type", "info", "fields"}}`` of the top-level
    sample fields ``names`` as the database stores them (absent: not there).

    Read from the dataset's document, not the in-memory dataset: that object is
    shared by the App's operator threads, and reloading it to see a change
    made elsewhere races their schema edits (a field added by a start or train
    in another thread was lost from memory between two of its steps: 3 of 25
    trains re-declaring their prediction field failed while labels were given)."""
    doc = _coll(dataset).database["datasets"].find_one({"_id": dataset._doc.id}, {"sample_fields": 1}) or {}
    want = set(names)
    return {f["name"]: {"ftype": f.get("ftype"), "embedded_doc_type": f.get("embedded_doc_type"),
                        "info": f.get("info") or {}, "fields": [g.get("name") for g in f.get("fields") or []]}
            for f in doc.get("sample_fields") or [] if f.get("name") in want}


def stored_app_config(dataset):
    """The dataset's App config as the database stores it (a dict; see
    :func:`stored_fields` for why not the in-memory dataset)."""
    doc = _coll(dataset).database["datasets"].find_one({"_id": dataset._doc.id}, {"app_config": 1}) or {}
    return doc.get("app_config") or {}


def database_id():
    """The ID of the database's config document: one per FiftyOne database
    (two databases can share one cache folder; neither may sweep the other's)."""
    import fiftyone.core.odm as foo

    doc = foo.get_db_conn().config.find_one({}, {"_id": 1}, sort=[("_id", 1)])
    return str(doc["_id"]) if doc else None


def dataset_ids():
    """The IDs (str) of every dataset in the database."""
    import fiftyone.core.odm as foo

    return [str(d["_id"]) for d in foo.get_db_conn().datasets.find({}, {"_id": 1})]
