"""The embedding cache: repeat clicks skip MongoDB reads; any change to the
samples invalidates it; what is written equals the plain path."""

import datetime

import numpy as np
import pytest

from conftest import EMB, class_ids, run


@pytest.fixture
def trained(ds):
    run("start_session", ds, embedding_field=EMB)
    run("label_positive", ds, selected=class_ids(ds, "Sneaker", 3))
    run("label_negative", ds, selected=class_ids(ds, "Sneaker", 3, exclude=True))
    first = run("train_and_label", ds)
    return ds, first


def preds(ds):
    return dict(zip(*ds.values(["id", "fewshot_prediction.p_positive"])))


def test_repeat_click_uses_cache_and_writes_the_same(trained):
    ds, first = trained
    assert first["embeddings_from_cache"] is False
    p1 = preds(ds)
    second = run("train_and_label", ds)
    assert second["embeddings_from_cache"] is True
    assert preds(ds) == p1


def test_label_clicks_keep_the_cache_valid(trained):
    ds, _ = trained
    run("label_negative", ds, selected=class_ids(ds, "Bag", 2))
    r = run("train_and_label", ds)
    assert r["embeddings_from_cache"] is True and r["num_negative_labels"] == 5


def test_edited_embedding_invalidates(trained, fo):
    ds, _ = trained
    target = class_ids(ds, "Sneaker", exclude=True)[10]
    p_before = preds(ds)[target]
    # make it the centroid of the positives: it must now score high
    X = dict(zip(*ds.values(["id", EMB])))
    pos = class_ids(ds, "Sneaker", 3)
    new = np.mean([X[i] / np.linalg.norm(X[i]) for i in pos], axis=0).astype(np.float32)
    ds.select([target]).set_values(EMB, [new])
    r = run("train_and_label", ds)
    assert r["embeddings_from_cache"] is False
    assert preds(ds)[target] > max(p_before, 0.5)
    assert run("train_and_label", ds)["embeddings_from_cache"] is True


def test_recomputed_embeddings_invalidate(trained, fo):
    ds, _ = trained
    ids = ds.values("id")[:5]
    vecs = ds.select(ids).values(EMB)
    ds.select(ids).set_values(EMB, [v * 2 for v in vecs])  # same direction, new write
    assert run("train_and_label", ds)["embeddings_from_cache"] is False


def test_added_and_deleted_samples_invalidate(trained, fo):
    ds, _ = trained
    s = ds.first()
    ds.add_sample(fo.Sample(filepath=s.filepath, ground_truth=s.ground_truth, **{EMB: s[EMB]}))
    r = run("train_and_label", ds)
    assert r["embeddings_from_cache"] is False and r["num_in_scope"] == len(ds)
    assert run("train_and_label", ds)["embeddings_from_cache"] is True
    victim = class_ids(ds, "Sneaker", exclude=True)[-1]
    ds.delete_samples([victim])
    r = run("train_and_label", ds)
    assert r["embeddings_from_cache"] is False and r["num_in_scope"] == len(ds)


def test_fast_writes_keep_schema_and_last_modified_at(trained, fo):
    ds, _ = trained
    t0 = datetime.datetime.utcnow() - datetime.timedelta(seconds=1)
    run("train_and_label", ds)
    schema = ds.get_field_schema(flat=True)
    assert "fewshot_prediction.p_positive" in schema
    assert isinstance(schema["fewshot_prediction"], fo.EmbeddedDocumentField)
    assert min(ds.values("last_modified_at")) >= t0
    # FiftyOne reads them back as Classifications; views can filter/sort on them
    assert ds.match(fo.ViewField("fewshot_prediction.label") == "positive").count() >= 3
    top = ds.sort_by("fewshot_prediction.p_positive", reverse=True).first()
    assert top.fewshot_prediction.p_positive == 1.0


def test_subset_scores_equal_full_view_scores(ds, fo):
    # the seed scorer depends on the labels only (the default model also fits
    # the pool it scores, so its subset scores differ by design)
    seed = dict(calibrate=False, whiten="off", background_weight=0)
    run("start_session", ds, embedding_field=EMB)
    run("label_positive", ds, selected=class_ids(ds, "Bag", 2))
    run("label_negative", ds, selected=class_ids(ds, "Bag", 2, exclude=True))
    run("train_and_label", ds, **seed)
    full = preds(ds)
    run("start_session", ds, embedding_field=EMB, subset_size=40)
    run("train_and_label", ds, mode="query")  # different scores on the subset only
    run("train_and_label", ds, mode="distance", **seed)
    sub = preds(ds)
    assert sub == full


def test_fast_id_reads_match_fiftyone(ds, fo, plugin):
    import importlib

    ecache = plugin.embeddings.cache
    for view in (ds.view(), ds.match(fo.ViewField("ground_truth.label") == "Bag"), ds.skip(7).limit(30)):
        assert ecache.to_str(ecache.view_ids(view)) == view.values("id")


