"""No label is ever lost: re-labeling is idempotent, and label calls from several
threads and processes at once keep every label; what the grid shows (the label
fields) is what the session counts and what training uses."""

import json
import os
import random
import subprocess
import sys
import threading
import time

import pytest

from conftest import HERE_TESTS, run

POS, NEG = "fewshot_positive", "fewshot_negative"


def field_labels(ds):
    """``{id: "positive"|"negative"}`` from the label fields (what the grid shows)."""
    ds.reload()  # operators in other threads may hold another instance of the dataset
    ids, p, n = ds.values(["id", POS, NEG])
    out = {}
    for i, a, b in zip(ids, p, n):
        assert not (a and b), "sample %s shows both labels" % i
        if a:
            out[i] = "positive"
        elif b:
            out[i] = "negative"
    return out


def assert_consistent(ds, expected):
    """Fields, session counts and the trainer's label counts all equal ``expected``."""
    got = field_labels(ds)
    assert got == expected
    s = run("get_session", ds)
    npos = sum(1 for v in expected.values() if v == "positive")
    assert (s["num_positive"], s["num_negative"]) == (npos, len(expected) - npos)
    if npos and len(expected) > npos:
        t = run("train_and_label", ds)
        assert (t["num_positive_labels"], t["num_negative_labels"]) == (npos, len(expected) - npos)


def test_relabeling_the_same_samples_keeps_their_labels(synth):
    ds = synth
    run("start_session", ds, embedding_field="emb")
    a, b, c, d = ds.values("id")[:4]
    run("label_positive", ds, sample_ids=[a, b])
    r = run("label_positive", ds, sample_ids=[a])
    assert r["num_positive"] == 2 and r["num_changed"] == 0
    run("label_negative", ds, sample_ids=[c, d])
    r = run("label_negative", ds, sample_ids=[c, d])
    assert r["num_negative"] == 2 and r["num_changed"] == 0
    assert_consistent(ds, {a: "positive", b: "positive", c: "negative", d: "negative"})


def test_overlapping_bulk_labels_are_all_kept(synth):
    ds = synth
    run("start_session", ds, embedding_field="emb")
    ids = ds.values("id")
    run("label_positive", ds, sample_ids=ids[:300])
    r = run("label_positive", ds, sample_ids=ids[150:450])
    assert r["num_positive"] == 450 and r["num_changed"] == 150
    run("label_negative", ds, sample_ids=ids[500:])
    expected = {i: "positive" for i in ids[:450]}
    expected.update({i: "negative" for i in ids[500:]})
    assert_consistent(ds, expected)


ACTIONS = ("label_positive", "label_negative", "clear_labels")
RESULT = {"label_positive": "positive", "label_negative": "negative", "clear_labels": None}


def _rounds(own, seed, rounds):
    """The (action, targets) a worker performs: random actions on its own samples."""
    rng = random.Random(seed)
    return [(rng.choice(ACTIONS), rng.sample(own, 8)) for _ in range(rounds)]


def _expected(plans):
    exp = {}
    for plan in plans:
        for action, targets in plan:
            for i in targets:
                if RESULT[action] is None:
                    exp.pop(i, None)
                else:
                    exp[i] = RESULT[action]
    return exp


def test_concurrent_label_calls_from_threads_lose_nothing(synth):
    """Six threads label at the same moment, 50 rounds, while trains run."""
    ds = synth
    run("start_session", ds, embedding_field="emb")
    ids = ds.values("id")
    nthreads, rounds = 6, 50
    plans = [_rounds(ids[t * 100 : (t + 1) * 100], t, rounds) for t in range(nthreads)]
    barrier = threading.Barrier(nthreads)
    errors = []
    stop = threading.Event()

    def worker(plan):
        try:
            for action, targets in plan:
                barrier.wait()
                run(action, ds, sample_ids=targets)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)
            barrier.abort()

    def trainer():
        while not stop.is_set():
            try:
                run("train_and_label", ds)
            except Exception as e:
                msg = str(e)
                if "at least one positive" not in msg and "is running since" not in msg:
                    errors.append(e)

    threads = [threading.Thread(target=worker, args=(p,)) for p in plans]
    tt = threading.Thread(target=trainer)
    for t in threads + [tt]:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    tt.join()
    assert not errors, errors[:3]
    assert_consistent(ds, _expected(plans))


