"""The few-shot workflow through real operators on a real MongoDB-backed dataset."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import EMB, MODEL, URI, class_ids, run


def start(ds, **kw):
    kw.setdefault("embedding_field", EMB)
    return run("start_session", ds, **kw)


def test_plugin_lists_every_operator_in_fiftyone_yml(plugin):
    import yaml

    import fiftyone.operators as foo

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(repo, "fiftyone.yml")) as f:
        meta = yaml.safe_load(f)
    assert meta["name"] == "@fewshot/few_shot_learning"
    assert set(meta["operators"]) == {op().config.name for op in plugin.operators.ops.OPERATORS}
    for name in meta["operators"]:
        assert foo.get_operator(URI + name) is not None


def test_full_loop_writes_classifications(ds, fo):
    r = start(ds)
    assert r["num_computed"] == 0 and r["dim"] == 1280 and r["num_in_scope"] == len(ds)
    pos = class_ids(ds, "Trouser", 3)
    neg = class_ids(ds, "Trouser", 6, exclude=True)
    assert run("label_positive", ds, selected=pos)["num_positive"] == 3
    assert run("label_negative", ds, selected=neg)["num_negative"] == 6
    # labels are mirrored into boolean fields
    assert sorted(ds.match(fo.ViewField("fewshot_positive") == True).values("id")) == sorted(pos)
    assert sorted(ds.match(fo.ViewField("fewshot_negative") == True).values("id")) == sorted(neg)

    r = run("train_and_label", ds)
    assert r["iteration"] == 1
    assert r["num_scored"] == len(ds) - 9
    assert r["num_predicted_positive"] + r["num_predicted_negative"] == r["num_scored"]
    preds = dict(zip(*ds.values(["id", "fewshot_prediction"])))
    assert all(isinstance(p, fo.Classification) for p in preds.values())
    for i in pos:
        assert preds[i].label == "positive" and preds[i].confidence == 1.0
    for i in neg:
        assert preds[i].label == "negative" and preds[i].confidence == 1.0
    for i, p in preds.items():
        if i in pos or i in neg:
            continue
        pp = p["p_positive"]
        assert 0 <= pp <= 1
        assert p.label == ("positive" if pp >= 0.5 else "negative")
        assert p.confidence == pytest.approx(pp if pp >= 0.5 else 1 - pp)

    # the predictions match the scorer on the stored embeddings: the default
    # model (pool background, whitening, calibration) fitted on the scored pool
    from scoring import FewShotModel, RocchioScorer, l2_normalize

    X = dict(zip(*ds.values(["id", EMB])))
    other = sorted(i for i in preds if i not in pos and i not in neg)  # the cache's row order
    pool = l2_normalize(np.stack([X[i] for i in other]))
    _, expect = FewShotModel().fit_score(
        l2_normalize([X[i] for i in sorted(pos)]), l2_normalize([X[i] for i in sorted(neg)]), pool
    )
    got = np.array([preds[i]["p_positive"] for i in other])
    np.testing.assert_allclose(got, expect, atol=1e-5)
    assert r["calibration"]["method"] == "platt"  # 111 scored: too few for the mixture
    assert r["settings"]["calibrate"] and r["settings"]["whiten"] == "auto"

    # real images: the unlabeled trousers rank above the rest
    gt = dict(zip(*ds.values(["id", "ground_truth.label"])))
    y = np.array([gt[i] == "Trouser" for i in other])
    ranks = np.argsort(np.argsort(-got))
    assert ranks[y].mean() < ranks[~y].mean()

    sv = run("show_predictions", ds)
    assert sv["num_samples"] == len(ds)
    from fiftyone.core.view import DatasetView

    view = fo.DatasetView._build(ds, sv["view"])
    shown, is_pos, is_neg = view.values(["fewshot_prediction.p_positive", "fewshot_positive", "fewshot_negative"])
    labeled = [bool(a or b) for a, b in zip(is_pos, is_neg)]
    k = labeled.index(True)  # unlabeled samples first, most likely positive first; labeled last
    assert not any(labeled[:k]) and all(labeled[k:])
    assert shown[:k] == sorted(shown[:k], reverse=True)

    sess = run("get_session", ds)
    assert sess["active"] and sess["iteration"] == 1
    json.dumps(sess)  # JSON-able

    # the seed scorer stays selectable: plain sigmoid(s / T), no background, no power transform
    r = run("train_and_label", ds, calibrate=False, whiten="off", background_weight=0, power=1)
    assert r["calibration"] is None
    preds = {i: p for i, p in zip(*ds.values(["id", "fewshot_prediction"]))}
    s = RocchioScorer().fit([X[i] for i in pos], [X[i] for i in neg])
    expect = s.predict_proba(np.stack([X[i] for i in other]))
    got = np.array([preds[i]["p_positive"] for i in other])
    np.testing.assert_allclose(got, expect, atol=1e-6)

    sess = run("get_session", ds)
    assert sess["num_positive"] == 3 and sess["num_negative"] == 6
    assert sess["last_train"]["num_scored"] == r["num_scored"]
    json.dumps(sess)  # JSON-able


def test_relabel_moves_and_clear(ds, fo):
    start(ds)
    ids = class_ids(ds, "Bag", 2)
    run("label_positive", ds, selected=ids)
    r = run("label_negative", ds, sample_ids=[ids[0]])
    assert r["num_moved"] == 1 and r["num_positive"] == 1 and r["num_negative"] == 1
    s = ds[ids[0]]
    assert s["fewshot_negative"] is True and s["fewshot_positive"] is None
    r = run("clear_labels", ds, selected=ids)
    assert r["num_positive"] == 0 and r["num_negative"] == 0
    assert ds.exists("fewshot_positive").count() == 0
    assert ds.exists("fewshot_negative").count() == 0


def test_operator_call_from_python(ds, fo):
    import fiftyone.operators as foo

    foo.get_operator(URI + "start_session")(ds, embedding_field=EMB)
    foo.get_operator(URI + "label_positive")(ds, selected=class_ids(ds, "Bag", 2))
    foo.get_operator(URI + "label_negative")(ds, selected=class_ids(ds, "Bag", 2, exclude=True))
    r = foo.get_operator(URI + "train_and_label")(ds, mode="query", beta=1.0, gamma=0.5)
    assert r["settings"] == {"mode": "query", "beta": 1.0, "gamma": 0.5, "temperature": 1.0,
                             "calibrate": True, "whiten": "auto", "shrinkage": "auto",
                             "background_weight": "auto", "kernel_weight": "auto", "neighbor_weight": "auto",
                             "power": "auto"}
    # settings persist as the defaults of the next click
    assert foo.get_operator(URI + "train_and_label")(ds)["settings"]["mode"] == "query"


def test_working_subset_cached_until_view_changes(ds, fo):
    start(ds, subset_size=30)
    pos = class_ids(ds, "Sneaker", 2)
    neg = class_ids(ds, "Sneaker", 2, exclude=True)
    run("label_positive", ds, selected=pos)
    run("label_negative", ds, selected=neg)
    r1 = run("train_and_label", ds)
    first = set(ds.exists("fewshot_prediction").values("id"))
    assert len(first) == 30 and set(pos + neg) <= first
    r2 = run("train_and_label", ds)
    assert not r2["subset_redrawn"]
    assert set(ds.exists("fewshot_prediction").values("id")) == first
    # a one-off re-draw
    r3 = run("train_and_label", ds, resample_subset=True)
    assert r3["subset_redrawn"]
    # a different view draws a new subset from that view, labeled samples always in
    view = ds.match(fo.ViewField("ground_truth.label").is_in(["Sneaker", "Sandal", "Bag"]))
    r4 = run("train_and_label", ds, view=view)
    assert r4["subset_redrawn"]
    view_ids = set(view.values("id"))
    st = __import__("fiftyone.plugins.orgs.fewshot.few_shot_learning.operators.state", fromlist=["x"])
    fill = st.SessionState(ds).get_ids(st.SUBSET)
    assert set(fill) <= view_ids and not set(fill) & set(pos + neg)
    assert r4["num_in_scope"] == min(30, len(view_ids | set(pos + neg)))
    # labeling a subset member keeps the subset at its size
    more = [i for i in fill if i not in pos][:3]
    run("label_negative", ds, view=view, selected=more)
    r5 = run("train_and_label", ds, view=view)
    assert not r5["subset_redrawn"] and r5["num_in_scope"] == r4["num_in_scope"]


def test_the_same_filter_built_again_keeps_its_working_subset(ds, fo):
    # every Python call builds a new view, and the App sends views back with new stage
    # UUIDs: the subset is keyed by what the view selects, not by those
    start(ds, subset_size=30)
    run("label_positive", ds, selected=class_ids(ds, "Sneaker", 2))
    run("label_negative", ds, selected=class_ids(ds, "Sneaker", 2, exclude=True))

    def view():
        return ds.match(fo.ViewField("ground_truth.label").is_in(["Sneaker", "Sandal", "Bag", "Coat"]))

    assert run("train_and_label", ds, view=view())["subset_redrawn"]
    first = set(ds.match(fo.ViewField("fewshot_prediction.iteration") == 1).values("id"))
    r = run("train_and_label", ds, view=view())
    assert not r["subset_redrawn"]
    assert set(ds.match(fo.ViewField("fewshot_prediction.iteration") == 2).values("id")) == first
    assert run("show_subset", ds, view=view()) is not None


def test_randomize_subset_redraws_every_run(ds, fo):
    start(ds, subset_size=20, randomize_subset=True)
    run("label_positive", ds, selected=class_ids(ds, "Bag", 2))
    run("label_negative", ds, selected=class_ids(ds, "Bag", 2, exclude=True))
    assert run("train_and_label", ds)["subset_redrawn"]
    assert run("train_and_label", ds)["subset_redrawn"]


def test_samples_outside_inference_set_keep_predictions(ds, fo):
    start(ds)
    run("label_positive", ds, selected=class_ids(ds, "Bag", 2))
    run("label_negative", ds, selected=class_ids(ds, "Bag", 3, exclude=True))
    run("train_and_label", ds)
    before = dict(zip(*ds.values(["id", "fewshot_prediction.p_positive"])))
    view = ds.match(fo.ViewField("ground_truth.label") == "Bag")
    outside = set(ds.values("id")) - set(view.values("id"))
    run("train_and_label", ds, view=view, mode="query", temperature=0.1)
    after = dict(zip(*ds.values(["id", "fewshot_prediction.p_positive"])))
    assert all(after[i] == before[i] for i in outside)
    assert any(after[i] != before[i] for i in view.values("id"))


def test_session_persists_across_python_processes(ds, fo):
    start(ds)
    run("label_positive", ds, selected=class_ids(ds, "Bag", 2))
    ds.persistent = True
    try:
        code = (
            "import fiftyone as fo, fiftyone.operators as foo;"
            "r = foo.execute_operator('%sget_session', ctx=dict(dataset='%s')).result;"
            "print(r['num_positive'], r['embedding_field'])" % (URI, ds.name)
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ), check=True
        ).stdout.split()
        assert out[-2:] == ["2", EMB]
    finally:
        ds.persistent = False


def test_reset_deletes_only_session_fields(ds, fo):
    ds.add_sample_field("my_notes", fo.StringField)
    start(ds)
    run("label_positive", ds, selected=class_ids(ds, "Bag", 2))
    run("label_negative", ds, selected=class_ids(ds, "Bag", 2, exclude=True))
    run("train_and_label", ds)
    r = run("reset_session", ds)
    assert set(r["deleted_fields"]) == {"fewshot_positive", "fewshot_negative", "fewshot_prediction"}
    schema = ds.get_field_schema()
    assert EMB in schema and "my_notes" in schema and "ground_truth" in schema
    assert run("get_session", ds) == {"active": False, "dataset": ds.name}


def test_reset_keeps_a_prediction_field_the_session_did_not_create(ds, fo):
    start(ds, prediction_field="round1")
    run("reset_session", ds)
    # round1 was created by that session and is gone; now one we pre-create via a session
    start(ds, prediction_field="round2")
    st = __import__("fiftyone.plugins.orgs.fewshot.few_shot_learning.operators.state", fromlist=["x"])
    state = st.SessionState(ds)
    state.update(lambda cfg: dict(cfg, created_fields=[f for f in cfg["created_fields"] if f != "round2"]))
    run("reset_session", ds)
    assert ds.has_field("round2") and not ds.has_field("round1")


def test_delegated_execution(ds, fo):
    from fiftyone.operators.delegated import DelegatedOperationService
    import fiftyone.operators as foo

    svc = DelegatedOperationService()
    res = foo.execute_operator(URI + "start_session", ctx=dict(dataset=ds, params={"embedding_field": EMB}, request_delegation=True))
    assert res.delegated
    queued = [o for o in svc.get_queued_operations(dataset_name=ds.name)]
    assert queued
    for o in queued:
        svc.execute_operation(o)
    assert run("get_session", ds)["active"]
    run("label_positive", ds, selected=class_ids(ds, "Bag", 2))
    run("label_negative", ds, selected=class_ids(ds, "Bag", 2, exclude=True))
    foo.execute_operator(URI + "train_and_label", ctx=dict(dataset=ds, request_delegation=True))
    for o in svc.get_queued_operations(dataset_name=ds.name):
        svc.execute_operation(o)
    assert ds.exists("fewshot_prediction").count() == len(ds)


def test_views_the_plugin_set_score_their_base_view_when_asked(ds, fo):
    """The panel's Train (base_view) on the suggestions or predictions view it set
    scores the view they came from; plain calls score the view given."""
    start(ds)
    run("label_positive", ds, selected=class_ids(ds, "Bag", 2))
    run("label_negative", ds, selected=class_ids(ds, "Bag", 2, exclude=True))
    run("train_and_label", ds)
    base = ds.match(fo.ViewField("ground_truth.label").is_in(["Bag", "Sneaker", "Trouser"]))
    for op, kw in (("show_predictions", {}), ("suggest_samples", {"num_samples": 5})):
        r = run(op, ds, view=base, **kw)
        shown = fo.DatasetView._build(ds, r["view"]) if "view" in r else ds.select(r["ids"], ordered=True)
        sent_back = fo.DatasetView._build(ds, shown._serialize())  # as the App sends it back
        t = run("train_and_label", ds, view=sent_back, base_view=True)
        assert t["num_in_scope"] == len(base) + 2 and t["scope"]["derived_from"] in ("predictions", "suggestions")
        plain = run("train_and_label", ds, view=sent_back)
        assert plain["scope"]["derived_from"] is None
        if op == "suggest_samples":
            assert plain["num_in_scope"] == 5 + 4  # the suggestions and the labeled samples


def test_two_tabs_each_keep_the_view_behind_their_grid(ds, fo):
    """Tab A shows suggestions, then tab B shows predictions of another view: tab
    A's panel Train still scores the view its suggestions came from."""
    start(ds)
    run("label_positive", ds, selected=class_ids(ds, "Bag", 2))
    run("label_negative", ds, selected=class_ids(ds, "Bag", 2, exclude=True))
    run("train_and_label", ds)
    base_a = ds.match(fo.ViewField("ground_truth.label").is_in(["Bag", "Sneaker", "Trouser"]))
    a = run("suggest_samples", ds, view=base_a, num_samples=5)
    run("show_predictions", ds, view=ds.match(fo.ViewField("ground_truth.label") == "Coat"))  # tab B
    grid_a = ds.select(a["ids"], ordered=True)
    t = run("train_and_label", ds, view=grid_a, base_view=True)
    assert t["scope"]["derived_from"] == "suggestions" and t["num_in_scope"] == len(base_a) + 2


