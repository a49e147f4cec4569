"""Fashion-MNIST test images (10k) embedded by the plugin's offline Lite0 zoo entry.

Cached under bench/.cache/ (git-ignored): the first run builds a FiftyOne
dataset of the PNGs and computes embeddings through the plugin
(``load_zoo_model`` + ``compute_embeddings``), ~5 minutes on 2 cores.
"""

import os

import numpy as np

import common

MODEL = "efficientnet-lite0-imagenet-torch"
PATH = os.path.join(common.CACHE, "fmnist-test-lite0.npz")


def load(n=10_000):
    """``(X float32 [n, 1280], y int [n], class names)``."""
    if os.path.exists(PATH):
        d = np.load(PATH)
        if len(d["y"]) >= n:
            return d["X"][:n], d["y"][:n], list(d["classes"])
    import fmnist

    rows = fmnist.write_pngs(os.path.join(common.CACHE, "fmnist-png"), n)
    X, labels = embed("fewshot-bench-fmnist", rows)
    y = np.array([fmnist.CLASSES.index(l) for l in labels])
    os.makedirs(common.CACHE, exist_ok=True)
    np.savez(PATH, X=X, y=y, classes=np.array(fmnist.CLASSES))
    return X, y, fmnist.CLASSES


def embed(name, rows):
    """Embeds ``[(path, label)]`` through the plugin (a persistent dataset
    ``name``); returns ``(X, labels)`` in the order of the dataset."""
    plugin = common.load_plugin()
    import fiftyone as fo

    fields, zoo = plugin.embeddings.fields, plugin.embeddings.zoo
    ds = fo.load_dataset(name) if fo.dataset_exists(name) else fo.Dataset(name)
    # (a run killed while adding left some of them: add the rest)
    have = set(ds.values("filepath"))
    missing = [fo.Sample(filepath=p, ground_truth=fo.Classification(label=c)) for p, c in rows if p not in have]
    if missing:
        ds.add_samples(missing)
    ds.persistent = True
    field = zoo.default_embedding_field(MODEL)
    todo = fields.missing_ids(ds, ds.values("id"), field)
    if todo:
        print("computing %d Lite0 embeddings (once)..." % len(todo), flush=True)
        fields.compute_missing(ds, todo, field, zoo.load_model(MODEL), MODEL,
                               progress=lambda f, l: print("  " + l, flush=True))
    X, labels = ds.values([field, "ground_truth.label"])
    return np.stack(X).astype(np.float32), labels


if __name__ == "__main__":
    X, y, c = load()
    print(X.shape, np.bincount(y))
