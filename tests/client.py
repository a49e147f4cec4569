"""A FiftyOne client process for multi-process and fault tests.

    python tests/client.py CODE

runs ``CODE`` with the helpers below in scope and prints the JSON of its ``out``
variable on the last line. The database is whatever ``FIFTYONE_DATABASE_URI``
says (a private ``mongod`` in fault tests, else the suite's shared one); the
plugin is the checkout, found through ``FIFTYONE_PLUGINS_DIR``.
"""

import json
import os
import sys

os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")

import numpy as np  # noqa: E402

import fiftyone as fo  # noqa: E402
import fiftyone.operators as foo  # noqa: E402

URI = "@fewshot/few_shot_learning/"
fo.config.plugins_dir = os.environ["FIFTYONE_PLUGINS_DIR"]
sys.path.insert(0, fo.config.plugins_dir)  # the checkout as package ``few_shot_learning``


def op(name, ds, view=None, selected=None, **params):
    ctx = {"dataset": ds, "params": params}
    if view is not None:
        ctx["view"] = view
    if selected is not None:
        ctx["selected"] = list(selected)
    return foo.execute_operator(URI + name, ctx=ctx).result


def synth(name, n, dim=64, seed=0, clusters=4):
    """A persistent dataset of ``n`` samples with clustered vectors in ``emb``."""
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(clusters, dim))
    cls = rng.integers(0, clusters, n)
    X = (centers[cls] + 0.8 * rng.normal(size=(n, dim))).astype(np.float32)
    ds = fo.Dataset(name)
    ds.persistent = True
    ds.add_samples(
        [fo.Sample(filepath="/synthetic/%06d.png" % i, cluster=int(c), emb=x) for i, (c, x) in enumerate(zip(cls, X))],
        progress=False,
    )
    return ds


def predictions(ds, field="fewshot_prediction"):
    """``{id: [run_id, iteration, p_positive]}`` of samples with a prediction."""
    ids, runs, its, ps = ds.exists(field).values(
        ["id", field + ".run_id", field + ".iteration", field + ".p_positive"]
    )
    return {i: [r, t, p] for i, r, t, p in zip(ids, runs, its, ps)}


out = None
exec(compile(sys.argv[1], "<client>", "exec"))
print(json.dumps(out, default=str))