def test_background_weight_takes_auto_or_a_number(ds):
    """From Python (validated by FiftyOne's operator executor): "auto", a number
    and a numeric string are accepted; what the run used is in its summary."""
    start(ds)
    run("label_positive", ds, selected=class_ids(ds, "Bag", 3))
    run("label_negative", ds, selected=class_ids(ds, "Bag", 6, exclude=True))
    r = run("train_and_label", ds, background_weight=1.5, whiten="off")
    assert r["settings"]["background_weight"] == 1.5 and r["scorer"]["background_weight"] == 1.5
    assert r["scorer"]["concept"] is None and r["scorer"]["whitened"] is False
    r = run("train_and_label", ds, background_weight="auto", whiten="auto")
    assert r["settings"]["background_weight"] == "auto" and r["scorer"]["concept"] in ("rare", "common")
    assert r["scorer"]["background_weight"] == (3.0 if r["scorer"]["concept"] == "rare" else 0.0)
    assert run("train_and_label", ds, background_weight="2")["scorer"]["background_weight"] == 2.0


def test_neighbor_weight_takes_auto_or_a_number(ds):
    """The pool neighbors' smoothing: a number is used as given (whatever the
    concept), "auto" follows the rare/common decision and the labels' balance,
    a bad value is refused before anything is written, and the run says what it used."""
    start(ds)
    run("label_positive", ds, selected=class_ids(ds, "Bag", 5))
    run("label_negative", ds, selected=class_ids(ds, "Bag", 8, exclude=True))
    r = run("train_and_label", ds, neighbor_weight=0.3)
    assert r["settings"]["neighbor_weight"] == 0.3 and r["scorer"]["neighbor_weight"] == 0.3
    assert 0.1 <= r["scorer"]["neighbor_share"] <= 0.5
    assert run("train_and_label", ds, neighbor_weight="0")["scorer"]["neighbor_weight"] == 0.0
    # numpy's scalars from Python: a str subclass once met FiftyOne's "Invalid value type"
    assert run("train_and_label", ds, neighbor_weight=np.str_("0.2"))["scorer"]["neighbor_weight"] == 0.2
    assert run("train_and_label", ds, neighbor_weight=np.float32(0.25))["scorer"]["neighbor_weight"] == 0.25
    r = run("train_and_label", ds, neighbor_weight="auto")
    want = 0.5 if r["scorer"]["concept"] == "rare" else 0.0
    assert r["settings"]["neighbor_weight"] == "auto" and r["scorer"]["neighbor_weight"] == want
    _refused_before_any_write(ds, "neighbor_weight must be auto or a number from 0 to 1", neighbor_weight="1.5")


