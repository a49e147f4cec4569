"""Few-shot session state, per dataset, in FiftyOne's execution store.

The state lives in the dataset-scoped execution store (what
``ctx.store(STORE_NAME)`` returns), so the panel, the command palette and Python
scripts see one session across App reloads and Python restarts. Labels are not
here: they live on the samples (see :mod:`.labels`).

- ``config`` (settings, iteration, history, the last run) is changed only
  with compare-and-set (:meth:`SessionState.update`), so two writers never lose
  each other's changes.
- The lease (:class:`Lease`) lets one start/train/reset run at a time.
- What ``suggest_samples`` suggested is kept as batches, one per call
  (:meth:`SessionState.add_suggested`, compare-and-set, at most
  ``MAX_SUGGESTED`` IDs): labels on them were picked from the scores, which
  the calibration uses (:func:`.labels.suggested_masks`).
- The working subset's IDs are stored in chunks of ``CHUNK_SIZE`` (a 1M-ID
  list would exceed MongoDB's 16 MB document limit), written under a fresh
  token before the meta points at them.
"""

import copy
import datetime
import os
import socket
import threading
import time
import uuid

from .errors import FewShotError

STORE_NAME = "fewshot_session"
SESSION_KEY = "session"
RESET_KEY = "reset"  # a reset under way (session.finish_killed_reset)
LEASE_KEY = "lease"
CHUNK_SIZE = 50_000  # ~1.3 MB of JSON per chunk
SUBSET = "subset"
MAX_HISTORY = 100
SUGGESTED_KEY = "suggested"
MAX_SUGGESTED = 20_000  # suggested IDs kept, oldest batches dropped first (~0.6 MB)
LEASE_SECONDS = 60  # a lease not renewed for this long is free (renewed every 10 s)
# a new value at each label call (any tab, the palette, Python): an open panel redraws its
# grid when it changed, so labels given elsewhere show on the tiles (panels/memo.py)
LABELS_CHANGED_KEY = "labels_changed"


def get_store(dataset):
    """The dataset's few-shot execution store (what ``ctx.store`` returns)."""
    from fiftyone.operators.store import ExecutionStore

    return ExecutionStore.create(STORE_NAME, dataset._doc.id)


class SessionState(object):
    """Read/write access to one dataset's session."""

    def __init__(self, dataset, store=None):
        self.dataset = dataset
        self.store = store if store is not None else get_store(dataset)

    def labels_changed(self):
        """Records that labels changed (their fields are the record: this only
        tells open panels to redraw)."""
        self.store.set(LABELS_CHANGED_KEY, uuid.uuid4().hex)

    def labels_token(self):
        """The value :meth:`labels_changed` set last ("" before any)."""
        return self.store.get(LABELS_CHANGED_KEY) or ""

    @property
    def config(self):
        """The session config as stored now (None if there is no session)."""
        return self.store.get(SESSION_KEY)

    @property
    def active(self):
        return self.config is not None

    def update(self, fn, create=False):
        """Applies ``fn(config) -> new config`` atomically (compare-and-set,
        retried); ``fn`` may raise to abort. Returns the new config."""
        return self._change(SESSION_KEY, fn, lambda: self.config if create else require_session(self))

    def _change(self, key, fn, read):
        """``fn(value read by read()) -> new value`` stored under ``key`` with
        compare-and-set (set-if-absent when there is none), retried."""
        for _ in range(100):
            cur = read()
            new = fn(copy.deepcopy(cur))
            ok = (self.store.set_if_absent(key, new) if cur is None
                  else self.store.compare_and_set(key, cur, new))
            if ok:
                return new
            time.sleep(0.005)
        raise FewShotError("The session is being changed by many callers at once; try again")

    # -- suggestions -----------------------------------------------------------

    def add_suggested(self, ids):
        """Records one suggestion call's IDs as a batch (compare-and-set, so
        concurrent calls keep each other's batches)."""
        batch = [str(i) for i in ids][:MAX_SUGGESTED]

        def add(cur):
            batches = list((cur or {}).get("batches", [])) + [batch]
            while sum(len(b) for b in batches) > MAX_SUGGESTED:
                batches.pop(0)
            return {"batches": batches}

        self._change(SUGGESTED_KEY, add, lambda: self.store.get(SUGGESTED_KEY))

    def suggested_batches(self):
        """The recorded suggestion batches, oldest first (lists of ID strings)."""
        return (self.store.get(SUGGESTED_KEY) or {}).get("batches", [])

    # -- chunked ID lists ----------------------------------------------------

    def get_meta(self, name):
        return self.store.get("ids/%s/meta" % name) or {}

    def get_ids(self, name):
        """The stored list under ``name`` ([] if none or unreadable)."""
        for _ in range(5):
            meta = self.get_meta(name)
            chunks = [self.store.get("ids/%s/%s/%d" % (name, meta.get("token"), i))
                      for i in range(meta.get("chunks", 0))]
            if all(c is not None for c in chunks):
                return [i for c in chunks for i in c]
            # replaced while reading: read the new version
        return []

    def set_ids(self, name, ids, **extra_meta):
        """Replaces the list under ``name``; ``extra_meta`` is kept in its meta."""
        ids = list(ids)
        old = self.get_meta(name)
        token = uuid.uuid4().hex[:12]
        chunks = [ids[i : i + CHUNK_SIZE] for i in range(0, len(ids), CHUNK_SIZE)]
        for i, chunk in enumerate(chunks):
            self.store.set("ids/%s/%s/%d" % (name, token, i), chunk)
        self.store.set("ids/%s/meta" % name, dict(extra_meta, chunks=len(chunks), count=len(ids), token=token))
        for i in range(old.get("chunks", 0)):
            self.store.delete("ids/%s/%s/%d" % (name, old["token"], i))

    def clear(self):
        """Deletes everything this session stored (the session key first)."""
        self.store.delete(SESSION_KEY)
        self.store.clear()


