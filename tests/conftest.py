"""Test set-up: a real MongoDB-backed FiftyOne, the plugin found via plugins_dir."""

import atexit
import os
import shutil
import sys
import tempfile

os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")

HERE_TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE_TESTS)
sys.path.insert(0, os.path.join(REPO, "scripts"))
ARTIFACTS = os.path.join(REPO, "test-artifacts")

_plugins = tempfile.mkdtemp(prefix="fewshot-plugins-")
_cache = tempfile.mkdtemp(prefix="fewshot-cache-")
os.environ["FEWSHOT_CACHE_DIR"] = _cache
# both go at exit, after the cache's saving threads are joined (rmtree unlinks
# the plugins dir's link to the checkout, it never follows it)
atexit.register(lambda: [shutil.rmtree(d, ignore_errors=True) for d in (_plugins, _cache)])
os.symlink(REPO, os.path.join(_plugins, "few_shot_learning"))
os.environ["FIFTYONE_PLUGINS_DIR"] = _plugins
# the checkout as a plain package too: tests of pure modules import
# ``few_shot_learning.<module>`` without FiftyOne (or a database)
sys.path.insert(0, _plugins)

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def fo():
    import fiftyone

    fiftyone.config.plugins_dir = _plugins
    return fiftyone


@pytest.fixture(scope="session")
def plugin(fo):
    """The plugin package as FiftyOne loaded it (its modules: workflow, zoo...)."""
    import devplugin
    import fiftyone.operators as foo

    assert foo.get_operator("@fewshot/few_shot_learning/get_session") is not None
    return devplugin.PluginModules()


@pytest.fixture(scope="session")
def png_dir():
    d = os.path.join(tempfile.gettempdir(), "fewshot-test-pngs")
    os.makedirs(d, exist_ok=True)
    return d


URI = "@fewshot/few_shot_learning/"
MODEL = "efficientnet-lite0-imagenet-torch"
EMB = "efficientnet_lite0_imagenet_embeddings"


def run(op, ds, view=None, selected=None, **params):
    """Runs one of our operators headless; returns its result dict."""
    import fiftyone.operators as foo

    ctx = {"dataset": ds, "params": params}
    if view is not None:
        ctx["view"] = view
    if selected is not None:
        ctx["selected"] = list(selected)
    return foo.execute_operator(URI + op, ctx=ctx).result


@pytest.fixture(scope="session")
def base_dataset(fo, plugin, png_dir):
    """120 real Fashion-MNIST images with real EfficientNet-Lite0 embeddings."""
    import fmnist
    import fiftyone.zoo as foz

    ds = fmnist.make_dataset("fewshot-test-base", png_dir, 120)
    ds.persistent = False
    plugin.embeddings.zoo.register_offline_models()
    model = foz.load_zoo_model(MODEL)
    ds.compute_embeddings(model, embeddings_field=EMB, batch_size=32)
    yield ds
    ds.delete()


@pytest.fixture
def ds(base_dataset):
    """A fresh copy of the base dataset for one test (no session yet)."""
    d = base_dataset.clone()
    yield d
    d.delete()


def class_ids(ds, cls, n=None, exclude=False):
    ids, labels = ds.values(["id", "ground_truth.label"])
    out = [i for i, l in zip(ids, labels) if (l == cls) != exclude]
    return out[:n] if n else out


def make_synth(fo, n=600, dim=64, seed=0, clusters=4, name=None):
    """A dataset of ``n`` samples with clustered random vectors in ``emb``
    (fast to build: no images) and the cluster in ``cluster``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(clusters, dim))
    cls = rng.integers(0, clusters, n)
    X = (centers[cls] + 0.8 * rng.normal(size=(n, dim))).astype(np.float32)
    ds = fo.Dataset(name)
    ds.add_samples(
        [fo.Sample(filepath="/synthetic/%06d.png" % i, cluster=int(c), emb=x) for i, (c, x) in enumerate(zip(cls, X))],
        progress=False,
    )
    return ds


@pytest.fixture
def synth(fo):
    """600 samples x 64-d clustered vectors in ``emb`` (deleted after the test)."""
    ds = make_synth(fo)
    yield ds
    if fo.dataset_exists(ds.name):
        ds.delete()


@pytest.fixture(scope="session")
def synth20k_base(fo):
    """20,000 samples x 64-d: more than one read/write batch."""
    ds = make_synth(fo, n=20_000, dim=64, seed=3)
    yield ds
    ds.delete()


@pytest.fixture
def ds20k(synth20k_base):
    d = synth20k_base.clone()
    yield d
    d.delete()


def cluster_ids(ds, c, n=None, exclude=False):
    ids, cl = ds.values(["id", "cluster"])
    out = [i for i, k in zip(ids, cl) if (k == c) != exclude]
    return out[:n] if n else out


def start_labeled(ds, k=5):
    """A session on ``emb`` with ``k`` positive (cluster 0) and ``k`` negative
    (cluster 1) labels; returns their IDs."""
    run("start_session", ds, embedding_field="emb")
    ids, cl = ds.values(["id", "cluster"])
    pos = [i for i, c in zip(ids, cl) if c == 0][:k]
    neg = [i for i, c in zip(ids, cl) if c == 1][:k]
    run("label_positive", ds, sample_ids=pos)
    run("label_negative", ds, sample_ids=neg)
    return pos, neg


class flipping_labels(object):
    """While in the block, another thread labels and clears ``ids`` in turn, one
    call at a time (another tab, in the App's thread pool)."""

    def __init__(self, ds, ids):
        import threading

        self.ds, self.ids = ds, list(ids)
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run)

    def _run(self):
        k = 0
        while not self._stop.is_set():
            run(("label_positive", "clear_labels")[k % 2], self.ds, sample_ids=[self.ids[k % len(self.ids)]])
            k += 1

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        return False