def test_concurrent_label_calls_from_processes_lose_nothing(synth):
    """Three processes label their own samples, 50 rounds each, at once; one
    round in two also re-labels samples another process owns the same way."""
    ds = synth
    ds.persistent = True
    try:
        run("start_session", ds, embedding_field="emb")
        ids = ds.values("id")
        nproc, rounds = 3, 50
        plans = [_rounds(ids[k * 150 : (k + 1) * 150], 100 + k, rounds) for k in range(nproc)]
        shared = ids[550:560]  # every process labels these positive, every round
        procs = []
        for plan in plans:
            code = (
                "ds = fo.load_dataset(%r)\n"
                "for action, targets in %r:\n"
                "    op(action, ds, sample_ids=targets)\n"
                "    op('label_positive', ds, sample_ids=%r)\n"
                "out = 'ok'" % (ds.name, plan, shared)
            )
            procs.append(subprocess.Popen(
                [sys.executable, os.path.join(HERE_TESTS, "client.py"), code],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
            ))
        for p in procs:
            out, err = p.communicate(timeout=600)
            assert p.returncode == 0, err[-3000:]
            assert json.loads(out.strip().splitlines()[-1]) == "ok"
        expected = _expected(plans)
        expected.update({i: "positive" for i in shared})
        assert_consistent(ds, expected)
    finally:
        ds.persistent = False


def test_labels_racing_a_reset_leave_no_stray_values(synth, fo):
    """A label call racing reset_session never leaves label values behind that a
    later session would show as labels."""
    ds = synth
    ids = ds.values("id")
    for trial in range(5):
        run("start_session", ds, embedding_field="emb")
        stop = threading.Event()

        def labeler():
            k = 0
            while not stop.is_set():
                try:
                    run("label_positive", ds, sample_ids=ids[k % 500 : k % 500 + 20])
                except Exception:
                    pass  # "no session" once reset
                k += 20

        t = threading.Thread(target=labeler)
        t.start()
        run("reset_session", ds)
        stop.set()
        t.join()
        run("start_session", ds, embedding_field="emb")
        assert field_labels(ds) == {}, "a new session shows labels of the reset one"
        assert run("get_session", ds)["num_positive"] == 0
        run("reset_session", ds)
        ds.reload()
        raw = ds._sample_collection.count_documents({"$or": [{POS: {"$ne": None}}, {NEG: {"$ne": None}}]})
        assert raw == 0, "label values left on %d samples after reset" % raw


def test_a_label_given_while_a_reset_keeps_labels_is_tagged_or_refused(synth, plugin, monkeypatch):
    """reset_session(keep_labels=True) racing a label call from another tab: the
    label is kept as a tag, or the call says it was not kept; never a success
    whose label is then deleted with the field."""
    ds = synth
    session = plugin.operators.session
    orig = session.keep_labels_as_tags

    def slow(dataset):  # tagging many samples takes a while anyway
        out = orig(dataset)
        time.sleep(1.0)
        return out

    monkeypatch.setattr(session, "keep_labels_as_tags", slow)
    ids = ds.values("id")
    run("start_session", ds, embedding_field="emb")
    run("label_positive", ds, sample_ids=ids[:3])
    t = threading.Thread(target=run, args=("reset_session", ds), kwargs={"keep_labels": True})
    t.start()
    time.sleep(0.4)
    try:
        run("label_positive", ds, sample_ids=[ids[10]])
        told = None
    except Exception as e:
        told = str(e)
    t.join()
    ds.reload()
    tagged = set(ds.match_tags("fewshot:positive").values("id"))
    assert set(ids[:3]) <= tagged
    # (refused: "no session", or "reset while labeling" with its value taken back)
    assert ids[10] in tagged or told is not None, "a successful label call was lost"


def test_a_refused_reset_that_keeps_labels_leaves_the_session(synth):
    """A reset refused by the labels check (a sample marked both ways by hand)
    changes nothing: the session goes on and the fix the message asks for works."""
    ds = synth
    ids = ds.values("id")
    run("start_session", ds, embedding_field="emb")
    run("label_positive", ds, sample_ids=ids[:3])
    run("label_negative", ds, sample_ids=ids[3:6])
    run("train_and_label", ds)
    s = ds[ids[0]]
    s[NEG] = True  # a hand edit: positive and negative
    s.save()
    with pytest.raises(Exception, match="both positive and negative"):
        run("reset_session", ds, keep_labels=True)
    g = run("get_session", ds)
    assert g["active"] and g["iteration"] == 1
    run("clear_labels", ds, sample_ids=[ids[0]])
    assert run("reset_session", ds, keep_labels=True)["kept_labels_as_tags"] == {"num_positive": 2, "num_negative": 3}


