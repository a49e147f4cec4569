"""A second real image domain that ships offline: scikit-learn's bundled
``load_digits`` (1,797 handwritten digits, 8x8, 10 classes), upscaled to 64x64
PNGs and embedded by the plugin's offline Lite0 zoo entry, the same
``load_zoo_model`` + ``compute_embeddings`` path users run (cached under
bench/.cache/, ~2 minutes the first time).
"""

import os

import numpy as np

import common
import fmnist_embeddings

PATH = os.path.join(common.CACHE, "digits-lite0.npz")
CLASSES = [str(i) for i in range(10)]


def _rows(out_dir):
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    os.makedirs(out_dir, exist_ok=True)
    rows = []
    for i, (img, label) in enumerate(zip(d.images, d.target)):
        path = os.path.join(out_dir, "digit_%04d.png" % i)
        if not os.path.exists(path):
            a = (255 - img * (255.0 / 16)).clip(0, 255).astype(np.uint8)  # dark ink on white
            Image.fromarray(a).resize((64, 64), Image.BILINEAR).save(path + ".tmp.png")
            os.replace(path + ".tmp.png", path)
        rows.append((path, CLASSES[label]))
    return rows


def load():
    """``(X float32 [1797, 1280], y int [1797], class names)``."""
    if os.path.exists(PATH):
        d = np.load(PATH)
        return d["X"], d["y"], list(d["classes"])
    rows = _rows(os.path.join(common.CACHE, "digits-png"))
    X, labels = fmnist_embeddings.embed("fewshot-bench-digits", rows)
    y = np.array([CLASSES.index(l) for l in labels])
    np.savez(PATH, X=X, y=y, classes=np.array(CLASSES))
    return X, y, CLASSES


if __name__ == "__main__":
    X, y, c = load()
    print(X.shape, np.bincount(y))
