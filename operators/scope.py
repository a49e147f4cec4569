"""The inference set of a click: the current view, or its working subset,
plus every labeled sample. IDs are ``S12`` arrays throughout."""

import hashlib
import json
import time

import numpy as np

from .. import fastdb
from .state import SUBSET  # noqa: F401 (re-exported)


def view_key(view):
    """Identifies a view by what it selects (its MongoDB pipeline), for the
    subset cache: not by its stages, which carry a fresh UUID each time a view
    is built (every Python call; the App sends views back with new ones), nor
    the dataset's name (renaming it kept the same samples). The store is the
    dataset's own."""
    return _fingerprint(view)


def working_subset(state, view, size, labeled, redraw=False, seed=None):
    """``(fill, redrawn)``: the subset's random unlabeled fill, drawn once per view.

    Reused while the view (its stages) and the size are unchanged, unless
    ``redraw``. ``size`` are drawn (not size - labeled): labels come and go,
    and the fill's prefix still tops the subset up to ``size`` (see :func:`scope_ids`).
    """
    key = view_key(view)
    meta = state.get_meta(SUBSET)
    if not redraw and meta.get("view_key") == key and meta.get("size") == size:
        ids = state.get_ids(SUBSET)
        if len(ids) == meta.get("count"):
            return fastdb.to_bytes(ids), False
    unlabeled = fastdb.view_ids(view)
    unlabeled = unlabeled[~np.isin(unlabeled, labeled)]
    rng = np.random.default_rng(seed)
    fill = unlabeled[rng.permutation(len(unlabeled))[:size]]
    state.set_ids(SUBSET, fastdb.to_str(fill), view_key=key, size=size)
    return fill, True


def scope_ids(state, view, cfg, labeled, redraw=False):
    """``(ids, subset_redrawn)``: the sorted, unique inference set."""
    size = int(cfg.get("subset_size") or 0)
    if size > 0:
        fill, redrawn = working_subset(
            state, view, size, labeled, redraw=redraw or bool(cfg.get("randomize_subset"))
        )
        fill = fill[~np.isin(fill, labeled)][: max(0, size - len(labeled))]
        ids = np.concatenate([fill, labeled])
    else:
        redrawn = False
        ids = np.concatenate([fastdb.view_ids(view), labeled])
    return np.unique(ids), redrawn


# -- views the plugin set in the App ---------------------------------------------

DERIVED_KEY = "derived_view"


def _fingerprint(view):
    # the MongoDB pipeline, not the stages: the App sends a view back with other
    # stage UUIDs and re-encoded arguments (seen: a histogram-bar view derived from
    # the predictions view was not recognized by its stages)
    return hashlib.sha1(json.dumps(view._pipeline(), sort_keys=True, default=str).encode()).hexdigest()


MAX_DERIVED = 8  # plugin-set views remembered per dataset (several tabs each show one)
DERIVED_PREFIX = DERIVED_KEY + "/"
MAX_BASE_BYTES = 4 << 20  # a base view bigger than this (a huge ID selection) is not remembered


def remember_derived(state, kind, view, base, note=None):
    """Records that the plugin set ``view`` (``kind``: "suggestions",
    "predictions", ...) in the App, derived from ``base`` (``note``: what the
    panel says about it while the App shows it). One store key per view, the
    last ``MAX_DERIVED`` kept: a second tab setting its own view must not make
    the first tab's Train score the suggestions themselves instead of the view
    behind them (and one document holding them all passed MongoDB's 16 MB with
    large base views). Returns whether it was recorded."""
    base, _ = resolve_base(state, base)  # derived from a derived view: keep the first base
    stages = base._serialize()
    if len(json.dumps(stages, default=str)) > MAX_BASE_BYTES:
        return False  # Train then scores the view shown, and says so in its scope
    store, fp = state.store, _fingerprint(view)
    store.set(DERIVED_PREFIX + fp, {"kind": kind, "view": fp, "base": stages, "note": note, "at": time.time()})
    keys = [k for k in store.list_keys() if k.startswith(DERIVED_PREFIX)]
    if len(keys) > MAX_DERIVED:
        at = {k: (store.get(k) or {}).get("at", 0) for k in keys}
        for k in sorted(keys, key=at.get)[: len(keys) - MAX_DERIVED]:
            store.delete(k)
    return True


def derived_record(state, view):
    """The record of the plugin-set view the App shows, or None."""
    if not view._pipeline():
        return None
    fp = _fingerprint(view)
    rec = state.store.get(DERIVED_PREFIX + fp)
    if rec is None:  # (a session recorded before: one record under DERIVED_KEY)
        old = state.store.get(DERIVED_KEY) or {}
        rec = old if old.get("view") == fp else None
    return rec


def resolve_base(state, view):
    """``(view, kind)``: the view a plugin-set ``view`` was derived from and what
    it was, else ``(view, None)``."""
    rec = derived_record(state, view)
    if rec:
        from fiftyone.core.view import DatasetView  # rebuilds a view from its stages

        return DatasetView._build(view._root_dataset, rec["base"]), rec["kind"]
    return view, None


def view_to_score(state, view, params):
    """``(view, derived kind)``: with the ``base_view`` param (the panel), a view
    the plugin set is replaced by the view it came from; else ``view`` as given."""
    if (params or {}).get("base_view"):
        return resolve_base(state, view)
    return view, None


def describe(dataset, view, cfg, derived=None):
    """What Train scores, in words and counts."""
    n = len(view)
    size = int(cfg.get("subset_size") or 0)
    if size > 0:
        kind, count = "working subset", min(size, n)
        text = "working subset - %s of %s" % (format(count, ","), format(n, ","))
    else:
        whole = not view._pipeline() or n == len(dataset)
        kind, count = ("whole dataset" if whole else "current view"), n
        text = "%s - %s" % (kind, format(n, ","))
    if derived:
        text += " (the view behind the %s in the grid)" % derived
    return {"kind": kind, "count": count, "view_count": n, "text": text, "derived_from": derived}
