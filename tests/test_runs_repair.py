"""An unfinished run is repaired even when the session has moved on to another
prediction field: its partial predictions never stay behind looking like a
finished iteration, and the session never reports it repaired when it was not."""

import pytest

from conftest import flipping_labels, run, start_labeled
from test_adversarial import labeled


def _fail_after_first_block(f, label):
    if label.startswith("Scored"):
        raise RuntimeError("killed")


def test_an_unfinished_run_in_a_previous_prediction_field_is_repaired(ds20k, plugin):
    ds = ds20k
    labeled(ds)
    train = plugin.operators.train

    run("train_and_label", ds)
    with pytest.raises(RuntimeError):  # iteration 2 fails after its first block of writes
        train.train_and_label(ds, ds.view(), {"mode": "query"}, progress=_fail_after_first_block)
    s = run("get_session", ds)
    bad = s["run"]["id"]
    assert s["run"]["status"] == "failed" and bad in s["unfinished_runs"]
    partial = ds._sample_collection.count_documents({"fewshot_prediction.run_id": bad})
    assert 0 < partial < len(ds)

    run("start_session", ds, embedding_field="emb", prediction_field="pred2")
    # before the next train: the failed run's count is of the field it wrote, which is named
    # (it said "after 0 of 20,000", counting the new field)
    s = run("get_session", ds)["run"]
    assert s["status"] == "failed" and s["num_written"] == partial
    assert "%s of %s predictions were written to 'fewshot_prediction'" % (format(partial, ","),
                                                                         format(len(ds), ",")) in s["message"]
    r = run("train_and_label", ds)
    # the failed run's predictions are gone from the field it wrote; the rest stay
    coll = ds._sample_collection
    assert coll.count_documents({"fewshot_prediction.run_id": bad}) == 0
    assert coll.count_documents({"fewshot_prediction": {"$exists": True}}) == len(ds) - partial
    assert r["removed_unfinished"] == {"fewshot_prediction": partial}
    assert bad in r["repaired_runs"]
    s = run("get_session", ds)
    assert s["run"]["status"] == "complete" and not s["unfinished_runs"]
    assert coll.count_documents({"pred2.run_id": r["run_id"]}) == len(ds)


def test_an_unfinished_runs_field_that_is_no_longer_ours_is_left_alone(ds20k, plugin, fo):
    ds = ds20k
    labeled(ds)

    with pytest.raises(RuntimeError):
        plugin.operators.train.train_and_label(ds, ds.view(), {}, progress=_fail_after_first_block)
    run("start_session", ds, embedding_field="emb", prediction_field="pred2")
    ds.delete_sample_field("fewshot_prediction")  # the user deleted it, then made their own
    ds.add_sample_field("fewshot_prediction", fo.StringField)
    ds.set_values("fewshot_prediction", ["mine"] * len(ds))
    r = run("train_and_label", ds)
    assert r["removed_unfinished"] == {}
    assert ds.count_values("fewshot_prediction") == {"mine": len(ds)}


@pytest.mark.parametrize("how", ["delete", "rename"])
def test_train_declares_the_prediction_field_again_when_the_user_removed_it(synth, how):
    ds = synth
    start_labeled(ds)
    first = run("train_and_label", ds)
    if how == "delete":
        ds.delete_sample_field("fewshot_prediction")
    else:  # keeping a snapshot of iteration 1
        ds.rename_sample_field("fewshot_prediction", "iter1_predictions")
    r = run("train_and_label", ds)
    ds.reload()
    assert ds.count_values("fewshot_prediction.run_id") == {r["run_id"]: len(ds)}
    if how == "rename":  # the snapshot is left as it was
        assert ds.count_values("iter1_predictions.run_id") == {first["run_id"]: len(ds)}
    run("reset_session", ds)  # the re-declared field is the session's to delete, the snapshot is not
    ds.reload()
    assert not ds.has_field("fewshot_prediction")
    assert (how == "rename") == ds.has_field("iter1_predictions")


def test_train_refuses_a_patches_view(synth, fo):
    from fiftyone.operators.executor import ExecutionError

    ds = synth
    for s in ds.select(ds.values("id")[:60]).iter_samples(autosave=True):
        s["gt"] = fo.Detections(detections=[fo.Detection(label="a", bounding_box=[0.1, 0.1, 0.2, 0.2])])
    start_labeled(ds)
    patches = ds.to_patches("gt")
    for view in (patches, patches.match(fo.ViewField("gt.label") == "a")):
        with pytest.raises(ExecutionError, match="shows patches"):
            run("train_and_label", ds, view=view)
    assert not ds.has_field("fewshot_prediction") or ds.exists("fewshot_prediction").count() == 0
    assert run("get_session", ds)["run"] is None


def test_redeclaring_the_prediction_field_survives_label_calls_in_another_thread(synth):
    """The App runs operators in a thread pool on one shared in-memory dataset,
    which each call reloads: a train re-declaring its prediction field must not
    lose it to a concurrent reload."""
    ds = synth
    start_labeled(ds)
    ids, cl = ds.values(["id", "cluster"])
    errors = []
    with flipping_labels(ds, [i for i, c in zip(ids, cl) if c == 2][:30]):
        for _ in range(15):
            ds.reload()
            if ds.has_field("fewshot_prediction"):
                ds.delete_sample_field("fewshot_prediction")
            try:
                run("train_and_label", ds)
            except Exception as e:
                errors.append(str(e).strip().splitlines()[-1][:200])
    assert not errors
