"""The inference set of a click: the current view, or its working subset,
plus every labeled sample. IDs are ``S12`` arrays throughout."""

import hashlib
import json

import numpy as np

from .. import fastdb
from .state import SUBSET


def view_key(view):
    """Identifies a view by its stages (and dataset), for the subset cache."""
    stages = json.dumps(view._serialize(), sort_keys=True, default=str)
    return hashlib.sha1((view._root_dataset.name + stages).encode()).hexdigest()


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
