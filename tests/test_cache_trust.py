"""The embedding cache can only make a click faster, never wrong: hostile field
names cannot steer it outside its root, corrupt files are detected and rebuilt,
writes racing a click never leave it stamped as fresh, killed saves leave nothing."""

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from conftest import HERE_TESTS, run


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("FEWSHOT_CACHE_DIR", str(d))
    return d


def preds(ds):
    return dict(zip(*ds.values(["id", "fewshot_prediction.p_positive"])))


def labeled(ds, npos=5, nneg=5):
    ids, cl = ds.values(["id", "cluster"])
    run("label_positive", ds, sample_ids=[i for i, c in zip(ids, cl) if c == 1][:npos])
    run("label_negative", ds, sample_ids=[i for i, c in zip(ids, cl) if c != 1][:nneg])


def fresh_preds(ds, plugin):
    """Predictions of a train with no cache at all (every vector read from MongoDB)."""
    plugin.embeddings.cache.clear(ds)
    run("train_and_label", ds)
    return preds(ds)


def files_under(root):
    out = set()
    for d, _, names in os.walk(root):
        out.update(os.path.join(d, n) for n in names)
    return out


def test_a_field_name_that_is_a_path_cannot_touch_that_path(synth, fo, cache_dir, tmp_path):
    ds = synth
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("user data")
    field = str(victim)
    ds.set_values(field, ds.values("emb"))
    run("start_session", ds, embedding_field=field)
    labeled(ds)
    for _ in range(3):
        run("train_and_label", ds)
    assert (victim / "keep.txt").read_text() == "user data"
    assert sorted(os.listdir(victim)) == ["keep.txt"]
    root = os.path.realpath(cache_dir)
    for f in files_under(root):
        assert os.path.realpath(f).startswith(root + os.sep)
    assert run("train_and_label", ds)["embeddings_from_cache"] is True


@pytest.mark.parametrize("which", ["X.npy", "ids.npy", "valid.npy", "lma.npy"])
def test_a_corrupt_cache_file_is_detected_and_rebuilt(synth, plugin, cache_dir, which):
    ds = synth
    run("start_session", ds, embedding_field="emb")
    labeled(ds)
    run("train_and_label", ds)
    run("train_and_label", ds)  # the cache now serves the clicks
    hit = [f for f in files_under(cache_dir) if os.path.basename(f) == which]
    if not hit:
        pytest.skip("this cache layout has no %s" % which)
    rng = np.random.default_rng(0)
    for f in hit:
        size = os.path.getsize(f)
        with open(f, "r+b") as fh:  # same size, same .npy header, garbage data
            fh.seek(128)
            fh.write(rng.integers(0, 256, size - 128, dtype=np.uint8).tobytes())
    r = run("train_and_label", ds)
    got = preds(ds)
    assert r["embeddings_from_cache"] is False
    assert got == fresh_preds(ds, plugin)


def test_writes_racing_label_calls_never_leave_a_stale_cache(synth, fo, cache_dir, plugin):
    """A user's edit of the embeddings while label calls run: the next train must
    use the new vectors (25 trials)."""
    ds = synth
    run("start_session", ds, embedding_field="emb")
    labeled(ds)
    ids = ds.values("id")
    rng = np.random.default_rng(1)
    for trial in range(25):
        run("train_and_label", ds)  # warm cache
        stop = threading.Event()

        def labeler():
            k = 0
            while not stop.is_set():
                run("label_negative", ds, sample_ids=ids[400 + k % 50 : 401 + k % 50])
                k += 1

        t = threading.Thread(target=labeler)
        t.start()
        time.sleep(rng.uniform(0, 0.05))
        X = np.asarray(ds.values("emb"))
        ds.set_values("emb", list(X[:, ::-1].copy() + rng.normal(size=X.shape[1]).astype(np.float32)))
        time.sleep(rng.uniform(0, 0.05))
        stop.set()
        t.join()
        run("train_and_label", ds)
        got = preds(ds)
        assert got == fresh_preds(ds, plugin), "trial %d trained on stale vectors" % trial


