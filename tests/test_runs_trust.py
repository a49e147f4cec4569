"""A prediction never looks current when it is not: every prediction says which
run wrote it, an interrupted or failed run is visible as such and the next
train repairs it, everything that can be validated is validated before the
first write, skipped samples lose their old prediction, one train at a time."""

import os
import threading
import time

import numpy as np
import pytest

from conftest import run
from mongod import Mongod, client_env, run_client, start_client


def label(ds, npos=10, nneg=10):
    ids, cl = ds.limit(2000).values(["id", "cluster"])
    run("label_positive", ds, sample_ids=[i for i, c in zip(ids, cl) if c == 1][:npos])
    run("label_negative", ds, sample_ids=[i for i, c in zip(ids, cl) if c != 1][:nneg])


def runs_of(ds):
    """``{id: (run_id, iteration, p_positive)}`` of samples with a prediction."""
    f = "fewshot_prediction"
    ids, r, it, p = ds.exists(f).values(["id", f + ".run_id", f + ".iteration", f + ".p_positive"])
    return {i: (a, b, c) for i, a, b, c in zip(ids, r, it, p)}


def test_every_prediction_names_its_run_and_iteration(synth):
    ds = synth
    run("start_session", ds, embedding_field="emb")
    label(ds, 3, 3)
    r1 = run("train_and_label", ds)
    got = runs_of(ds)
    assert len(got) == len(ds)
    assert {v[:2] for v in got.values()} == {(r1["run_id"], 1)}
    s = run("get_session", ds)
    assert s["run"]["status"] == "complete" and s["run"]["id"] == r1["run_id"]
    assert s["run"]["num_written"] == len(ds)
    r2 = run("train_and_label", ds, mode="query")
    assert r2["run_id"] != r1["run_id"]
    assert {v[:2] for v in runs_of(ds).values()} == {(r2["run_id"], 2)}


def test_get_sessions_summary_shows_an_interrupted_run_as_not_current(synth, plugin):
    """What the operator browser shows for get_session (its output form)."""
    ds = synth
    summary = plugin.operators.ops_review.session_summary
    assert "No few-shot session" in summary(run("get_session", ds))
    run("start_session", ds, embedding_field="emb")
    label(ds, 3, 2)
    run("train_and_label", ds)
    text = summary(run("get_session", ds))
    assert "**Iteration 1**: 3 positive, 2 negative labels" in text and "Iteration 1 complete" in text
    assert "not all current" not in text
    # a run whose lease is gone while its record says running: what a SIGKILL leaves
    plugin.operators.state.SessionState(ds).update(
        lambda c: dict(c, run=dict(c["run"], status="running", lease="gone")))
    text = summary(run("get_session", ds))
    assert "**Predictions are not all current**: Iteration 1 interrupted" in text


def test_show_predictions_after_an_interrupted_first_train(synth, plugin):
    """A first train killed mid-write leaves iteration 0 and some predictions:
    Show Predictions shows them (a review: it said "No predictions yet")."""
    ds = synth
    run("start_session", ds, embedding_field="emb")
    label(ds, 3, 2)
    run("train_and_label", ds)
    plugin.operators.state.SessionState(ds).update(
        lambda c: dict(c, iteration=0, run=dict(c["run"], status="running", lease="gone")))
    assert run("show_predictions", ds)["num_samples"] > 0


def test_a_bad_vector_late_in_the_field_fails_before_any_write(ds20k, fo):
    """A 32-d vector in the last sample of a 64-d field: the error comes before
    the first prediction is written (it used to come after 16k writes)."""
    ds = ds20k
    run("start_session", ds, embedding_field="emb")
    label(ds)
    run("train_and_label", ds)
    before = runs_of(ds)
    last = ds.values("id")[-1]
    ds.select(last).set_values("emb", [np.ones(32, np.float32)])
    with pytest.raises(Exception, match="dimension"):
        run("train_and_label", ds, mode="query", beta=2.0)
    assert runs_of(ds) == before
    s = run("get_session", ds)
    assert s["iteration"] == 1 and s["run"]["status"] == "complete"


