"""Launches the FiftyOne App with the few-shot plugin on real Fashion-MNIST images.

First run: writes N PNGs under .demo/, builds the persistent dataset
``fewshot-demo`` and computes EfficientNet-Lite0 embeddings with the plugin's
offline zoo entry. Later runs reuse all of it and start in seconds.
"""

import argparse
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "scripts"))
os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")

DEMO_DIR = os.path.join(REPO, ".demo")
PLUGINS_DIR = os.path.join(DEMO_DIR, "plugins")
MODEL = "efficientnet-lite0-imagenet-torch"


def build(name, n):
    import fiftyone as fo

    import devplugin
    import fmnist

    plugin = devplugin.load_plugin(PLUGINS_DIR)
    zoo, fields = plugin.embeddings.zoo, plugin.embeddings.fields

    if fo.dataset_exists(name) and len(fo.load_dataset(name)) == n:
        ds = fo.load_dataset(name)
    else:
        print("[demo] writing %d Fashion-MNIST images as PNG and building '%s'" % (n, name), flush=True)
        ds = fmnist.make_dataset(name, os.path.join(DEMO_DIR, "images"), n)
        ds.persistent = True
    field = zoo.default_embedding_field(MODEL)
    todo = fields.missing_ids(ds, ds.values("id"), field)
    if todo:
        print("[demo] computing %d embeddings with %s (once; ~50 ms/image)" % (len(todo), MODEL), flush=True)
        t = time.time()

        def progress(frac, label):
            print("[demo] %3d%% %s (%.0fs)" % (100 * frac, label, time.time() - t), flush=True)

        fields.compute_missing(ds, todo, field, zoo.load_model(MODEL), MODEL, progress=progress)
    return ds


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--num-samples", type=int, default=5000)
    ap.add_argument("--dataset", default="fewshot-demo")
    ap.add_argument("--port", type=int, default=5151)
    ap.add_argument("--address", default="127.0.0.1")
    ap.add_argument("--no-launch", action="store_true", help="prepare the data only")
    args = ap.parse_args()

    ds = build(args.dataset, args.num_samples)
    if args.no_launch:
        return
    import fiftyone as fo

    session = fo.launch_app(ds, remote=True, address=args.address, port=args.port, auto=False)
    print("\n[demo] FiftyOne App with the few-shot plugin: http://%s:%d/datasets/%s" % (args.address, args.port, ds.name))
    print("[demo] Open the 'Few-Shot' panel from the '+' next to the Samples tab, or press ` for the")
    print("[demo] command palette and type 'few-shot'. Stop with Ctrl-C.", flush=True)
    try:
        session.wait(-1)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
