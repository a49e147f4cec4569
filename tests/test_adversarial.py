"""Defects an adversarial review found in the first rebuild (each test failed
before its fix): a stalled train that lost its lease, a lease renewal that died
on one error, a label made while a train read vectors, a reset racing a label
call, leftovers of a killed reset, repairs of more than one unfinished run,
empty and non-vector values, and raw errors."""

import os
import threading
import time

import numpy as np
import pytest

from conftest import cluster_ids, run


def labeled(ds, k=5):
    run("start_session", ds, embedding_field="emb", warm_cache=False)  # trains read MongoDB first
    ids, cl = ds.limit(3000).values(["id", "cluster"])
    run("label_positive", ds, sample_ids=[i for i, c in zip(ids, cl) if c == 1][:k])
    run("label_negative", ds, sample_ids=[i for i, c in zip(ids, cl) if c != 1][:k])


def runs_of(ds):
    return dict(zip(*ds.exists("fewshot_prediction").values(["id", "fewshot_prediction.run_id"])))


def in_thread(fn):
    out = {}

    def go():
        try:
            out["result"] = fn()
        except Exception as e:
            out["error"] = str(e)

    t = threading.Thread(target=go)
    t.start()
    return t, out


def test_a_stalled_train_that_lost_its_lease_records_and_writes_nothing_more(ds20k, plugin):
    ds = ds20k
    labeled(ds)
    run("train_and_label", ds)
    train, st = plugin.operators.train, plugin.operators.state
    entered, gate = threading.Event(), threading.Event()

    def stall(f, label):
        if label.startswith("Scored") and not entered.is_set():
            entered.set()
            gate.wait(120)  # stalled (a paused VM, a swapped-out process...)

    t, a = in_thread(lambda: train.train_and_label(ds, ds.view(), {"mode": "query"}, progress=stall))
    assert entered.wait(120)
    store = st.SessionState(ds).store  # not renewed for LEASE_SECONDS: it expired
    cur = store.get(st.LEASE_KEY)
    assert store.compare_and_set(st.LEASE_KEY, cur, dict(cur, expires=time.time() - 1))
    b = run("train_and_label", ds)  # another train takes over
    gate.set()
    t.join()
    assert "stalled" in a["error"]
    s = run("get_session", ds)
    assert s["run"]["id"] == b["run_id"] and s["run"]["status"] == "complete" and s["iteration"] == 2
    assert set(runs_of(ds).values()) == {b["run_id"]}


def test_a_lease_renewal_survives_a_failed_renewal(plugin):
    st = plugin.operators.state

    class FlakyStore(object):  # the execution store's contract, in memory: the first renewal fails
        def __init__(self):
            self.d, self.fail = {}, 1

        def get(self, k):
            return self.d.get(k)

        def set_if_absent(self, k, v):
            return self.d.setdefault(k, v) is v

        def compare_and_set(self, k, expected, v):
            if self.fail and not v.get("released"):
                self.fail -= 1
                raise ConnectionError("primary stepped down")
            if self.d.get(k) != expected:
                return False
            self.d[k] = v
            return True

    class S(object):
        store = FlakyStore()

    lease = st.Lease(S(), "train")
    lease.RENEW_EVERY = 0.05
    with lease:
        first = lease.value["expires"]
        time.sleep(0.5)
        assert lease.value["expires"] > first and not lease.lost
        lease.check()


def test_a_label_made_while_a_train_reads_vectors_is_written_as_that_label(ds20k, plugin):
    ds = ds20k
    labeled(ds)
    late = cluster_ids(ds, 1)[-5:]  # read after the label call (a read runs in _id order)
    train = plugin.operators.train

    def label_mid_read(f, label):
        if label.startswith("Read") and not label_mid_read.done:
            label_mid_read.done = True
            run("label_positive", ds, sample_ids=late)

    label_mid_read.done = False
    r = train.train_and_label(ds, ds.view(), {}, progress=label_mid_read)
    assert label_mid_read.done and r["embeddings_from_cache"] is False
    got = dict(zip(*ds.select(late).values(["id", "fewshot_prediction"])))
    assert all(p.label == "positive" and p.confidence == 1.0 and p.p_positive == 1.0 for p in got.values())
    assert run("get_session", ds)["run"]["status"] == "complete"


