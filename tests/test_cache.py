"""The embedding cache: repeat clicks skip MongoDB reads; any change to the
samples invalidates it; what is written equals the plain path."""

import datetime

import numpy as np
import pytest

from conftest import EMB, class_ids, run


@pytest.fixture
def trained(ds):
    run("start_session", ds, embedding_field=EMB, warm_cache=False)  # the first click reads MongoDB
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


def test_an_edited_embedding_is_reread(trained, fo):
    ds, _ = trained
    target = class_ids(ds, "Sneaker", exclude=True)[10]
    p_before = preds(ds)[target]
    # make it the centroid of the positives: it must now score high
    X = dict(zip(*ds.values(["id", EMB])))
    pos = class_ids(ds, "Sneaker", 3)
    new = np.mean([X[i] / np.linalg.norm(X[i]) for i in pos], axis=0).astype(np.float32)
    ds.select([target]).set_values(EMB, [new])
    r = run("train_and_label", ds)
    assert r["embeddings_from_cache"] is True and r["num_embeddings_reread"] == 1
    assert preds(ds)[target] > max(p_before, 0.5)
    r = run("train_and_label", ds)
    assert r["embeddings_from_cache"] is True and r["num_embeddings_reread"] == 0


def test_recomputed_embeddings_are_reread(trained, fo):
    ds, _ = trained
    ids = ds.values("id")[:5]
    vecs = ds.select(ids).values(EMB)
    ds.select(ids).set_values(EMB, [v * 2 for v in vecs])  # same direction, new write
    assert run("train_and_label", ds)["num_embeddings_reread"] == 5


def test_most_embeddings_edited_means_a_cold_read(trained, fo):
    ds, _ = trained
    ds.set_values(EMB, [v[::-1].copy() for v in ds.values(EMB)])
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
    seed = dict(calibrate=False, whiten="off", background_weight=0, power=1)
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


def test_raw_prediction_documents_are_what_fiftyone_writes(trained, fo):
    """The templated update writes exactly ``fo.Classification(...).to_mongo()``."""
    ds, r = trained
    sid = class_ids(ds, "Sneaker", exclude=True)[20]
    raw = ds._sample_collection.find_one({"_id": __import__("bson").ObjectId(sid)})["fewshot_prediction"]
    p = raw["p_positive"]
    want = fo.Classification(
        label="positive" if p >= 0.5 else "negative", confidence=max(p, 1 - p), p_positive=p,
        run_id=r["run_id"], iteration=r["iteration"],
    )
    want.id = str(raw["_id"])
    assert list(raw.items()) == list(want.to_mongo().items())
    s = ds[sid]
    assert s.fewshot_prediction.run_id == r["run_id"] and s.fewshot_prediction.iteration == 1


def test_fast_id_reads_match_fiftyone(ds, fo, plugin):
    fastdb = plugin.fastdb
    for view in (ds.view(), ds.match(fo.ViewField("ground_truth.label") == "Bag"), ds.skip(7).limit(30)):
        assert fastdb.to_str(fastdb.view_ids(view)) == view.values("id")


def test_the_stamp_is_the_stamp_of_every_last_modified_at(trained, plugin):
    ds, _ = trained
    fastdb = plugin.fastdb
    ids, lma = fastdb.scan_lma(ds)
    assert len(ids) == len(ds)
    st = fastdb.stamp(ds)
    assert st == fastdb.stamp_of(lma)
    ds.select(ds.values("id")[:1]).set_values("ground_truth.label", ["Bag"])
    assert fastdb.stamp(ds) != st and fastdb.stamp(ds) == fastdb.stamp_of(fastdb.scan_lma(ds)[1])


def test_prediction_writes_never_hide_an_edit(trained, plugin):
    """A write conditioned on an old last_modified_at matches nothing."""
    ds, _ = trained
    fastdb = plugin.fastdb
    ids, lma = fastdb.scan_lma(ds)
    with fastdb.PredictionWriter(ds, "fewshot_prediction", "p_positive", "f" * 16, 9) as w:
        w.write(ids[:3], lma[:3] - 1, np.full(3, 0.7), np.zeros(3, np.int8))
    assert w.sent == 3 and w.matched == 0
    assert set(ds.select(fastdb.to_str(ids[:3])).values("fewshot_prediction.run_id")) != {"f" * 16}
    with fastdb.PredictionWriter(ds, "fewshot_prediction", "p_positive", "f" * 16, 9) as w:
        w.write(ids[:3], lma[:3], np.full(3, 0.7), np.zeros(3, np.int8))
    assert w.matched == 3
    assert set(ds.select(fastdb.to_str(ids[:3])).values("fewshot_prediction.run_id")) == {"f" * 16}


def test_reset_removes_the_plugins_cache_files(trained, plugin):
    import os

    ds, _ = trained
    d = plugin.embeddings.cache.dataset_dir(ds)
    assert os.path.isdir(d)
    run("reset_session", ds)
    assert not os.path.exists(d)
    assert ds.has_field(EMB)


def test_the_first_click_after_start_reads_the_warmed_cache_and_writes_the_same(ds):
    """start_session warms the cache while the user labels: the first click reads
    it (only the labeled rows re-read) and writes what a cold first click writes."""
    cold = ds.clone()
    try:
        for d, warm in ((ds, True), (cold, False)):
            run("start_session", d, embedding_field=EMB, warm_cache=warm)
            run("label_positive", d, selected=class_ids(d, "Sneaker", 3))
            run("label_negative", d, selected=class_ids(d, "Sneaker", 3, exclude=True))
        r = run("train_and_label", ds)
        assert r["embeddings_from_cache"] is True and r["num_embeddings_reread"] == 6
        assert run("train_and_label", cold)["embeddings_from_cache"] is False
        a, b = preds(ds), preds(cold)
        assert sorted(a.values()) == sorted(b.values()) and len(a) == len(ds)
    finally:
        cold.delete()
