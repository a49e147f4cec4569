"""Views the grid can show: the plugin remembers the views it set (several tabs,
large base views) and refuses views whose rows are not the dataset's samples."""

import pytest

from conftest import run, start_labeled


def _trained(ds):
    start_labeled(ds)
    run("train_and_label", ds)


def test_suggestions_from_a_large_base_view_keep_working(synth):
    from bson import ObjectId

    ds = synth
    _trained(ds)
    # a saved selection of 40k IDs (~1 MB of stages), most since deleted
    base = ds.select(ds.values("id") + [str(ObjectId()) for _ in range(39_400)])
    for k in range(10):  # each a new suggestions view derived from that base
        r = run("suggest_samples", ds, view=base, num_samples=3 + k)
        assert r["num_suggested"] == 3 + k
    grid = ds.select(r["ids"], ordered=True)
    t = run("train_and_label", ds, view=grid, base_view=True)
    assert t["scope"]["derived_from"] == "suggestions" and t["num_in_scope"] == len(ds)


def test_train_refuses_a_dynamic_groups_view(synth, fo):
    from fiftyone.operators.executor import ExecutionError

    ds = synth
    _trained(ds)
    before = set(ds.values("fewshot_prediction.run_id"))
    with pytest.raises(ExecutionError, match="shows groups"):
        run("train_and_label", ds, view=ds.group_by("cluster"))
    assert set(ds.values("fewshot_prediction.run_id")) == before
