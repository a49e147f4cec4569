"""Label-next suggestions and the quality readout, on the real Fashion-MNIST dataset."""

import numpy as np
import pytest

from conftest import class_ids, run, EMB


@pytest.fixture
def trained(ds):
    run("start_session", ds, embedding_field=EMB)
    run("label_positive", ds, selected=class_ids(ds, "Trouser", 3))
    run("label_negative", ds, selected=class_ids(ds, "Trouser", 3, exclude=True))
    return ds


def test_suggest_needs_predictions(ds):
    from fiftyone.operators.executor import ExecutionError

    run("start_session", ds, embedding_field=EMB)
    with pytest.raises(ExecutionError, match="No predictions yet"):
        run("suggest_samples", ds)


def test_suggestions_mix_top_scored_and_uncertain_unlabeled(trained, fo, plugin):
    ds = trained
    run("train_and_label", ds)
    labeled = set(class_ids(ds, "Trouser", 3) + class_ids(ds, "Trouser", 3, exclude=True))
    r = run("suggest_samples", ds, num_samples=8, top_fraction=0.25, random_fraction=0)
    assert r["num_suggested"] == 8 and r["num_top_scored"] == 2 and r["num_boundary"] == 6
    ids = r["ids"]
    assert len(set(ids)) == 8 and not labeled & set(ids)
    p = {i: v for i, v in zip(*ds.values(["id", "fewshot_prediction.p_positive"])) if i not in labeled}
    ranked = sorted(p, key=lambda i: -p[i])
    assert ids[:2] == ranked[:2]
    rest = [i for i in p if i not in ids[:2]]
    closest = sorted(rest, key=lambda i: abs(p[i] - 0.5))[:6]
    assert sorted(abs(p[i] - 0.5) for i in ids[2:]) == sorted(abs(p[i] - 0.5) for i in closest)
    # the grid's note says how uncertain "uncertain" is (a new user read "the most
    # uncertain" over P 0.97-1.0 and 0-0.06) and which iteration picked them
    near = [p[i] for i in ids[2:]]
    assert r["boundary_range"] == [round(min(near), 3), round(max(near), 3)]
    note = plugin.operators.ops_review.suggest_note(r)
    assert "after iteration 1" in note
    assert "the next 6 have P(positive) closest to 0.5 (%.2f to %.2f)" % (min(near), max(near)) in note

    # a random share: unlabeled, not top-scored, no repeats
    r = run("suggest_samples", ds, num_samples=10, top_fraction=0.2, random_fraction=0.3)
    assert (r["num_top_scored"], r["num_boundary"], r["num_random"]) == (2, 5, 3)
    assert len(set(r["ids"])) == 10 and not labeled & set(r["ids"])
    assert not set(r["ids"][7:]) & set(ranked[:2])

    # more asked than there are unlabeled samples: the counts are those of the picks
    unl = len(ds) - len(labeled)
    r = run("suggest_samples", ds, num_samples=unl + 50, top_fraction=0.1, random_fraction=0.3)
    assert r["num_suggested"] == unl and r["num_random"] == round(unl * 0.3)
    assert r["num_top_scored"] + r["num_boundary"] + r["num_random"] == unl

    # respects the current view: only its samples are suggested
    view = ds.match(fo.ViewField("ground_truth.label") != "Trouser")
    r = run("suggest_samples", ds, view=view, num_samples=5)
    assert set(r["ids"]) <= set(view.values("id"))


def test_suggest_bad_input(trained):
    from fiftyone.operators.executor import ExecutionError

    run("train_and_label", trained)
    for kw, msg in (({"num_samples": 0}, ">= 1"), ({"top_fraction": 2}, "between 0 and 1"),
                    ({"num_samples": "many"}, "num_samples"), ({"random_fraction": -0.1}, "Random fraction"),
                    ({"top_fraction": 0.8, "random_fraction": 0.5}, "more than 1")):
        with pytest.raises(ExecutionError, match=msg):
            run("suggest_samples", trained, **kw)