def test_an_old_label_calls_undo_never_erases_labels_of_a_new_session(synth, plugin):
    ds = synth
    fastdb, labels, st = plugin.fastdb, plugin.operators.labels, plugin.operators.state
    run("start_session", ds, embedding_field="emb")
    old_cfg = st.SessionState(ds).config
    ids = fastdb.to_bytes(ds.values("id")[:3])
    _, written_at = fastdb.set_label_flags(ds, ids, {"fewshot_positive": True, "fewshot_negative": None})
    run("reset_session", ds)  # (the old call's write landed before the reset here)
    run("start_session", ds, embedding_field="emb")
    time.sleep(0.01)
    run("label_positive", ds, sample_ids=fastdb.to_str(ids))  # the user labels them in the new session
    with pytest.raises(Exception, match="reset while labeling"):
        labels._undo_if_reset(ds, st.SessionState(ds), old_cfg, ids, written_at)
    assert run("get_session", ds)["num_positive"] == 3


def test_labels_left_by_a_killed_reset_are_owned_by_the_next_session(synth, plugin):
    ds = synth
    st = plugin.operators.state
    run("start_session", ds, embedding_field="emb")
    run("label_positive", ds, sample_ids=ds.values("id")[:2])
    st.SessionState(ds).store.delete(st.SESSION_KEY)  # a reset killed after its first step
    run("start_session", ds, embedding_field="emb")
    assert run("get_session", ds)["num_positive"] == 2  # still there: never lost silently
    run("reset_session", ds)
    ds.reload()
    assert not ds.has_field("fewshot_positive") and not ds.has_field("fewshot_negative")


def test_a_start_with_a_bad_field_name_fails_cleanly(synth):
    from fiftyone.operators.executor import ExecutionError

    with pytest.raises(ExecutionError, match="not a valid prediction field name"):
        run("start_session", synth, embedding_field="emb", prediction_field="bad\0name")
    synth.reload()
    assert not synth.has_field("fewshot_positive")


def test_every_unfinished_run_is_repaired(ds20k, fo, plugin):
    ds = ds20k
    labeled(ds)
    train = plugin.operators.train

    def fail_after_first_block(f, label):
        if label.startswith("Scored"):
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError):  # run A fails after its first block of writes
        train.train_and_label(ds, ds.view(), {"mode": "query"}, progress=fail_after_first_block)
    a = set(runs_of(ds).values())
    assert len(a) == 1 and len(runs_of(ds)) < len(ds)
    # run B is killed right after it recorded itself running (what a SIGKILL leaves)
    runs, st = plugin.operators.runs, plugin.operators.state
    runs.begin(st.SessionState(ds), runs.new_run_id(), 1, "gone", 0, {})
    view = ds.match(fo.ViewField("cluster") == 1)
    c = run("train_and_label", ds, view=view)  # scores the view and repairs both
    assert not set(runs_of(ds).values()) & a
    s = run("get_session", ds)
    assert s["run"]["status"] == "complete" and len(c["repaired_runs"]) == 2 and not s["unfinished_runs"]


def test_an_empty_vector_is_refused_from_the_cache_as_from_mongodb(synth):
    ds = synth
    run("start_session", ds, embedding_field="emb")
    run("label_positive", ds, sample_ids=cluster_ids(ds, 1, 3))
    run("label_negative", ds, sample_ids=cluster_ids(ds, 1, 3, exclude=True))
    run("train_and_label", ds)
    victim = cluster_ids(ds, 2)[-1]
    ds.select(victim).set_values("emb", [np.zeros(0, np.float32)])
    with pytest.raises(Exception, match="empty vectors|dimensions"):
        run("train_and_label", ds)


def test_values_that_are_not_vectors_get_a_message(synth):
    ds = synth
    # a cold read (the raw update below bypasses last_modified_at, which a warm cache trusts)
    run("start_session", ds, embedding_field="emb", warm_cache=False)
    run("label_positive", ds, sample_ids=cluster_ids(ds, 1, 3))
    run("label_negative", ds, sample_ids=cluster_ids(ds, 1, 3, exclude=True))
    from bson import ObjectId

    ds._sample_collection.update_one({"_id": ObjectId(cluster_ids(ds, 2)[-1])}, {"$set": {"emb": "not a vector"}})
    with pytest.raises(Exception, match="not vectors") as e:
        run("train_and_label", ds)
    assert "IndexError" not in str(e.value).splitlines()[-1]


def test_an_empty_cache_dir_setting_means_the_default(monkeypatch, plugin):
    monkeypatch.setenv("FEWSHOT_CACHE_DIR", "")
    assert plugin.embeddings.cache.cache_root() == os.path.join(os.path.expanduser("~"), ".cache", "fewshot-fiftyone")
