"""Sweeps the caches of deleted datasets. Only ``reset_session`` cleared a
dataset's cache, so a deleted dataset (a non-persistent one: every notebook
session) left its vectors on disk for good: 0.5 GB per 100k x 1280.

Each dataset's cache folder names the database it belongs to (``db``, written
with its first version); a sweep removes only folders of this database whose
dataset is gone. Folders of another database, or written before the marker
existed, are left alone."""

import os
import shutil

from .. import fastdb
from . import cache

MARKER = "db"


def mark(dataset):
    """Names the database in the dataset's cache folder (once)."""
    path = os.path.join(cache.dataset_dir(dataset), MARKER)
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".%d" % os.getpid(), "w") as f:
            f.write(fastdb.database_id() or "")
        os.replace(path + ".%d" % os.getpid(), path)


def sweep():
    """Removes the cache folders of this database's deleted datasets; returns how many."""
    top = os.path.join(cache.cache_root(), "v%d" % cache.VERSION)
    me = fastdb.database_id()
    try:
        names = sorted(os.listdir(top))  # (listed before the datasets: a folder never precedes its dataset)
    except OSError:
        return 0
    live = {cache.dataset_hash(i) for i in fastdb.dataset_ids()}
    gone = 0
    for name in names:
        if name in live or not me or _owner(os.path.join(top, name)) != me:
            continue
        try:
            path = cache.inside_root(os.path.join(top, name))
        except RuntimeError:  # (a link out of the root: never followed; the others still swept)
            continue
        shutil.rmtree(path, ignore_errors=True)
        gone += 1
    return gone


def _owner(folder):
    try:
        with open(os.path.join(folder, MARKER)) as f:
            return f.read().strip()
    except OSError:
        return None
