"""Where a click's vectors come from: the cache when it is current, MongoDB otherwise.

Every row of a :class:`~.cache.Matrix` pairs a vector with the
``last_modified_at`` it was read with (one document read: atomic). A row is
current while the sample's ``last_modified_at`` is unchanged. At each click:

1. the collection's stamp (count + two sums over ``last_modified_at``, from its
   index) equals the stamp of the cached rows -> every row is current;
2. else the samples modified after the newest cached time are re-read (label
   clicks, a few edits); if the stamps now agree, done;
3. else every sample's ``last_modified_at`` is compared with its row and the
   rows that differ are re-read; samples added or deleted, or over a quarter of
   the rows changed -> all vectors are read again (cold).

The plugin's own prediction writes only match samples whose
``last_modified_at`` is still the one their vector was read with, so after a
click the written rows are known to hold (new time, same vector): :meth:`commit`
records that and the next click starts at step 1.
"""

import numpy as np

from .. import fastdb
from . import cache, orphans
from .fields import EmbeddingError

REREAD_LIMIT = 0.25  # re-read rows one by one up to this share of the dataset


class EmbeddingSource(object):
    """The vectors of ``field`` for one click."""

    def __init__(self, dataset, field, progress=None):
        self.dataset, self.field, self.progress = dataset, field, progress
        self.m = None
        self.from_cache = False
        self.num_reread = 0  # rows re-read into a cached matrix

    def matrix(self):
        """The current :class:`~.cache.Matrix` of every sample."""
        if self.m is None:
            try:
                m = cache.load(self.dataset, self.field)
            except (OSError, RuntimeError):  # an unusable cache folder: read from MongoDB
                m = None
            if m is not None:
                m = self._refresh(m)
            self.from_cache = m is not None
            self.m = m if m is not None else self._cold()
        return self.m

    def _cold(self):
        try:
            ids, lma, X, valid, present = fastdb.scan_vectors(self.dataset, self.field, self.progress)
        except fastdb.VectorError as e:
            raise EmbeddingError("Field '%s': %s" % (self.field, e))
        order = np.argsort(ids, kind="stable")
        if np.any(order[1:] < order[:-1]):
            ids, lma, X, valid, present = ids[order], lma[order], X[order], valid[order], present[order]
        dims = X.shape[1] or None
        return cache.Matrix(ids, X, valid, present, lma, dims)

    def _refresh(self, m):
        """Brings cached rows up to date (steps 1-3); None if a cold read is due."""
        st = fastdb.stamp(self.dataset)
        if st == m.stamp:
            return m
        have = m.lma[m.lma != fastdb.NO_LMA]
        ids, lma = fastdb.changed_after(self.dataset, have.max() if len(have) else -1)
        if not self._reread(m, ids, lma):
            return None
        if fastdb.stamp_of(m.lma) == st:
            return m
        ids, lma = fastdb.scan_lma(self.dataset)
        if len(ids) != len(m.ids):
            return None
        order = np.argsort(ids, kind="stable")
        ids, lma = ids[order], lma[order]
        if not np.array_equal(ids, m.ids):
            return None  # samples added and deleted
        changed = np.flatnonzero(lma != m.lma)
        return m if self._reread(m, ids[changed], lma[changed]) else None

    def _reread(self, m, ids, lma):
        if not len(ids):
            return True
        rows = m.rows(ids)
        if (rows < 0).any() or len(ids) > REREAD_LIMIT * max(len(m.ids), 1):
            return False
        return self._read_rows(m, ids)

    def refresh(self, ids):
        """Re-reads the given samples' vectors into the matrix (after the
        plugin computed embeddings, or edits found during a click). Returns
        False if a sample is not in the matrix."""
        return self._read_rows(self.matrix(), ids)

    def _read_rows(self, m, ids):
        try:
            got, lma, X, valid, present = fastdb.read_vectors(self.dataset, self.field, ids, m.dim)
        except fastdb.VectorError as e:
            raise EmbeddingError("Field '%s': %s" % (self.field, e))
        rows = m.rows(got)
        if (rows < 0).any():
            return False
        if not X.shape[1]:
            X = np.zeros((len(got), m.dim or 0), np.float32)
        m.set_rows(rows, X, valid, present, lma)
        self.num_reread += len(rows)
        return True

    def commit(self, rows, lma):
        """Records the click's verified writes (``rows`` now at ``lma``, their
        vectors unchanged) and saves the cache: a new base after a cold read,
        else a small overlay."""
        m = self.m
        m.lma[rows] = lma
        st = fastdb.stamp_of(m.lma)
        try:
            orphans.mark(self.dataset)
            if m.base is None:
                cache.save_in_background(self.dataset, self.field, m, st)
            else:
                big = len(m.patch_rows) > max(1000, 0.05 * len(m.ids))
                cache.save(self.dataset, self.field, m, st, full=big)
        except (OSError, RuntimeError):  # an unusable cache folder: the next click reads MongoDB
            pass
