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


def test_the_train_form_on_a_view_the_plugin_set_scores_its_base_view(ds, fo):
    """From the operator browser on the suggestions grid, Train & Label once
    scored just those suggestions (their few rows made the calibration: a new
    user's run called a 10% concept common and wrote wrong predictions). The
    form now defaults to the view behind the grid there, as the panel's Train,
    and says what it will score."""
    from conftest import EMB, class_ids
    from test_bad_input import form_inputs

    run("start_session", ds, embedding_field=EMB)
    run("label_positive", ds, selected=class_ids(ds, "Bag", 2))
    run("label_negative", ds, selected=class_ids(ds, "Bag", 2, exclude=True))
    run("train_and_label", ds)
    grid = ds.select(run("suggest_samples", ds, num_samples=5)["ids"], ordered=True)
    form = form_inputs("train_and_label", ds, view=grid)
    assert form["base_view"].default is True
    assert "the view behind the suggestions in the grid" in form["scope_md"].default
    assert "%d" % len(ds) in form["scope_md"].default
    form = form_inputs("train_and_label", ds, view=grid, base_view=False)
    assert "current view - 5" in form["scope_md"].default
    plain = form_inputs("train_and_label", ds, view=ds.match(fo.ViewField("ground_truth.label") == "Bag"))
    assert plain["base_view"].default is False and "current view" in plain["scope_md"].default
    assert run("train_and_label", ds, view=grid)["scope"]["derived_from"] is None  # (Python: the view given)


def test_a_histogram_bar_shows_the_samples_it_counts(synth, plugin, fo):
    """A new user: a bar said "10 samples" and the grid showed 23 (13 from
    earlier iterations outside the last train's scope, and labeled ones)."""
    from fiftyone import ViewField as F

    ds = synth
    _trained(ds)
    last = run("train_and_label", ds, view=ds.take(200, seed=1))
    bar = plugin.operators.workflow.histogram_bar_view
    path = "fewshot_prediction.p_positive"
    mixed = 0
    for i, n in enumerate(last["histogram"]["counts"]):
        x = 0.025 + 0.05 * i
        got = bar(ds, x, 0.05)
        assert len(got) == n, (x, len(got), n)
        assert set(got.values("fewshot_prediction.run_id")) <= {last["run_id"]}
        hi = (F(path) < x + 0.025) if i < 19 else (F(path) <= 1)
        mixed += len(ds.match((F(path) >= x - 0.025) & hi)) - n  # (the range alone)
    assert mixed > 0


def test_train_from_a_plugin_view_that_emptied_checks_the_view_it_scores(synth, plugin):
    """A new user labeled the only sample of a histogram bar (it left the bar's
    view), then clicked Train: the panel said it would score the view behind the
    bar, and the form refused "The current view is empty; nothing to score"."""
    from test_bad_input import form_error

    ds = synth
    _trained(ds)
    wf = plugin.operators.workflow
    state = wf.SessionState(ds)
    bar = wf.histogram_bar_view(ds, 0.975, 0.05)
    assert len(bar)
    wf.remember_derived(state, "histogram bar", bar, ds.view())
    run("label_positive", ds, sample_ids=bar.values("id"))
    assert len(bar) == 0
    assert form_error("train_and_label", ds, view=bar, base_view=True) is None
    assert form_error("train_and_label", ds, view=bar) is None  # (the form's default there)
    assert run("train_and_label", ds, view=bar, base_view=True)["num_in_scope"] == len(ds)
    assert "empty" in form_error("train_and_label", ds, view=bar, base_view=False)


def test_a_redrawn_working_subset_replaces_the_one_the_grid_shows(synth, plugin):
    """A new user: with "draw a new working subset at every Train" on and the
    grid on the working subset, Train scored a new subset and the grid kept
    the old one (442 tiles with predictions the train had not made)."""
    ds = synth
    wf = plugin.operators.workflow
    start_labeled(ds)
    run("start_session", ds, embedding_field="emb", subset_size=50, randomize_subset=True)
    run("train_and_label", ds)
    state = wf.SessionState(ds)
    old = wf.subset_view(ds, ds.view())
    wf.remember_derived(state, "working subset", old, ds.view())  # (what Show Working Subset does)
    r = run("train_and_label", ds, view=old, base_view=True)
    assert r["subset_redrawn"]
    new = wf.subset_view(ds, ds.view())
    assert set(new.values("id")) != set(old.values("id"))
    assert wf.derived_record(state, new)["kind"] == "working subset"  # (the grid was set to it)


def test_a_sample_labeled_in_the_predictions_view_stays_in_it(synth, fo):
    """A new user labeled 3 samples in Show Predictions: the view went from 999
    to 996 samples (a label removes the old prediction, and the view was "has a
    prediction"), though it lists the labeled samples last."""
    ds = synth
    _trained(ds)
    sv = run("show_predictions", ds)
    view = fo.DatasetView._build(ds, sv["view"])
    top = view.limit(3).values("id")
    run("label_negative", ds, sample_ids=top)
    after = fo.DatasetView._build(ds, run("show_predictions", ds)["view"])
    assert len(after) == len(view) == len(ds)
    assert set(after.skip(len(ds) - 13).values("id")) >= set(top)  # (with the labeled, last)


def test_histogram_bars_hold_what_the_histogram_counts_after_a_repair_or_a_field_change(synth, plugin):
    """A review: a train on a view that also repaired predictions outside it
    counted them in its histogram, and the bars (limited to the view) summed
    to 90 of 590; after the prediction field changed, every bar was empty."""
    ds = synth
    bar = plugin.operators.workflow.histogram_bar_view
    _trained(ds)
    clone = ds.clone()  # (its copied predictions are repaired by its first train)
    try:
        run("start_session", clone, embedding_field="emb")
        start_labeled(clone)
        last = run("train_and_label", clone, view=clone.limit(100))
        assert last["num_written"] == len(clone)
        total = sum(len(bar(clone, 0.025 + 0.05 * i, 0.05)) for i in range(20))
        assert total == sum(last["histogram"]["counts"]) > 100
        run("start_session", clone, embedding_field="emb", prediction_field="other_pred")
        total = sum(len(bar(clone, 0.025 + 0.05 * i, 0.05)) for i in range(20))
        assert total == sum(last["histogram"]["counts"])  # (the field that train wrote)
    finally:
        clone.delete()


def test_a_python_train_that_redraws_a_subset_viewed_as_is_completes_without_an_error(synth, plugin):
    """A review: without base_view, a train on the working subset's view that
    re-drew a subset completed, then raised "No working subset drawn for this view"."""
    ds = synth
    wf = plugin.operators.workflow
    start_labeled(ds)
    run("start_session", ds, embedding_field="emb", subset_size=200)
    run("train_and_label", ds)
    sub = wf.subset_view(ds, ds.view())
    wf.remember_derived(wf.SessionState(ds), "working subset", sub, ds.view())
    r = run("train_and_label", ds, view=sub, resample_subset=True)
    assert r["iteration"] == 2 and r["subset_redrawn"]