def test_quality_readout_is_reported_and_kept_in_history(trained, plugin):
    ds = trained
    r1 = run("train_and_label", ds, ground_truth_field="ground_truth", positive_class="Trouser",
             precision_k=5)
    q = r1["quality"]
    # recompute from the dataset: scored = unlabeled samples with a prediction
    labeled = set(class_ids(ds, "Trouser", 3) + class_ids(ds, "Trouser", 3, exclude=True))
    rows = [(p["p_positive"], gt == "Trouser", p.label)
            for i, p, gt in zip(*ds.values(["id", "fewshot_prediction", "ground_truth.label"]))
            if i not in labeled]
    probs = np.array([r[0] for r in rows])
    truth = np.array([r[1] for r in rows])
    order = np.argsort(-probs, kind="stable")
    t = truth[order]
    ap = (np.cumsum(t) / np.arange(1, len(t) + 1) * t).sum() / t.sum()
    pred = probs >= 0.5
    assert q["num_scored"] == len(rows) and q["num_true_positive"] == int(truth.sum())
    assert q["average_precision"] == pytest.approx(ap, abs=2e-3)
    assert q["precision_at_k"] == pytest.approx(t[:5].mean()) and q["k"] == 5
    assert q["f1"] == pytest.approx(2 * (pred & truth).sum() / (pred.sum() + truth.sum()), abs=1e-4)
    assert q["ground_truth_field"] == "ground_truth" and q["positive_class"] == "Trouser"
    assert q["average_precision"] > 0.5  # real images: trousers are easy

    run("label_positive", ds, selected=class_ids(ds, "Trouser", 5)[3:])
    r2 = run("train_and_label", ds, ground_truth_field="ground_truth", positive_class="Trouser")
    sc = r2["scorer"]  # 5 positive labels: a rare concept whitens with shrinkage 3000 / 5^2 -> 100
    assert sc["concept"] == "rare" and sc["whitened"] and sc["shrinkage"] == 100.0, sc
    hist = run("get_session", ds)["history"]
    assert [h["quality"]["num_scored"] for h in hist[-2:]] == [q["num_scored"], q["num_scored"] - 2]
    assert r2["quality"]["k"] == 100 or r2["quality"]["k"] == r2["quality"]["num_scored"]
    # without a ground-truth field: no readout
    assert run("train_and_label", ds)["quality"] is None
    run("label_positive", ds, selected=class_ids(ds, "Trouser", 10)[5:])
    sc = run("train_and_label", ds)["scorer"]  # 10 positive labels: 3000 / 10^2
    assert sc["concept"] == "rare" and sc["whitened"] and sc["shrinkage"] == 30.0, sc
    last = run("get_session", ds)["last_train"]  # what the panel renders
    # (named as the Advanced settings' input and the train form name it: it said "pool background")
    assert "pool mean weight 3, whitened (shrinkage 30)" in plugin.panels.render.scorer_line(last["scorer"])
    # the nearest-labels term: 10 positives outnumber 3 negatives, so labeled negatives only;
    # once negatives are as many, half its negative side is pool rows (and the panel says so)
    assert sc["kernel_weight"] == 0.5 and not sc["kernel_pool_rows"], sc
    assert sc["neighbor_weight"] == 0.0  # (nor the pool neighbors' smoothing)
    assert "pool neighbors" not in plugin.panels.render.scorer_line(last["scorer"])
    run("label_negative", ds, selected=class_ids(ds, "Trouser", 10, exclude=True)[3:])
    sc = run("train_and_label", ds)["scorer"]
    assert sc["concept"] == "rare" and sc["kernel_weight"] == 0.5 and sc["kernel_pool_rows"], sc
    last = run("get_session", ds)["last_train"]
    assert "nearest labels 0.5 (and pool rows)" in plugin.panels.render.scorer_line(last["scorer"])
    assert sc["neighbor_weight"] == 0.5 and 0.1 <= sc["neighbor_share"] <= 0.5, sc
    line = "pool neighbors 0.5 (top %.0f%%)" % (100 * sc["neighbor_share"])
    assert line in plugin.panels.render.scorer_line(last["scorer"])