def test_a_sample_marked_both_ways_is_refused_by_the_train_form(synth):
    """An adversarial tester: the refusal came at run time, so Python got
    FiftyOne's whole traceback (24-34 lines of executor frames) around it."""
    from test_bad_input import form_error

    ds = synth
    ids = ds.values("id")
    run("start_session", ds, embedding_field="emb")
    run("label_positive", ds, sample_ids=ids[:3])
    run("label_negative", ds, sample_ids=ids[3:6])
    assert form_error("train_and_label", ds) is None
    s = ds[ids[0]]
    s[NEG] = True  # a hand edit: positive and negative
    s.save()
    assert "1 sample(s) are marked both positive and negative" in form_error("train_and_label", ds)
    with pytest.raises(Exception) as e:
        run("train_and_label", ds)
    assert "Traceback" not in str(e.value) and "marked both" in str(e.value)


@pytest.mark.parametrize("keep_labels", [False, True])
def test_a_reset_killed_midway_is_finished_by_the_next_start(synth, keep_labels):
    """SIGKILL after the reset ended the session and before it deleted the
    label fields: the next session showed (and trained on) the old session's
    labels at iteration 0, and never deleted the old prediction field. The
    next Start finishes the reset first (tags kept labels, if asked)."""
    ds = synth
    ds.persistent = True
    try:
        ids = ds.values("id")
        run("start_session", ds, embedding_field="emb")
        run("label_positive", ds, sample_ids=ids[:3])
        run("label_negative", ds, sample_ids=ids[3:8])
        run("train_and_label", ds)
        code = (
            "import os, signal, importlib\n"
            "ds = fo.load_dataset(%r)\n"
            "assert foo.get_operator(URI + 'get_session') is not None\n"
            "s = importlib.import_module('fiftyone.plugins.orgs.fewshot.few_shot_learning.operators.session')\n"
            "s._delete_own_fields = lambda *a: os.kill(os.getpid(), signal.SIGKILL)\n"
            "op('reset_session', ds, keep_labels=%r)\n" % (ds.name, keep_labels)
        )
        p = subprocess.run([sys.executable, os.path.join(HERE_TESTS, "client.py"), code],
                           capture_output=True, text=True, env=dict(os.environ), timeout=300)
        assert p.returncode == -9, p.stderr[-2000:]
        ds.reload()
        assert ds.has_field(POS) and ds.has_field("fewshot_prediction")  # what the kill left
        r = run("start_session", ds, embedding_field="emb")
        assert (r["num_positive"], r["num_negative"], r["iteration"]) == (0, 0, 0)
        ds.reload()
        assert ds.exists("fewshot_prediction").count() == 0  # (declared anew, empty)
        assert field_labels(ds) == {}
        tagged = (len(ds.match_tags("fewshot:positive")), len(ds.match_tags("fewshot:negative")))
        assert tagged == ((3, 5) if keep_labels else (0, 0))
        assert run("get_session", ds)["run"] is None
    finally:
        ds.persistent = False


def test_in_the_modal_the_label_buttons_label_the_open_sample_not_the_selection(synth):
    """A new user ticked two tiles, opened a third and clicked Label Negative in
    the modal, where the panel says "the open sample": the two ticked samples
    were labeled, the open one was not."""
    import fiftyone.operators as foo

    from conftest import URI

    ds = synth
    ids = ds.values("id")
    run("start_session", ds, embedding_field="emb")
    run("label_positive", ds, sample_ids=[ids[0]])
    ctx = {"dataset": ds, "selected": ids[1:3], "current_sample": ids[0], "params": {}}
    foo.execute_operator(URI + "label_negative", ctx=ctx).raise_exceptions()
    assert field_labels(ds) == {ids[0]: "negative"}
    r = foo.execute_operator(URI + "label_positive", ctx=ctx).result
    assert r["num_targeted"] == 1 and field_labels(ds) == {ids[0]: "positive"}