def test_skipped_samples_lose_their_previous_prediction(synth, fo):
    ds = synth
    run("start_session", ds, embedding_field="emb")
    label(ds, 3, 3)
    run("train_and_label", ds)
    labeled = set(ds.exists("fewshot_positive").values("id")) | set(ds.exists("fewshot_negative").values("id"))
    a, b, c = [i for i in ds.values("id") if i not in labeled][:3]
    ds.select(a).set_values("emb", [np.full(64, np.nan, np.float32)])
    ds.select(b).set_values("emb", [np.zeros(64, np.float32)])
    ds.select(c).set_values("emb", [None])
    r = run("train_and_label", ds)
    assert r["num_skipped_invalid_embedding"] == 2 and r["num_skipped_missing_embedding"] == 1
    got = runs_of(ds)
    assert a not in got and b not in got and c not in got
    assert len(got) == len(ds) - 3 and {v[1] for v in got.values()} == {2}


def test_two_trains_at_once_never_record_one_iteration_twice(ds20k):
    ds = ds20k
    run("start_session", ds, embedding_field="emb")
    label(ds)
    run("train_and_label", ds)
    for _ in range(3):
        before = run("get_session", ds)
        results, errors = [], []
        barrier = threading.Barrier(2)

        def train(mode):
            barrier.wait()
            try:
                results.append(run("train_and_label", ds, mode=mode))
            except Exception as e:
                errors.append(str(e))

        ts = [threading.Thread(target=train, args=(m,)) for m in ("distance", "query")]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        for e in errors:
            assert "is running since" in e
        after = run("get_session", ds)
        assert after["iteration"] - before["iteration"] == len(results)
        assert len(after["history"]) - len(before["history"]) == len(results)
        assert len({r["iteration"] for r in results}) == len(results)
        last = max(results, key=lambda r: r["iteration"])
        assert {v[:2] for v in runs_of(ds).values()} == {(last["run_id"], last["iteration"])}


def test_a_refused_second_train_leaves_the_running_trains_progress(ds20k, plugin, monkeypatch):
    ds = ds20k
    run("start_session", ds, embedding_field="emb")
    label(ds)
    monkeypatch.setattr(plugin.operators.train, "BLOCK", 1000)
    writer = plugin.fastdb.PredictionWriter
    orig = writer.write

    def slow(self, *a, **k):  # a long write phase (a big view, a busy database)
        time.sleep(0.2)
        return orig(self, *a, **k)

    monkeypatch.setattr(writer, "write", slow)
    state = plugin.operators.workflow.SessionState(ds)
    current = plugin.operators.workflow.current_progress
    first = threading.Thread(target=run, args=("train_and_label", ds))
    first.start()
    deadline = time.time() + 30
    while (current(state) or {}).get("label", "Starting") == "Starting" and time.time() < deadline:
        time.sleep(0.05)
    assert current(state)["operation"] == "train_and_label"
    with pytest.raises(Exception, match="is running since"):
        run("train_and_label", ds)
    # every tab's panel still sees the first train running (its busy state comes from this record)
    assert (current(state) or {}).get("operation") == "train_and_label"
    first.join()
    assert current(state) is None  # and it is gone once that train ends


def test_working_subset_size_must_be_a_whole_number(synth):
    from fiftyone.operators.executor import ExecutionError

    with pytest.raises(ExecutionError, match="integer"):
        run("start_session", synth, embedding_field="emb", subset_size=2.5)
    with pytest.raises(ExecutionError, match="integer|subset_size"):
        run("start_session", synth, embedding_field="emb", subset_size="ten")
    assert run("get_session", synth)["active"] is False


# -- a process killed during the write-back, on a private MongoDB ------------------


@pytest.fixture(scope="module")
def mongod():
    m = Mongod()
    yield m
    m.stop()


def labeled_client_dataset(mongod, env, name, n, seed, k, train=False):
    """In a client process: ``n`` samples in the private mongod, a session, ``k``
    positive and ``k`` negative labels (and a first train). Returns the samples'
    collection and the train's result."""
    out = run_client(
        "ds = synth(%r, %d, seed=%d)\n"
        "op('start_session', ds, embedding_field='emb')\n"
        "ids, cl = ds.limit(3000).values(['id', 'cluster'])\n"
        "op('label_positive', ds, sample_ids=[i for i, c in zip(ids, cl) if c == 1][:%d])\n"
        "op('label_negative', ds, sample_ids=[i for i, c in zip(ids, cl) if c != 1][:%d])\n"
        "out = {'coll': ds._sample_collection_name, 'train': op('train_and_label', ds) if %r else None}"
        % (name, n, seed, k, k, train), env,
    )
    return mongod.client()["fiftyone"][out["coll"]], out["train"]


