"""Train & Label at 100k and 1M samples x 512-d: ours vs the reference path.

Builds (once, persistent) datasets of N samples with 512-d float32 embeddings in
field ``emb`` (10 Gaussian clusters, so labels mean something), then in one run:

- ours: ``start_session`` (every embedding exists), ``train_and_label`` with a
  cold cache, a repeat click, and a 50k working subset inside the view (repeat
  click), with peak RSS growth during the click;
- the reference plugin's path, re-implemented: ``view.to_torch(GetItem)`` ->
  ``DataLoader(batch_size=16)`` -> Rocchio per batch -> one ``fo.Classification``
  per sample -> ``set_values(..., key_field="id")`` (100k by default; ``--ref-1m``
  for 1M too, ~6 min);

and checks that both write the same probabilities (to float32 rounding): ours
timed with the default settings (pool background, whitening, calibration), then
run once more with the reference scorer's settings (``calibrate=False,
whiten="off", background_weight=0, power=1``) for the comparison.

    python bench/bench_speed.py [--sizes 100000 1000000] [--ref-1m]
"""

import argparse
import sys
import time

import numpy as np

import common
from common import op

DIM = 512


def build(name, n, seed=0):
    """The benchmark dataset (built once, persistent)."""
    import fiftyone as fo

    if fo.dataset_exists(name):
        ds = fo.load_dataset(name)
        if len(ds) == n and ds.has_field("emb"):
            return ds
        ds.delete()
    print("building %s (%d samples, once)..." % (name, n), flush=True)
    t = time.time()
    ds = fo.Dataset(name)
    ds.persistent = True
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(10, DIM)).astype(np.float32)
    step = 20_000
    for s in range(0, n, step):
        k = min(step, n - s)
        cls = rng.integers(0, 10, size=k)
        X = centers[cls] + 1.5 * rng.normal(size=(k, DIM)).astype(np.float32)
        ds.add_samples(
            [
                fo.Sample(filepath="/bench/%08d.png" % (s + i), cluster=int(c), emb=x)
                for i, (c, x) in enumerate(zip(cls, X))
            ],
            progress=False,
        )
        print("  %d/%d (%.0fs)" % (s + k, n, time.time() - t), flush=True)
    return ds


def labels(ds, k=10):
    ids, cl = ds.limit(5000).values(["id", "cluster"])
    pos = [i for i, c in zip(ids, cl) if c == 3][:k]
    neg = [i for i, c in zip(ids, cl) if c != 3][:k]
    return pos, neg


def reference_path(view, pos, neg, field="ref_prediction"):
    """The reference plugin's path (re-implemented as described in the issue)."""
    import fiftyone as fo
    import fiftyone.utils.torch as fout
    import torch
    from torch.utils.data import DataLoader

    class GetEmb(fout.GetItem):
        @property
        def required_keys(self):
            return ["id", "emb"]

        def __call__(self, d):
            return d["id"], torch.as_tensor(np.asarray(d["emb"], dtype=np.float32))

    ds = view._root_dataset
    P = np.stack(ds.select(pos).values("emb")).astype(np.float32)
    N = np.stack(ds.select(neg).values("emb")).astype(np.float32)
    P /= np.linalg.norm(P, axis=1, keepdims=True)
    N /= np.linalg.norm(N, axis=1, keepdims=True)
    p = torch.as_tensor(P.mean(0))
    n = torch.as_tensor(N.mean(0))
    torch_ds = view.to_torch(GetEmb(), vectorize=True)
    loader = DataLoader(torch_ds, batch_size=16, collate_fn=lambda b: b)
    values = {}
    labeled = set(pos) | set(neg)
    for batch in loader:
        ids = [b[0] for b in batch]
        X = torch.stack([b[1] for b in batch])
        X = X / X.norm(dim=1, keepdim=True)
        s = (X - n).norm(dim=1) - (X - p).norm(dim=1)
        probs = torch.sigmoid(s).tolist()
        for i, pr in zip(ids, probs):
            if i in labeled:
                values[i] = fo.Classification(
                    label="positive" if i in pos else "negative", confidence=1.0,
                    p_positive=1.0 if i in pos else 0.0,
                )
            else:
                values[i] = fo.Classification(
                    label="positive" if pr >= 0.5 else "negative",
                    confidence=pr if pr >= 0.5 else 1 - pr, p_positive=pr,
                )
    ds.set_values(field, values, key_field="id")


def write_floor(plugin, ds, field="fewshot_prediction", rounds=3):
    """The raw write floor (median of ``rounds``): the same prediction documents
    written as plain unconditional ``$set`` by ``_id`` (no ``last_modified_at``
    condition) over the plugin's transport (unordered 10k-statement ``update``
    commands on ``SENDERS`` connections), encoded before the clock starts: what
    MongoDB itself needs to apply n such updates. Overwrites ``field`` (the
    caller trains again after)."""
    from concurrent.futures import ThreadPoolExecutor

    from bson import ObjectId, encode
    from bson.datetime_ms import DatetimeMS
    from bson.raw_bson import RawBSONDocument

    writes = plugin.fastdb.writes
    coll = ds._sample_collection
    ids = ds.values("_id")
    rng = np.random.default_rng(0)

    def statements():  # new values each round: an update that changes nothing is not written
        now = DatetimeMS(plugin.fastdb.codec.now_ms())  # a date, as FiftyOne writes it
        out = []
        for i, p in zip(ids, rng.random(len(ids))):
            label = {"_id": ObjectId(), "_cls": "Classification", "tags": [],
                     "label": "positive" if p >= 0.5 else "negative", "confidence": float(max(p, 1 - p)),
                     "p_positive": float(p), "run_id": "floor0000000", "iteration": 1}
            out.append(RawBSONDocument(encode({"q": {"_id": i}, "u": {"$set": {field: label, "last_modified_at": now}}})))
        return [out[s : s + writes.BATCH] for s in range(0, len(out), writes.BATCH)]

    def send(batch):
        reply = coll.database.command("update", coll.name, updates=batch, ordered=False)
        writes.check_reply(reply, "floor")
        assert reply["nModified"] == len(batch)

    times = []
    for _ in range(rounds):
        batches = statements()
        t0 = time.time()
        with ThreadPoolExecutor(writes.SENDERS) as ex:
            list(ex.map(send, batches))
        times.append(time.time() - t0)
    return float(np.median(times))