def test_a_killed_cache_save_leaves_no_temporary_files(synth, fo, cache_dir, plugin):
    """SIGKILL while the cache is being written: the next click sweeps the
    leftovers and nothing half-written is ever used."""
    ds = synth
    ds.persistent = True
    try:
        run("start_session", ds, embedding_field="emb")
        labeled(ds)
        env = dict(os.environ, FEWSHOT_CACHE_DIR=str(cache_dir))
        code = (
            "import importlib\n"
            "ds = fo.load_dataset(%r)\n"
            "cache = importlib.import_module('few_shot_learning.embeddings.cache')\n"
            "n = 3_000_000\n"
            "ids = np.arange(n, dtype='>u8').view('S8').astype('S12')\n"
            "m = cache.Matrix(ids, np.ones((n, 64), np.float32), np.ones(n, bool), np.ones(n, bool), np.zeros(n, np.int64), 64)\n"
            "cache.save(ds, 'emb', m, [n, 0, 0])\n"
            "out = 'saved'" % ds.name
        )
        p = subprocess.Popen([sys.executable, os.path.join(HERE_TESTS, "client.py"), code], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 120
        while not any(".tmp" in f for f in files_under(cache_dir)):
            assert p.poll() is None, p.communicate()[1][-3000:]
            assert time.time() < deadline
            time.sleep(0.01)
        time.sleep(0.05)
        p.send_signal(signal.SIGKILL)
        p.wait()
        assert any(".tmp" in f for f in files_under(cache_dir))
        run("train_and_label", ds)
        run("train_and_label", ds)
        assert not [f for f in files_under(cache_dir) if ".tmp" in f]
        assert run("train_and_label", ds)["embeddings_from_cache"] is True
    finally:
        ds.persistent = False


def test_a_reset_during_the_warm_up_leaves_no_cache_behind(synth, plugin, monkeypatch):
    """start_session's warm-up still reading when the session is reset: the
    reset waits for it, so no cache is saved after the reset cleared it."""
    import os
    import time as _time

    import importlib

    fastdb = importlib.import_module(plugin.fastdb.__name__)  # the module itself, to patch it
    cache = plugin.embeddings.cache
    real = fastdb.scan_vectors

    def slow(*a, **kw):
        out = real(*a, **kw)
        slow.calls += 1
        _time.sleep(2.0)  # a big dataset: still reading when the user resets
        return out

    slow.calls = 0

    monkeypatch.setattr(fastdb, "scan_vectors", slow)
    session = plugin.operators.session  # called directly: the patched module instance
    session.start_session(synth, synth.view(), {"embedding_field": "emb"})
    _time.sleep(0.3)
    session.reset_session(synth)
    plugin.embeddings.warm.wait(synth)
    _time.sleep(0.5)  # a background save would land by now
    assert slow.calls == 1
    assert not os.path.exists(cache.dataset_dir(synth))


def test_the_cache_of_a_deleted_dataset_is_swept_and_nothing_else(synth, fo, plugin, cache_dir):
    """An adversarial tester: only a reset cleared a dataset's cache, so every
    deleted dataset (each non-persistent one) left its vectors on disk for good."""
    from conftest import make_synth

    cache = plugin.embeddings.cache
    gone = make_synth(fo, n=300)
    run("start_session", gone, embedding_field="emb")
    labeled(gone)
    run("train_and_label", gone)
    cache.wait_pending(cache.field_dir(gone, "emb"))
    gone_dir = cache.dataset_dir(gone)
    assert os.path.isdir(gone_dir) and os.path.exists(os.path.join(gone_dir, "db"))
    gone.delete()
    top = os.path.dirname(gone_dir)
    other_db, unmarked = os.path.join(top, "a" * 32), os.path.join(top, "b" * 32)
    for d, marker in ((other_db, "another database"), (unmarked, None)):
        os.makedirs(os.path.join(d, "f"))
        if marker:
            with open(os.path.join(d, "db"), "w") as f:
                f.write(marker)
    outside = os.path.join(os.path.dirname(str(cache_dir)), "elsewhere")  # (a user's link to another disk)
    os.makedirs(os.path.join(outside, "f"))
    with open(os.path.join(outside, "db"), "w") as f:
        f.write(plugin.fastdb.database_id())
    os.symlink(outside, os.path.join(top, "0" * 32))  # (listed first: the sweep goes on past it)
    run("start_session", synth, embedding_field="emb")
    labeled(synth)
    run("train_and_label", synth)
    assert not os.path.exists(gone_dir)
    assert os.path.isdir(os.path.join(outside, "f"))
    assert os.path.isdir(os.path.join(other_db, "f")) and os.path.isdir(os.path.join(unmarked, "f"))
    run("start_session", synth, embedding_field="emb")  # (a live dataset's cache stays)
    assert os.path.isdir(cache.dataset_dir(synth))
