"""Writes to a dataset's sample collection: predictions and label flags.

``set_values`` costs ~15 s per 100k Classification predictions; raw unordered
``update`` commands on ``_id`` (built from a BSON template with numpy while
another thread waits on the server) cost ~3 s. Every statement also sets
``last_modified_at`` as FiftyOne does, and applies only while the sample's
``last_modified_at`` is still the one its vector was read with, so a write never
hides an edit made meanwhile (the caller re-reads and re-scores those samples).
"""

import queue
import threading

import numpy as np

from . import codec

BATCH = 10_000
# concurrent update commands: MongoDB applies each command on one thread, so a
# second connection lets the server use the second core (measured at 100k
# changed predictions on 2 cores: 9.8 s with one sender, 4.3-4.7 s with two,
# 4.6 s with three, 5.0 s with four)
SENDERS = 2


class WriteError(RuntimeError):
    """The database refused or failed a write."""


def check_reply(reply, what):
    """Raises on a write error or a write-concern error in a command's reply
    (``Database.command`` raises on neither)."""
    if reply.get("writeErrors"):
        raise WriteError("%s failed: %s" % (what, reply["writeErrors"][0].get("errmsg")))
    if reply.get("writeConcernError"):
        raise WriteError("%s was not acknowledged by the database: %s"
                         % (what, reply["writeConcernError"].get("errmsg")))


RETRY_FOR = 30.0  # seconds a write is retried while the server is unreachable (an election takes ~10 s)


def _send_with_retries(coll, updates):
    """One raw ``update`` command, retried with backoff while the connection
    fails (pymongo never retries a raw command). Safe: every statement is
    conditional on the sample's ``last_modified_at``, so a statement applied
    before the failure does not apply twice (its re-send matches nothing)."""
    import time

    from pymongo.errors import AutoReconnect, ConnectionFailure

    waited, delay = 0.0, 0.25
    while True:
        try:
            return coll.database.command("update", coll.name, updates=updates, ordered=False)
        except (AutoReconnect, ConnectionFailure) as e:
            if waited >= RETRY_FOR:
                raise WriteError(
                    "The database was unreachable for %d s while predictions were written (%s); "
                    "Train again" % (int(waited), str(e).splitlines()[0][:120])) from None
            time.sleep(delay)
            waited += delay
            delay = min(2 * delay, 4.0)


class PredictionWriter(object):
    """Streams conditional prediction writes (see the module doc).

    ``write()`` encodes in the caller's thread; ``SENDERS`` threads send.
    ``matched`` counts the statements that matched; errors are raised from
    ``write()`` or ``close()``.
    """

    def __init__(self, dataset, field, p_attr, run_id, iteration):
        self.coll = dataset._sample_collection
        self.field, self.p_attr = field, p_attr
        self.run_id, self.iteration = run_id, int(iteration)
        self.now = codec.now_ms()
        self.sent = self.matched = 0
        self._lock = threading.Lock()
        self._todo = queue.Queue(maxsize=2 * SENDERS)
        self._errors = []
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(SENDERS)]
        for t in self._threads:
            t.start()

    def _run(self):
        from bson.raw_bson import RawBSONDocument

        while True:
            records = self._todo.get()
            if records is None:
                return
            if self._errors:
                continue
            try:
                reply = _send_with_retries(self.coll, [RawBSONDocument(r) for r in records])
                check_reply(reply, "Writing predictions")
                with self._lock:  # applied (the condition held): modified
                    self.matched += int(reply.get("nModified", 0))
            except Exception as e:  # re-raised in the caller's thread
                self._errors.append(e)

    def write(self, ids, lma, p_positive, labeled):
        """Queues the predictions of ``ids`` (read at ``lma``): P(positive) for
        unlabeled samples (``labeled`` 0), the label itself (+1/-1) otherwise."""
        if self._errors:
            raise self._errors[0]
        p = np.asarray(p_positive, dtype=np.float64)
        if not len(p):
            return
        labeled = np.asarray(labeled)
        is_pos = np.where(labeled != 0, labeled > 0, p >= 0.5)
        conf = np.where(labeled != 0, 1.0, np.where(is_pos, p, 1.0 - p))
        pp = np.where(labeled > 0, 1.0, np.where(labeled < 0, 0.0, p))
        records = codec.encode_predictions(
            self.field, self.p_attr, ids, lma, is_pos, conf, pp, self.run_id, self.iteration, self.now
        )
        for s in range(0, len(records), BATCH):
            self._todo.put(records[s : s + BATCH])
        self.sent += len(records)

    def close(self):
        if self._threads:
            for _ in self._threads:
                self._todo.put(None)
            for t in self._threads:
                t.join()
            self._threads = []
        if self._errors:
            raise self._errors[0]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def not_written(dataset, field, ids, run_id):
    """IDs among ``ids`` whose prediction is not ``run_id``'s (existing samples)."""
    from . import reads

    out = []
    for s in range(0, len(ids), 50_000):
        out.append(reads.ids_matching(
            dataset, {"_id": {"$in": codec.object_ids(ids[s : s + 50_000])}, field + ".run_id": {"$ne": run_id}}
        ))
    return np.concatenate(out) if out else np.zeros(0, codec.ID_DTYPE)