def _refused_before_any_write(ds, message, **params):
    """``train_and_label`` with ``params`` fails with ``message`` and writes nothing."""
    from fiftyone.operators.executor import ExecutionError

    before = ds.values("fewshot_prediction.run_id")
    with pytest.raises(ExecutionError, match=message):
        run("train_and_label", ds, **params)
    assert ds.values("fewshot_prediction.run_id") == before


def test_kernel_weight_takes_auto_or_a_number(ds):
    """The nearest-labels term: a number or a numeric string from Python is
    used as given, "auto" follows the rare/common decision (3 positive labels of
    a rare concept: off), a bad value is refused before anything is written."""
    start(ds)
    run("label_positive", ds, selected=class_ids(ds, "Bag", 3))
    run("label_negative", ds, selected=class_ids(ds, "Bag", 6, exclude=True))
    r = run("train_and_label", ds, kernel_weight=0.5)
    assert r["settings"]["kernel_weight"] == 0.5 and r["scorer"]["kernel_weight"] == 0.5
    assert run("train_and_label", ds, kernel_weight="0")["scorer"]["kernel_weight"] == 0.0
    r = run("train_and_label", ds, kernel_weight="auto")
    want = 1.0 if r["scorer"]["concept"] == "common" else 0.0
    assert r["settings"]["kernel_weight"] == "auto" and r["scorer"]["kernel_weight"] == want
    _refused_before_any_write(ds, "kernel_weight must be auto or a finite number >= 0", kernel_weight="lots")


