"""Scale-out on FiftyOne's own engines: a 3-member replica set, a client process
(the App's host) and a ``fiftyone delegated launch`` worker with its own cache
directory (another machine, in effect); and a primary killed mid write-back."""

import os
import subprocess
import sys
import time

import pytest

from mongod import ReplicaSet, client_env, run_client, start_client

SETUP = (
    "ds = synth(%r, %d, seed=%d)\n"
    "op('start_session', ds, embedding_field='emb')\n"
    "ids, cl = ds.limit(3000).values(['id', 'cluster'])\n"
    "op('label_positive', ds, sample_ids=[i for i, c in zip(ids, cl) if c == 1][:8])\n"
    "op('label_negative', ds, sample_ids=[i for i, c in zip(ids, cl) if c != 1][:8])\n"
)
STATE = ("s = op('get_session', ds)\n"
         "out = {'preds': predictions(ds), 'iteration': s['iteration'], 'history': len(s['history']),"
         " 'run': s['run'], 'labels': [s['num_positive'], s['num_negative']], 'coll': ds._sample_collection_name}")


@pytest.fixture(scope="module")
def rs():
    r = ReplicaSet()
    yield r
    r.stop()


def _worker(env):
    exe = os.path.join(os.path.dirname(sys.executable), "fiftyone")
    return subprocess.Popen([exe, "delegated", "launch"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_done(rs, operator, timeout=240):
    ops = rs.client()["fiftyone"]["delegated_ops"]
    deadline = time.time() + timeout
    while time.time() < deadline:
        doc = ops.find_one({"operator": operator}, sort=[("queued_at", -1)])
        if doc and doc.get("run_state") in ("completed", "failed"):
            return doc
        time.sleep(1)
    raise AssertionError("the delegated run did not finish")


def test_whole_loop_with_a_delegated_worker_on_another_cache(rs, tmp_path):
    """Immediate train from the client, then the same train queued and run by a
    worker with a cold cache of its own: same predictions, one more iteration and
    history entry, labels untouched."""
    name = "fewshot-rs-loop"
    env = client_env(rs.uri, cache_dir=str(tmp_path / "client-cache"))
    first = run_client(SETUP % (name, 20_000, 3) + "op('train_and_label', ds)\n" + STATE, env)
    assert first["run"]["status"] == "complete" and len(first["preds"]) == 20_000
    run_client("ds = fo.load_dataset(%r)\n"
               "foo.execute_operator(URI + 'train_and_label', ctx=dict(dataset=ds, request_delegation=True))\n"
               "out = 1" % name, env)
    worker = _worker(client_env(rs.uri, cache_dir=str(tmp_path / "worker-cache")))
    try:
        doc = _wait_done(rs, "@fewshot/few_shot_learning/train_and_label")
    finally:
        worker.kill()
        worker.wait()
    assert doc["run_state"] == "completed", doc.get("run_state")
    assert os.listdir(str(tmp_path / "worker-cache"))  # the worker built its own cache
    second = run_client("ds = fo.load_dataset(%r)\n" % name + STATE, env)
    assert second["iteration"] == 2 and second["history"] == 2 and second["run"]["status"] == "complete"
    assert second["labels"] == first["labels"] == [8, 8]
    a, b = first["preds"], second["preds"]
    assert a.keys() == b.keys()
    assert {v[0] for v in b.values()} == {second["run"]["id"]} != {v[0] for v in a.values()}
    assert max(abs(a[i][2] - b[i][2]) for i in a) < 1e-6


def test_primary_killed_mid_write_back_the_run_completes(rs, tmp_path):
    """The primary stalls the third prediction write and is SIGKILLed while the
    write is in flight: the writes are retried against the new primary and the
    run completes, every sample written by it, labels untouched."""
    name = "fewshot-rs-failover"
    env = client_env(rs.uri, cache_dir=str(tmp_path / "cache"))
    setup = run_client(SETUP % (name, 30_000, 4) + "out = ds._sample_collection_name", env)
    ns = "fiftyone." + setup
    primary = rs.primary()
    rs.fail_point(primary, {"skip": 2}, failCommands=["update"], namespace=ns,
                  blockConnection=True, blockTimeMS=20_000)
    p = start_client("ds = fo.load_dataset(%r)\nr = op('train_and_label', ds)\n" % name + STATE
                     + "\nout['r'] = r", env)
    coll = rs.client()["fiftyone"][setup]
    deadline = time.time() + 120
    while coll.count_documents({"fewshot_prediction": {"$exists": True}}) == 0:
        assert time.time() < deadline and p.poll() is None, p.communicate()
        time.sleep(0.2)
    time.sleep(1.0)  # the third write is now blocked on the primary
    t_kill = time.time()
    rs.kill(primary)
    out, err = p.communicate(timeout=240)
    assert p.returncode == 0, err[-4000:]
    import json

    r = json.loads(out.strip().splitlines()[-1])
    assert r["run"]["status"] == "complete", r["run"]
    assert len(r["preds"]) == 30_000 and {v[0] for v in r["preds"].values()} == {r["r"]["run_id"]}
    assert r["labels"] == [8, 8]
    assert rs.primary() != primary
    print("failover: run finished %.1f s after the kill" % (time.time() - t_kill))