def remove_predictions(dataset, field, ids, now):
    """Removes ``field`` from the given samples that have it; returns how many."""
    from bson.datetime_ms import DatetimeMS

    n = 0
    for s in range(0, len(ids), 50_000):
        r = dataset._sample_collection.update_many(
            {"_id": {"$in": codec.object_ids(ids[s : s + 50_000])}, field: {"$exists": True}},
            {"$unset": {field: ""}, "$set": {"last_modified_at": DatetimeMS(int(now))}},
        )
        n += r.modified_count
    return n


def remove_run_predictions(dataset, field, run_ids, now):
    """Removes ``field`` where it holds a prediction of one of ``run_ids``; returns how many."""
    from bson.datetime_ms import DatetimeMS

    return dataset._sample_collection.update_many(
        {field + ".run_id": {"$in": list(run_ids)}},
        {"$unset": {field: ""}, "$set": {"last_modified_at": DatetimeMS(int(now))}},
    ).modified_count


def set_label_flags(dataset, ids, values):
    """Sets the label fields of ``ids`` in one update per sample.

    ``values``: ``{field: True or None}``. One statement per document sets every
    label field and ``last_modified_at`` atomically, so a reader never sees a
    sample labeled both or neither in between: ``set_values`` writes one field
    per call, and ``view.set_field().save()`` ``$merge``s, which re-inserts a
    partial document for a sample deleted meanwhile (FiftyOne 1.22,
    ``dataset._save_view``). Returns ``(samples matched, the write's time)``.
    """
    from bson.datetime_ms import DatetimeMS

    now = codec.now_ms()
    upd = dict(values)
    upd["last_modified_at"] = DatetimeMS(now)
    n = 0
    for s in range(0, len(ids), 50_000):
        r = dataset._sample_collection.update_many({"_id": {"$in": codec.object_ids(ids[s : s + 50_000])}}, {"$set": upd})
        n += r.matched_count
    return n, now


def unset_fields(dataset, names, ids=None, written_at=None):
    """Removes fields ``names`` from the documents (of ``ids``, or all) that hold
    them; with ``written_at``, only from those unchanged since a write at that time."""
    from bson.datetime_ms import DatetimeMS

    q = {"$or": [{n: {"$exists": True}} for n in names]}
    if written_at is not None:
        q["last_modified_at"] = DatetimeMS(int(written_at))
    n = 0
    for s in range(0, len(ids) if ids is not None else 1, 50_000):
        if ids is not None:
            q["_id"] = {"$in": codec.object_ids(ids[s : s + 50_000])}
        n += dataset._sample_collection.update_many(q, {"$unset": {k: "" for k in names}}).modified_count
    return n