def test_a_train_killed_mid_write_is_shown_interrupted_and_the_next_repairs_it(mongod, tmp_path):
    env = client_env(mongod.uri, cache_dir=str(tmp_path / "cache"))
    name = "fewshot-kill"
    samples, first = labeled_client_dataset(mongod, env, name, 30_000, 5, 10, train=True)
    ns = "fiftyone." + samples.name
    # the second batch of prediction updates, and every later one, stalls and then fails
    mongod.fail_point({"skip": 1}, failCommands=["update"], namespace=ns,
                      blockConnection=True, blockTimeMS=60_000, errorCode=91)
    try:
        p = start_client("ds = fo.load_dataset(%r)\nout = op('train_and_label', ds, mode='query')" % name, env)
        deadline = time.time() + 120
        while True:
            n = samples.count_documents(
                {"fewshot_prediction.run_id": {"$nin": [first["run_id"], None]}})
            if n > 0:
                break
            assert p.poll() is None, p.communicate()[1][-3000:]
            assert time.time() < deadline, "the train never wrote"
            time.sleep(0.02)
        time.sleep(0.5)
        p.kill()
        p.wait()
    finally:
        mongod.fail_point("off")
    state = run_client(
        "ds = fo.load_dataset(%r)\n"
        "s = op('get_session', ds)\n"
        "out = {'session': s, 'runs': sorted({(v[0], v[1]) for v in predictions(ds).values()})}" % name,
        env,
    )
    run_info = state["session"]["run"]
    assert run_info["status"] == "interrupted"
    assert 0 < run_info["num_written"] < 30_000
    assert "interrupted" in run_info["message"] and "Train again" in run_info["message"]
    assert state["session"]["iteration"] == 1
    assert len(state["runs"]) == 2  # a visible mix: the interrupted run and the one before
    assert [first["run_id"], 1] in state["runs"]
    repaired = run_client(
        "ds = fo.load_dataset(%r)\n"
        "r = op('train_and_label', ds, mode='query')\n"
        "out = {'r': r, 's': op('get_session', ds)['run'], 'runs': sorted({(v[0], v[1]) for v in predictions(ds).values()}),"
        " 'n': len(predictions(ds))}" % name,
        env,
    )
    assert repaired["s"]["status"] == "complete"
    assert repaired["runs"] == [[repaired["r"]["run_id"], 2]]
    assert repaired["n"] == 30_000


def test_a_write_concern_error_fails_the_run_visibly(mongod, tmp_path):
    """The server applies the writes but cannot confirm them as asked: the run
    fails with a clear message (it used to report success) and the next repairs."""
    env = client_env(mongod.uri, cache_dir=str(tmp_path / "cache"))
    name = "fewshot-wce"
    samples, _ = labeled_client_dataset(mongod, env, name, 3000, 6, 5)
    ns = "fiftyone." + samples.name
    mongod.fail_point("alwaysOn", failCommands=["update"], namespace=ns,
                      writeConcernError={"code": 64, "errmsg": "waiting for replication timed out"})
    try:
        failed = run_client(
            "ds = fo.load_dataset(%r)\n"
            "try:\n"
            "    op('train_and_label', ds)\n"
            "    out = {'raised': None}\n"
            "except Exception as e:\n"
            "    out = {'raised': str(e)[-400:], 'run': op('get_session', ds)['run']}" % name, env,
        )
    finally:
        mongod.fail_point("off")
    assert failed["raised"] and "not acknowledged" in failed["raised"]
    assert failed["run"]["status"] == "failed" and "Train again" in failed["run"]["message"]
    ok = run_client("ds = fo.load_dataset(%r)\nr = op('train_and_label', ds)\n"
                    "out = {'s': op('get_session', ds)['run']['status'], 'runs': sorted({v[0] for v in predictions(ds).values()}), 'r': r['run_id']}" % name, env)
    assert ok["s"] == "complete" and ok["runs"] == [ok["r"]]


def test_dropped_connections_during_the_write_are_retried(mongod, tmp_path):
    """The server drops the connection on two prediction writes (what a failover
    does): the writes are retried and the run completes, every sample written once."""
    env = client_env(mongod.uri, cache_dir=str(tmp_path / "cache"))
    name = "fewshot-drop"
    samples, _ = labeled_client_dataset(mongod, env, name, 25_000, 8, 5)
    ns = "fiftyone." + samples.name
    mongod.fail_point({"times": 2}, failCommands=["update"], namespace=ns, closeConnection=True)
    try:
        r = run_client("ds = fo.load_dataset(%r)\nr = op('train_and_label', ds)\n"
                       "out = {'r': r, 's': op('get_session', ds)['run'], "
                       "'runs': sorted({v[0] for v in predictions(ds).values()}), 'n': len(predictions(ds))}" % name, env)
    finally:
        mongod.fail_point("off")
    assert r["s"]["status"] == "complete" and r["runs"] == [r["r"]["run_id"]] and r["n"] == 25_000