def test_negatives_picked_by_suggestions_shrink_the_pool_rows_share(ds, plugin):
    """The nearest-labels term's pool rows stand in for random negatives: their
    share of its negative side is half times the share of negative labels that
    suggestions did not pick (picked ones are the hard negatives the rows
    diluted), as the run's scorer records and the train used."""
    run("start_session", ds, embedding_field=EMB)
    run("label_positive", ds, selected=class_ids(ds, "Trouser", 6))
    run("label_negative", ds, selected=class_ids(ds, "Trouser", 6, exclude=True))
    sc = run("train_and_label", ds)["scorer"]
    assert sc["concept"] == "rare" and sc["kernel_pool_rows"] and sc["kernel_pool_share"] == 0.5, sc
    ids = run("suggest_samples", ds, num_samples=10)["ids"]
    _answer(ds, ids)
    # more random negatives than positives, so the rows stay in whatever the answers were
    run("label_negative", ds, selected=class_ids(ds, "Trouser", 30, exclude=True)[6:])
    truth = dict(zip(*ds.select(ids).values(["id", "ground_truth.label"])))
    picked = {i for i in ids if truth[i] != "Trouser"}  # (some may be among the 30 as well)
    negatives = picked | set(class_ids(ds, "Trouser", 30, exclude=True))
    sc = run("train_and_label", ds)["scorer"]
    assert sc["concept"] == "rare" and sc["recalibrated_on"] == 10, sc
    want = 0.5 * (len(negatives) - len(picked)) / len(negatives)
    assert 0 < want < 0.5 and sc["kernel_pool_share"] == pytest.approx(want, abs=1e-3), (sc, len(picked))
    last = run("get_session", ds)["last_train"]  # what the panel renders
    line = "nearest labels 0.5 (and pool rows: %.2g of its negative side)" % sc["kernel_pool_share"]
    assert line in plugin.panels.render.scorer_line(last["scorer"])


def test_random_draws_of_a_suggestion_count_as_suggested(trained, plugin):
    """A suggestion is recorded whole, its random share too (recording only the
    top-scored and boundary samples measured worse in bench_suggest.py): the
    calibration, the whitening's label count and the pool rows' share count
    all of it as picked."""
    ds = trained
    state = plugin.operators.state.SessionState(ds)
    run("train_and_label", ds)
    r = run("suggest_samples", ds, num_samples=10, top_fraction=0.2, random_fraction=0.5)
    assert (r["num_top_scored"], r["num_boundary"], r["num_random"]) == (2, 3, 5)
    assert state.suggested_batches() == [r["ids"]]


@pytest.mark.parametrize(
    "kw, msg",
    [
        ({"positive_class": "Trouser"}, "needs a ground-truth field"),
        ({"ground_truth_field": "ground_truth"}, "Name the positive class"),
        ({"ground_truth_field": "nope", "positive_class": "Trouser"}, "does not exist"),
        ({"ground_truth_field": "ground_truth", "positive_class": "Dragon"}, "does not occur"),
        ({"ground_truth_field": "filepath", "positive_class": "Trouser"}, "does not occur"),
        ({"ground_truth_field": EMB, "positive_class": "Trouser"}, "must be a string"),
        ({"ground_truth_field": "ground_truth", "positive_class": "Trouser", "precision_k": 0}, ">= 1"),
    ],
)
def test_quality_readout_bad_input(trained, kw, msg):
    from fiftyone.operators.executor import ExecutionError

    from test_bad_input import form_error

    assert msg in form_error("train_and_label", trained, **kw)
    with pytest.raises(ExecutionError, match=msg):
        run("train_and_label", trained, **kw)
    assert not trained.has_field("fewshot_prediction") or trained.exists("fewshot_prediction").count() == 0