def require_session(state):
    """The session config; raises if there is no session."""
    cfg = state.config
    if cfg is None:
        raise FewShotError(
            "No few-shot session on dataset '%s'; start one first (start_session)" % state.dataset.name
        )
    return cfg


# -- the lease: one start/train/reset at a time ------------------------------------


def _proc_start(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


_HOST = socket.gethostname()


def _owner():
    return {"host": _HOST, "pid": os.getpid(), "start": _proc_start(os.getpid())}


def _owner_dead(owner):
    """Whether the owner process is known to be gone (same host only)."""
    if not owner or owner.get("host") != _HOST:
        return False
    pid = int(owner.get("pid", -1))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return owner.get("start") is not None and _proc_start(pid) != owner.get("start")


def lease_is_free(value, now=None):
    now = time.time() if now is None else now
    return (not value or value.get("released") or value.get("expires", 0) < now
            or _owner_dead(value.get("owner")))


def _when(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%H:%M:%S UTC")


def _busy_message(cur):
    return ("A %s is running since %s on this dataset; wait for it to finish"
            % (str(cur.get("operation", "train")).replace("_", " "), _when(cur.get("since", time.time()))))


def running_operation(state):
    """What a form says while another start/train/reset holds the lease, or None."""
    cur = state.store.get(LEASE_KEY)
    return None if lease_is_free(cur) else _busy_message(cur)


class Lease(object):
    """Holds the session's lease while ``operation`` runs; renews it every 10 s.

    A second caller gets "<operation> is running since ..."; a lease whose owner
    died (same host) or that was not renewed for ``LEASE_SECONDS`` is taken over.
    """

    RENEW_EVERY = 10  # seconds

    def __init__(self, state, operation):
        self.state, self.operation = state, operation
        self.value = None
        self.lost = False
        self._stop = threading.Event()
        self._thread = None

    def __enter__(self):
        store = self.state.store
        mine = {"token": uuid.uuid4().hex, "operation": self.operation, "owner": _owner(),
                "since": time.time(), "expires": time.time() + LEASE_SECONDS}
        if not store.set_if_absent(LEASE_KEY, mine):
            cur = store.get(LEASE_KEY)
            if not lease_is_free(cur) or not store.compare_and_set(LEASE_KEY, cur, mine):
                raise FewShotError(_busy_message(store.get(LEASE_KEY) or {}))
        self.value = mine
        self._thread = threading.Thread(target=self._renew, daemon=True, name="fewshot-lease")
        self._thread.start()
        return self

    def _renew(self):
        while not self._stop.wait(self.RENEW_EVERY):
            try:
                new = dict(self.value, expires=time.time() + LEASE_SECONDS)
                if self.state.store.compare_and_set(LEASE_KEY, self.value, new):
                    self.value = new
                elif (self.state.store.get(LEASE_KEY) or {}).get("token") != self.token:
                    self.lost = True  # taken over (we were stalled for LEASE_SECONDS)
                    return
            except Exception:  # a failed renewal is retried at the next tick
                pass

    def check(self):
        """Raises if the lease is no longer ours (fencing: call before writing)."""
        if not self.lost:
            cur = self.state.store.get(LEASE_KEY) or {}
            self.lost = cur.get("token") != self.token
        if self.lost:
            raise FewShotError(
                "This %s stalled for over %d s and another took over; it stopped without "
                "recording anything" % (self.operation.replace("_", " "), LEASE_SECONDS)
            )

    @property
    def token(self):
        return self.value["token"]

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.state.store.compare_and_set(LEASE_KEY, self.value, {"released": True})
        return False
