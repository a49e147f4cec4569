"""Real Fashion-MNIST images (Debian package ``dataset-fashion-mnist``) for the
demo, tests and benchmarks: decoded from the IDX files and written as PNGs once."""

import gzip
import os

import numpy as np

ROOT = "/usr/share/datasets/fashion-mnist"
CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]


def load_split(split="test"):
    """``(images uint8 [N, 28, 28], labels int [N])`` of a split."""
    prefix = "t10k" if split == "test" else "train"
    with gzip.open(os.path.join(ROOT, "%s-images-idx3-ubyte.gz" % prefix)) as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(os.path.join(ROOT, "%s-labels-idx1-ubyte.gz" % prefix)) as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8).astype(int)
    return images, labels


def write_pngs(out_dir, n, split="test", start=0):
    """Writes images ``start..start+n`` as PNGs (once); returns ``[(path, class)]``."""
    from PIL import Image

    images, labels = load_split(split)
    os.makedirs(out_dir, exist_ok=True)
    rows = []
    for i in range(start, min(start + n, len(images))):
        path = os.path.join(out_dir, "%s_%05d.png" % (split, i))
        if not os.path.exists(path):
            tmp = path + ".tmp.png"
            Image.fromarray(images[i]).save(tmp)
            os.replace(tmp, path)
        rows.append((path, CLASSES[labels[i]]))
    return rows


def make_dataset(name, out_dir, n, split="test", start=0, overwrite=True):
    """A FiftyOne dataset of ``n`` Fashion-MNIST PNGs with ``ground_truth``."""
    import fiftyone as fo

    if fo.dataset_exists(name):
        if not overwrite:
            return fo.load_dataset(name)
        fo.delete_dataset(name)
    ds = fo.Dataset(name)
    ds.add_samples(
        [
            fo.Sample(filepath=p, ground_truth=fo.Classification(label=c))
            for p, c in write_pngs(out_dir, n, split=split, start=start)
        ]
    )
    return ds