def test_a_wrong_label_is_flagged_until_it_is_fixed(ds):
    """One sandal labeled positive among trousers: the train flags it (its
    leave-one-out score disagrees with the label), get_session and the
    show_possibly_mislabeled view list it, and re-labeling it clears the flag."""
    run("start_session", ds, embedding_field=EMB)
    trousers = class_ids(ds, "Trouser", 6)
    wrong = class_ids(ds, "Sandal", 1)[0]
    neg = [i for i in class_ids(ds, "Trouser", exclude=True) if i != wrong][:8]
    run("label_positive", ds, selected=trousers + [wrong])
    run("label_negative", ds, selected=neg)
    r = run("train_and_label", ds)
    assert r["possibly_mislabeled"]["positive"] == [wrong], r["possibly_mislabeled"]
    assert r["scorer"]["calibration"] in ("mixture", "platt")
    sess = run("get_session", ds)
    assert sess["possibly_mislabeled"]["positive"] == [wrong] and sess["possibly_mislabeled"]["count"] >= 1
    view = run("show_possibly_mislabeled", ds)
    assert view["ids"][0] == wrong and set(view["ids"]) <= set(trousers + [wrong] + neg)
    # the user fixes it: the flag goes at once (before the next train)
    run("label_negative", ds, selected=[wrong])
    assert wrong not in run("get_session", ds)["possibly_mislabeled"]["positive"]
    r = run("train_and_label", ds)
    assert wrong not in (r["possibly_mislabeled"] or {}).get("positive", [])


def _answer(ds, ids):
    """Labels ``ids`` from the ground truth (Trouser = positive), as a user would."""
    truth = dict(zip(*ds.select(ids).values(["id", "ground_truth.label"])))
    pos = [i for i in ids if truth[i] == "Trouser"]
    if pos:
        run("label_positive", ds, selected=pos)
    if len(pos) < len(ids):
        run("label_negative", ds, selected=[i for i in ids if truth[i] != "Trouser"])


def test_labels_of_a_labeled_suggestion_recalibrate_the_next_train(trained, plugin):
    """Suggested samples are picked by score: once the user labels (nearly)
    all of a suggestion, the next train refits the calibration on those labels
    and says so. A half-labeled suggestion does not count (the user may have
    picked by what the samples show), concurrent calls keep both batches, and
    reset forgets them."""
    import threading

    ds = trained
    state = plugin.operators.state.SessionState(ds)
    r = run("train_and_label", ds)
    assert r["scorer"]["recalibrated_on"] == 0 and "recalibrated" not in r["calibration"]
    first = run("suggest_samples", ds, num_samples=10)["ids"]
    assert state.suggested_batches() == [first]
    _answer(ds, first)
    r = run("train_and_label", ds)
    assert r["scorer"]["recalibrated_on"] == 10, r["scorer"]
    assert r["calibration"]["recalibrated"]["num_labels"] == 10
    assert r["calibration"]["prior_method"] == "recalibrated"
    last = run("get_session", ds)["last_train"]  # what the panel renders
    assert "calibrated on 10 labels from suggestions" in plugin.panels.render.scorer_line(last["scorer"])

    half = run("suggest_samples", ds, num_samples=10)["ids"]
    _answer(ds, half[:5])
    assert run("train_and_label", ds)["scorer"]["recalibrated_on"] == 10  # only the full batch

    out = []
    threads = [threading.Thread(target=lambda: out.append(run("suggest_samples", ds, num_samples=4)["ids"]))
               for _ in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    batches = state.suggested_batches()
    assert len(batches) == 4 and sorted(batches[2:]) == sorted(out)

    run("reset_session", ds, keep_labels=True)
    assert state.suggested_batches() == []