def first_click(plugin, ds, pos, neg):
    """A new session with the cache warmed by start_session while the user
    labels (the labels come after the warm-up here: a user labeling for longer
    than it takes): ``(first train click, warm-up seconds)``."""
    op("reset_session", ds)
    plugin.embeddings.cache.clear(ds)
    op("start_session", ds, embedding_field="emb")
    t_warmup, _ = common.timed(plugin.embeddings.warm.wait, ds, "emb")
    op("label_positive", ds, sample_ids=pos)
    op("label_negative", ds, sample_ids=neg)
    t, r = common.timed(op, "train_and_label", ds)
    assert r["embeddings_from_cache"]
    return t, t_warmup


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--ref-1m", action="store_true", help="run the reference path at 1M too")
    args = ap.parse_args()

    plugin = common.load_plugin()
    ecache = plugin.embeddings.cache
    rows = []
    for n in args.sizes:
        ds = build("fewshot-bench-%d" % n, n)
        if op("get_session", ds)["active"]:
            op("reset_session", ds)
        ecache.clear(ds)
        matrix_mb = n * DIM * 4 / 2**20
        pos, neg = labels(ds)

        t_start, r = common.timed(op, "start_session", ds, embedding_field="emb", warm_cache=False)
        assert r["num_computed"] == 0
        op("label_positive", ds, sample_ids=pos)
        op("label_negative", ds, sample_ids=neg)
        with common.PeakRSS() as mem_cold:
            t_cold, r1 = common.timed(op, "train_and_label", ds)
        assert not r1["embeddings_from_cache"]
        warm = []
        for _ in range(3):  # repeat clicks: the median of 3 (a noisy machine)
            with common.PeakRSS() as mem_warm:
                t, r2 = common.timed(op, "train_and_label", ds)
            assert r2["embeddings_from_cache"] and r2["num_scored"] == n - len(pos) - len(neg)
            warm.append(t)
        t_warm = float(np.median(warm))
        t_floor = write_floor(plugin, ds)
        op("train_and_label", ds)  # the plugin's own predictions back

        sub = min(50_000, n // 2)
        op("start_session", ds, embedding_field="emb", subset_size=sub)
        op("train_and_label", ds)
        subs = []
        for _ in range(3):
            t, r3 = common.timed(op, "train_and_label", ds)
            assert r3["num_in_scope"] == sub and r3["embeddings_from_cache"]
            subs.append(t)
        t_sub = float(np.median(subs))

        t_ref = None
        if n <= 100_000 or args.ref_1m:
            op("start_session", ds, embedding_field="emb", subset_size=0)
            op("train_and_label", ds, calibrate=False, whiten="off", background_weight=0, power=1)
            t_ref, _ = common.timed(reference_path, ds.view(), pos, neg)
            ours = np.array(ds.values("fewshot_prediction.p_positive"), dtype=np.float64)
            ref = np.array(ds.values("ref_prediction.p_positive"), dtype=np.float64)
            err = float(np.max(np.abs(ours - ref)))
            assert err < 1e-5, err
            ds.delete_sample_field("ref_prediction")
        else:
            err = None
        t_first, t_warmup = first_click(plugin, ds, pos, neg)
        op("reset_session", ds)
        rows.append((n, t_start, t_cold, t_warm, t_sub, t_ref, err, mem_cold.delta / 2**20,
                     mem_warm.delta / 2**20, matrix_mb, t_first, t_warmup, t_floor))

    print()
    print("| n | start_session | train (cold cache) | train (repeat, median of 3) | 50k subset repeat (median of 3) | reference | ref / ours (cold) | ref / ours (repeat) | max abs diff vs ref | peak RSS growth cold / repeat (x matrix) | first click after a warmed start / repeat (warm-up) | ref / ours (first click) | raw write floor (median of 3) | repeat / floor |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n, ts, tc, tw, tsub, tr, err, mc, mw, mm, tf, twu, tfl in rows:
        print(
            "| %d | %.1f s | %.1f s | %.1f s | %.2f s | %s | %s | %s | %s | %.0f / %.0f MB (%.2fx / %.2fx of %.0f MB) | %.1f s / %.2fx (%.1f s) | %s | %.2f s | %.2fx |"
            % (n, ts, tc, tw, tsub, "%.1f s" % tr if tr else "not run",
               "%.1fx" % (tr / tc) if tr else "-", "%.1fx" % (tr / tw) if tr else "-",
               "%.1e" % err if err is not None else "-", mc, mw, mc / mm, mw / mm, mm, tf, tf / tw, twu,
               "%.1fx" % (tr / tf) if tr else "-", tfl, tw / tfl)
        )


if __name__ == "__main__":
    sys.exit(main())
