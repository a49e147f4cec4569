"""Few-shot session state, persisted per dataset in FiftyOne's execution store.

The state lives in the dataset-scoped execution store (the same store that
``ctx.store(STORE_NAME)`` returns), so the panel, the command palette and Python
scripts all see one session, across App reloads and Python restarts.

Sample-ID lists (labels, the working subset) are stored in chunks of
``CHUNK_SIZE`` IDs, one key each, so no stored value approaches MongoDB's 16 MB
document limit whatever the size of the dataset.
"""

import uuid

STORE_NAME = "fewshot_session"
SESSION_KEY = "session"
CHUNK_SIZE = 50_000  # ~1.3 MB of JSON per chunk

POSITIVE = "positive"
NEGATIVE = "negative"
SUBSET = "subset"

MAX_HISTORY = 100


def get_store(dataset):
    """The dataset's few-shot execution store (what ``ctx.store`` returns)."""
    from fiftyone.operators.store import ExecutionStore

    return ExecutionStore.create(STORE_NAME, dataset._doc.id)


class SessionState(object):
    """Read/write access to one dataset's session.

    ``config`` is a small JSON dict (settings, counters, history); ID lists are
    accessed with :meth:`get_ids` / :meth:`set_ids`.
    """

    def __init__(self, dataset, store=None):
        self.dataset = dataset
        self.store = store if store is not None else get_store(dataset)
        self._config = None
        self._ids = {}

    # -- config --------------------------------------------------------------

    @property
    def active(self):
        return self.config is not None

    @property
    def config(self):
        if self._config is None:
            self._config = self.store.get(SESSION_KEY)
        return self._config

    def save_config(self, config):
        self.store.set(SESSION_KEY, config)
        self._config = config

    # -- chunked ID lists ----------------------------------------------------

    def _meta_key(self, name):
        return "ids/%s/meta" % name

    def _chunk_key(self, name, token, i):
        return "ids/%s/%s/%d" % (name, token, i)

    def get_meta(self, name):
        return self.store.get(self._meta_key(name)) or {}

    def get_ids(self, name):
        """The stored list of IDs under ``name`` ([] if none)."""
        if name in self._ids:
            return list(self._ids[name])
        meta = self.get_meta(name)
        ids = []
        for i in range(meta.get("chunks", 0)):
            ids.extend(self.store.get(self._chunk_key(name, meta["token"], i)) or [])
        self._ids[name] = ids
        return list(ids)

    def set_ids(self, name, ids, **extra_meta):
        """Replaces the list under ``name``; ``extra_meta`` is kept in its meta.

        New chunks are written under a fresh token before the meta points at
        them, so a reader never sees a half-written list.
        """
        ids = list(ids)
        old = self.get_meta(name)
        token = uuid.uuid4().hex[:12]
        chunks = [ids[i : i + CHUNK_SIZE] for i in range(0, len(ids), CHUNK_SIZE)]
        for i, chunk in enumerate(chunks):
            self.store.set(self._chunk_key(name, token, i), chunk)
        meta = dict(extra_meta, chunks=len(chunks), count=len(ids), token=token)
        self.store.set(self._meta_key(name), meta)
        for i in range(old.get("chunks", 0)):
            self.store.delete(self._chunk_key(name, old["token"], i))
        self._ids[name] = ids

    def delete_ids(self, name):
        old = self.get_meta(name)
        for i in range(old.get("chunks", 0)):
            self.store.delete(self._chunk_key(name, old["token"], i))
        self.store.delete(self._meta_key(name))
        self._ids.pop(name, None)

    def clear(self):
        """Deletes everything this session stored.

        The session key goes first: a clear that is interrupted leaves no
        active session whose label lists are half gone.
        """
        self.store.delete(SESSION_KEY)
        self.store.clear()
        self._config = None
        self._ids = {}