def test_shrinkage_takes_auto_or_a_number_and_the_form_shows_it(ds):
    """The whitening's shrinkage: "auto" (a rare concept's falls as positive
    labels grow) or a number, from Python or the form; it persists as the next
    click's default like every setting (a session started before "auto" keeps
    its 100 until set), and a bad value is refused before anything is written."""
    import fiftyone.operators as foo
    from fiftyone.operators.executor import ExecutionContext, ExecutionError
    from test_bad_input import form_error

    start(ds)
    run("label_positive", ds, selected=class_ids(ds, "Bag", 10))
    run("label_negative", ds, selected=class_ids(ds, "Bag", 10, exclude=True))
    r = run("train_and_label", ds, whiten="on", shrinkage="25")
    assert r["settings"]["shrinkage"] == 25.0 and r["scorer"]["shrinkage"] == 25.0
    assert run("train_and_label", ds)["scorer"]["shrinkage"] == 25.0  # persisted
    ctx = ExecutionContext(request_params={"dataset_name": ds.name, "view": ds.view()._serialize(), "params": {}})
    prop = foo.get_operator(URI + "train_and_label").resolve_input(ctx).type.properties["shrinkage"]
    assert prop.default == "25.0"  # the form shows what the next click uses
    r = run("train_and_label", ds, whiten="auto", shrinkage="auto")
    assert r["settings"]["shrinkage"] == "auto" and r["scorer"]["concept"] == "rare"
    assert r["scorer"]["whitened"] and r["scorer"]["shrinkage"] == 30.0  # 3000 / 10^2
    assert "shrinkage must be auto or a finite number" in form_error("train_and_label", ds, shrinkage="strong")
    before = ds.values("fewshot_prediction.run_id")
    with pytest.raises(ExecutionError, match="shrinkage must be"):
        run("train_and_label", ds, shrinkage="strong")
    with pytest.raises(ExecutionError, match="shrinkage must be > 0 when whitening"):
        run("train_and_label", ds, shrinkage=0)
    assert ds.values("fewshot_prediction.run_id") == before


