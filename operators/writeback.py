"""Writing predictions and label flags back to the dataset, fast.

``set_values`` costs ~15 s per 100k Classification predictions; raw unordered
``update`` commands on ``_id`` (built in one thread while another waits on the
server) cost ~2 s. We go below FiftyOne's public API here for that reason, and
keep the dataset right by hand: the fields
are declared in the schema beforehand (start_session declares the prediction
field and its ``p_positive`` attribute), every document gets the same shape
FiftyOne writes for a ``Classification``, and ``last_modified_at`` is set on every
updated sample as FiftyOne does.
"""

import os
import queue
import threading
import time
from datetime import datetime, timezone

import numpy as np
from bson import ObjectId, encode
from bson.raw_bson import RawBSONDocument
from bson.son import SON

BATCH = 10_000
# concurrent update commands: MongoDB applies each command on one thread, so a
# second connection lets the server use the second core (measured at 100k
# changed predictions on 2 cores: 9.8 s with one sender, 4.3-4.7 s with two,
# 4.6 s with three, 5.0 s with four)
SENDERS = 2
ID_DTYPE = np.dtype("S12")


def _now():
    # FiftyOne stores naive UTC datetimes
    return datetime.now(timezone.utc).replace(tzinfo=None)


class PredictionWriter(object):
    """Streams prediction writes: ``write()`` encodes a batch in the caller's
    thread and queues it; a writer thread sends it to MongoDB (the server
    applies one batch while Python builds the next; ``SENDERS`` threads send
    concurrently). Use as a context manager; errors from the server are raised
    from ``write()`` or on exit."""

    def __init__(self, dataset, field, p_attr="p_positive"):
        self.coll = dataset._sample_collection
        self.field, self.p_attr = field, p_attr
        self.now = _now()
        self._todo = queue.Queue(maxsize=2 * SENDERS)
        self._errors = []
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(SENDERS)]
        for t in self._threads:
            t.start()

    def _run(self):
        while True:
            records = self._todo.get()
            if records is None:
                return
            if self._errors:
                continue
            try:
                # wrapped here, not in write(): this thread mostly waits on the server
                updates = [RawBSONDocument(r) for r in records]
                # the raw "update" command: no per-op wrapper objects to build
                reply = self.coll.database.command(
                    "update", self.coll.name, updates=updates, ordered=False
                )
                if reply.get("writeErrors"):
                    raise RuntimeError("Writing predictions failed: %s" % reply["writeErrors"][0])
            except Exception as e:  # re-raised in the caller's thread
                self._errors.append(e)

    def write(self, ids, p_positive, labeled=None):
        if self._errors:
            raise self._errors[0]
        p = np.asarray(p_positive, dtype=np.float64)
        if not len(p):
            return
        if labeled is None:
            labeled = np.zeros(len(p), dtype=np.int8)
        is_pos = np.where(labeled != 0, labeled > 0, p >= 0.5)
        conf = np.where(labeled != 0, 1.0, np.where(is_pos, p, 1.0 - p))
        pp = np.where(labeled > 0, 1.0, np.where(labeled < 0, 0.0, p))
        records = _encode_updates(self.field, self.p_attr, ids, is_pos, conf, pp, self.now)
        for s in range(0, len(records), BATCH):
            self._todo.put(records[s : s + BATCH])

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


_Q_ID = ObjectId(b"\x11" * 12)
_L_ID = ObjectId(b"\x22" * 12)
_CONF = 1.2345678901234567e-300
_PP = 7.654321098765432e-301
_LABEL = "\x01\x02\x03\x04\x05\x06\x07\x08"  # 8 chars, like "positive"/"negative"


def _template(field, p_attr, now):
    """One update statement as BSON, and the offsets of its variable parts.

    "positive" and "negative" have the same length, so every statement has the
    same layout: it is built once and patched per sample with numpy.
    """
    doc = SON(
        [
            ("q", SON([("_id", _Q_ID)])),
            (
                "u",
                SON(
                    [
                        (
                            "$set",
                            SON(
                                [
                                    (
                                        field,
                                        SON(
                                            [
                                                ("_id", _L_ID),
                                                ("_cls", "Classification"),
                                                ("tags", []),
                                                ("label", _LABEL),
                                                ("confidence", _CONF),
                                                (p_attr, _PP),
                                            ]
                                        ),
                                    ),
                                    ("last_modified_at", now),
                                ]
                            ),
                        )
                    ]
                ),
            ),
        ]
    )
    raw = encode(doc)
    offsets = {}
    for name, needle in (
        ("q", _Q_ID.binary),
        ("lid", _L_ID.binary),
        ("label", _LABEL.encode()),
        ("conf", np.float64(_CONF).tobytes()),
        ("pp", np.float64(_PP).tobytes()),
    ):
        i = raw.find(needle)
        assert i >= 0 and raw.find(needle, i + 1) < 0, name
        offsets[name] = i
    return raw, offsets


def _new_label_ids(n):
    """``n`` fresh ObjectId byte strings (time, per-call random, counter)."""
    out = np.empty((n, 12), dtype=np.uint8)
    ts = np.frombuffer(int(time.time()).to_bytes(4, "big"), dtype=np.uint8)
    for s in range(0, n, 1 << 24):  # the 3-byte counter restarts: new random part
        k = min(1 << 24, n - s)
        out[s : s + k, 0:4] = ts
        out[s : s + k, 4:9] = np.frombuffer(os.urandom(5), dtype=np.uint8)
        c = np.arange(k, dtype=">u4").view(np.uint8).reshape(k, 4)[:, 1:]
        out[s : s + k, 9:12] = c
    return out


def _encode_updates(field, p_attr, ids, is_pos, conf, pp, now):
    """The BSON of every sample's update statement (a list of bytes)."""
    raw, off = _template(field, p_attr, now)
    n, L = len(ids), len(raw)
    rec = np.tile(np.frombuffer(raw, dtype=np.uint8), (n, 1))
    idb = np.frombuffer(np.ascontiguousarray(np.asarray(ids, dtype=ID_DTYPE)).tobytes(), dtype=np.uint8)
    rec[:, off["q"] : off["q"] + 12] = idb.reshape(n, 12)
    rec[:, off["lid"] : off["lid"] + 12] = _new_label_ids(n)
    is_pos = np.asarray(is_pos, bool)
    for mask, word in ((is_pos, b"positive"), (~is_pos, b"negative")):
        rec[mask, off["label"] : off["label"] + 8] = np.frombuffer(word, dtype=np.uint8)
    rec[:, off["conf"] : off["conf"] + 8] = np.asarray(conf, dtype="<f8").view(np.uint8).reshape(n, 8)
    rec[:, off["pp"] : off["pp"] + 8] = np.asarray(pp, dtype="<f8").view(np.uint8).reshape(n, 8)
    buf = rec.tobytes()
    return [buf[i * L : (i + 1) * L] for i in range(n)]