def test_a_clone_says_its_predictions_are_not_its_sessions_and_the_next_train_replaces_them(synth):
    """An adversarial tester: a clone carries the source's predictions (its
    run IDs, its iteration 2); a session started on the clone showed iteration
    0 with no warning, and a working-subset train left the rest looking current."""
    ds = synth
    run("start_session", ds, embedding_field="emb")
    label(ds, 3, 3)
    run("train_and_label", ds)
    run("train_and_label", ds, view=ds.skip(200))
    before = runs_of(ds)
    clone = ds.clone()
    try:
        run("start_session", clone, embedding_field="emb", subset_size=50)
        s = run("get_session", clone)
        assert s["run"]["status"] != "complete"
        assert "%d predictions" % len(ds) in s["run"]["message"]
        assert "before this session" in s["run"]["message"]
        unset = clone.limit(200).values("id")
        clone.select(unset).set_field("fewshot_prediction", None).save()  # (these never had one)
        r = run("train_and_label", clone)
        got = runs_of(clone)
        assert {v[:2] for v in got.values()} == {(r["run_id"], 1)}  # all re-scored, not only the subset
        assert set(got) >= set(clone.skip(200).values("id"))
        assert len(set(got) & set(unset)) <= 50 + 6  # the subset and the labels, not every sample
        assert run("get_session", clone)["run"]["status"] == "complete"
        assert runs_of(ds) == before  # the source is untouched
    finally:
        clone.delete()


def _trained_clone(ds):
    """A clone of ``ds`` after a session on it trained once."""
    run("start_session", ds, embedding_field="emb")
    label(ds, 3, 3)
    run("train_and_label", ds)
    return ds.clone()


def test_a_clone_started_on_another_prediction_field_leaves_the_old_one_alone(synth):
    clone = _trained_clone(synth)
    try:
        run("start_session", clone, embedding_field="emb", prediction_field="other_pred")
        assert run("get_session", clone)["run"] is None
    finally:
        clone.delete()


def test_a_clone_switched_to_another_field_keeps_the_copied_predictions(synth):
    """A review: a clone's session started on the copied field, then switched
    to its own field; the next train deleted the 600 copied predictions (and
    the panel kept warning about a field the session no longer wrote)."""
    clone = _trained_clone(synth)
    try:
        copied = runs_of(clone)
        run("start_session", clone, embedding_field="emb")
        assert run("get_session", clone)["run"]["status"] == "inherited"
        run("start_session", clone, embedding_field="emb", prediction_field="mine")
        assert run("get_session", clone)["run"] is None
        r = run("train_and_label", clone)
        assert not r["removed_unfinished"] and not r["repaired_runs"]
        assert runs_of(clone) == copied
        # back on the copied field: inherited again, and the next train re-scores them
        run("start_session", clone, embedding_field="emb", prediction_field="fewshot_prediction")
        assert run("get_session", clone)["run"]["status"] == "inherited"
        r = run("train_and_label", clone)
        assert {v[0] for v in runs_of(clone).values()} == {r["run_id"]}
    finally:
        clone.delete()


def test_predictions_left_undeclared_are_shown_as_not_current_by_the_next_session(synth):
    """The prediction field deleted while a train wrote it (or by a script)
    leaves values in the documents that the schema does not list: the next
    session declared the field anew and showed them as current (no warning),
    and a subset train left them in place."""
    ds = synth
    run("start_session", ds, embedding_field="emb")
    label(ds, 3, 3)
    r1 = run("train_and_label", ds)
    run("reset_session", ds)
    # what the train's writes leave once the field is gone from the schema
    ds._sample_collection.update_many({}, {"$set": {"fewshot_prediction": {
        "_cls": "Classification", "label": "positive", "confidence": 0.9, "run_id": r1["run_id"], "iteration": 1}}})
    ds.reload()
    assert not ds.has_field("fewshot_prediction")
    run("start_session", ds, embedding_field="emb", subset_size=100)
    s = run("get_session", ds)
    assert s["run"]["status"] == "inherited" and s["run"]["num_written"] == len(ds)
    label(ds, 3, 3)
    r2 = run("train_and_label", ds)
    assert {v[0] for v in runs_of(ds).values()} == {r2["run_id"]}  # all re-scored, the subset's or not
    assert run("get_session", ds)["run"]["status"] == "complete"