def test_power_takes_auto_or_a_number_and_the_run_says_which_it_used(ds, plugin):
    """The power transform (scoring/power.py): "auto" by default, 0.75 on
    Lite0's nonnegative embeddings; 1 turns it off, a number fixes it; it
    persists like every setting, the run's scorer summary and the panel say
    what it used, and a bad value is refused before anything is written."""
    import fiftyone.operators as foo
    from fiftyone.operators.executor import ExecutionContext, ExecutionError
    from test_bad_input import form_error

    start(ds)
    run("label_positive", ds, selected=class_ids(ds, "Bag", 5))
    run("label_negative", ds, selected=class_ids(ds, "Bag", 5, exclude=True))
    r = run("train_and_label", ds)
    assert r["settings"]["power"] == "auto" and r["scorer"]["power"] == 0.75
    line = plugin.panels.render.scorer_line(r["scorer"])
    assert "embeddings ^0.75" in line, line
    r = run("train_and_label", ds, power=1)
    assert r["settings"]["power"] == 1.0 and r["scorer"]["power"] == 1.0
    assert "embeddings ^" not in (plugin.panels.render.scorer_line(r["scorer"]) or "")
    assert run("train_and_label", ds)["scorer"]["power"] == 1.0  # persisted
    assert run("train_and_label", ds, power="auto")["scorer"]["power"] == 0.75
    ctx = ExecutionContext(request_params={"dataset_name": ds.name, "view": ds.view()._serialize(), "params": {}})
    prop = foo.get_operator(URI + "train_and_label").resolve_input(ctx).type.properties["power"]
    assert prop.default == "auto"  # the form shows what the next click uses
    assert "power must be auto or a number from 0.05 to 1" in form_error("train_and_label", ds, power="2")
    before = ds.values("fewshot_prediction.run_id")
    with pytest.raises(ExecutionError, match="power must be auto or a number"):
        run("train_and_label", ds, power="strong")
    assert ds.values("fewshot_prediction.run_id") == before


def test_a_session_from_before_the_power_setting_gets_the_default_the_form_shows(ds):
    """A session whose stored settings have no ``power`` (started before the
    setting existed): the form and the click both use the default (the form
    showed 1 while the click used auto)."""
    import fiftyone.operators as foo
    from fiftyone.operators.executor import ExecutionContext

    start(ds)
    run("label_positive", ds, selected=class_ids(ds, "Bag", 5))
    run("label_negative", ds, selected=class_ids(ds, "Bag", 5, exclude=True))
    st = __import__("fiftyone.plugins.orgs.fewshot.few_shot_learning.operators.state", fromlist=["x"])
    st.SessionState(ds).update(lambda cfg: dict(cfg, scorer={k: v for k, v in cfg["scorer"].items() if k != "power"}))
    ctx = ExecutionContext(request_params={"dataset_name": ds.name, "view": ds.view()._serialize(), "params": {}})
    prop = foo.get_operator(URI + "train_and_label").resolve_input(ctx).type.properties["power"]
    r = run("train_and_label", ds)
    assert prop.default == r["settings"]["power"] == "auto" and r["scorer"]["power"] == 0.75
