"""Warming the embedding cache while the user labels, so the first Train &
Label click reads the cache like a repeat click (the scale-out issue).

``start_session`` starts the warm-up in a thread of the process that runs it
(the App server, or a delegated worker): the same read a cold click does, then
the cache is saved. A train of the same field in that process waits for a
warm-up still running (never slower than reading itself: it is the same read,
started earlier). A train anywhere else validates and reads the cache as always;
a warm-up that fails leaves the first click to read MongoDB (and to report
what is wrong).
"""

import threading

import numpy as np

from .source import EmbeddingSource

_warming = {}
_lock = threading.Lock()


def _key(dataset, field):
    return dataset._sample_collection_name, field


def start(dataset, field):
    """Starts warming ``field`` (one warm-up per field at a time); returns the thread."""
    key = _key(dataset, field)
    with _lock:
        t = _warming.get(key)
        if t is not None and t.is_alive():
            return t
        t = threading.Thread(target=_warm, args=(dataset, field), name="fewshot-warm", daemon=True)
        _warming[key] = t
        t.start()
    return t


def _warm(dataset, field):
    try:
        src = EmbeddingSource(dataset, field)
        src.matrix()
        if not src.from_cache or src.num_reread:
            src.commit(np.zeros(0, np.int64), np.zeros(0, np.int64))
    except Exception:  # noqa: BLE001 (the first click reads MongoDB and reports it)
        pass


def wait(dataset, field=None):
    """Waits for a warm-up of ``field`` (of any field: None) of ``dataset``
    started in this process, if any."""
    coll = dataset._sample_collection_name
    with _lock:
        threads = [t for (c, f), t in _warming.items() if c == coll and field in (None, f)]
    for t in threads:
        t.join()