def test_update_encoding_round_trips(plugin):
    """IDs with trailing zero bytes, labels, confidences and p_positive survive."""
    import datetime
    import importlib

    import bson
    from bson import ObjectId

    wb = importlib.import_module(plugin.__name__ + ".operators.writeback")
    ecache = plugin.embeddings.cache
    ids = ["0123456789abcdef01234500", "0123456789abcdef00000000", str(ObjectId())]
    b = ecache.to_bytes(ids)
    assert ecache.to_str(b) == ids
    now = datetime.datetime(2026, 1, 2, 3, 4, 5)
    recs = wb._encode_updates(
        "pred", "p_positive", b, np.array([True, False, True]), np.array([0.9, 0.8, 1.0]),
        np.array([0.9, 0.2, 1.0]), now,
    )
    docs = [bson.decode(r) for r in recs]
    assert [str(d["q"]["_id"]) for d in docs] == ids
    labels = [d["u"]["$set"]["pred"] for d in docs]
    assert [l["label"] for l in labels] == ["positive", "negative", "positive"]
    assert [l["confidence"] for l in labels] == [0.9, 0.8, 1.0]
    assert [l["p_positive"] for l in labels] == [0.9, 0.2, 1.0]
    assert all(l["_cls"] == "Classification" and l["tags"] == [] for l in labels)
    assert len({l["_id"] for l in labels}) == 3
    assert all(d["u"]["$set"]["last_modified_at"] == now for d in docs)


def test_raw_batch_split_matches_bson_decoding(plugin):
    """The numpy walk over raw documents finds what bson decodes, whatever the
    layout: vectors, absent/None/list values, other binary subtypes, extra
    fields, IDs ending in zero bytes, and vector bytes that look like an _id."""
    import io
    import zlib

    import bson
    from bson import Binary, ObjectId
    from bson.son import SON

    ecache = plugin.embeddings.cache

    def vec(x):
        f = io.BytesIO()
        np.save(f, np.asarray(x, dtype=np.float32))
        return zlib.compress(f.getvalue())

    tricky = zlib.compress(b"\x07_id\x00" + b"\x00" * 40)  # decodes to no vector, only parsed
    docs = [
        SON([("_id", ObjectId()), ("emb", vec([1, 2, 3]))]),
        SON([("_id", ObjectId("0123456789abcdef00000000")), ("emb", vec([4, 5, 6]))]),
        SON([("_id", ObjectId())]),
        SON([("_id", ObjectId()), ("emb", None)]),
        SON([("_id", ObjectId()), ("emb", [1.5, 2.5])]),
        SON([("_id", ObjectId()), ("emb", Binary(b"\x01\x02", 5))]),
        SON([("_id", ObjectId()), ("emb", vec([7, 8, 9])), ("filepath", "/x.png")]),
        SON([("_id", ObjectId()), ("emb", b"\x07_id\x00" * 9)]),
        SON([("_id", ObjectId()), ("emb", tricky)]),
        SON([("_id", ObjectId()), ("emb", b"")]),
    ]
    batch = b"".join(bson.encode(d) for d in docs)
    ids, values = ecache._split_batch(batch, "emb")
    want = bson.decode_all(batch)
    assert ecache.to_str(ids) == [str(d["_id"]) for d in want]
    got = [bytes(v) if isinstance(v, memoryview) else v for v in values]
    assert got == [d.get("emb") for d in want]
    # the plain vectors took the fast path (no decoding), the odd ones did not
    assert [isinstance(v, memoryview) for v in values] == [1, 1, 0, 0, 0, 0, 0, 1, 1, 1]
    # an empty batch and a field name that is a prefix of another
    assert len(ecache._split_batch(b"", "emb")[0]) == 0
    other = bson.encode(SON([("_id", ObjectId()), ("embx", vec([1]))]))
    assert ecache._split_batch(other, "emb")[1] == [None]
    # a long field name, and a last document shorter than the peeks reach
    long = "e" * 200
    batch = bson.encode(SON([("_id", ObjectId()), (long, vec([1]))])) + bson.encode({"_id": ObjectId()})
    got = ecache._split_batch(batch, long)[1]
    assert bytes(got[0]) == vec([1]) and got[1] is None


def test_reset_removes_the_plugins_cache_files(trained, plugin):
    import os

    ds, _ = trained
    d = os.path.join(plugin.embeddings.cache.cache_root(), "embeddings", str(ds._doc.id))
    assert os.path.isdir(d)
    run("reset_session", ds)
    assert not os.path.exists(d)
    assert ds.has_field(EMB)


def test_only_own_writes_tells_our_writes_from_edits(trained, plugin):
    """The cold click saves its cache although its own writes changed the
    dataset while it read; an edit by anyone else in that window does not pass."""
    ds, _ = trained
    ecache, writeback = plugin.embeddings.cache, plugin.operators.writeback
    st = ecache.stamp(ds)
    ids = ecache.view_ids(ds.view())[:5]
    with writeback.PredictionWriter(ds, "fewshot_prediction") as w:
        w.write(ids, np.full(5, 0.7))
    assert ecache.stamp(ds) != st and ecache.only_own_writes(ds, st, w.now)
    ds.select(ecache.to_str(ids[:1])).set_values("fewshot_prediction.confidence", [0.1])
    assert not ecache.only_own_writes(ds, st, w.now)
