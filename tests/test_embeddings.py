"""Real embedding computation: the offline EfficientNet-Lite0 zoo entry on real
Fashion-MNIST images, through load_zoo_model + compute_embeddings."""

import numpy as np
import pytest

from conftest import EMB, MODEL, class_ids, run


@pytest.fixture
def raw(fo, plugin, png_dir):
    """12 real images without embeddings."""
    import fmnist

    ds = fmnist.make_dataset("fewshot-test-raw", png_dir, 12, start=200)
    yield ds
    ds.delete()


def test_offline_model_registered_from_local_manifest(fo, plugin, base_dataset):
    import fiftyone.zoo as foz

    path = plugin.embeddings.zoo.register_offline_models()
    assert path in fo.config.model_zoo_manifest_paths
    assert MODEL in foz.list_zoo_models()
    model = foz.load_zoo_model(MODEL)
    assert model.has_embeddings
    # real ImageNet features: same-class images are closer than other-class ones
    X, y = base_dataset.values([EMB, "ground_truth.label"])
    X = np.stack(X)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = np.array(y)
    S = X @ X.T
    same = (y[:, None] == y[None, :]) & ~np.eye(len(y), dtype=bool)
    diff = y[:, None] != y[None, :]
    assert S[same].mean() > S[diff].mean() + 0.05


def test_start_computes_only_missing_and_records_model(raw, fo):
    r = run("start_session", raw, model=MODEL)
    assert r["embedding_field"] == EMB and r["num_computed"] == 12 and r["dim"] == 1280
    f = raw.get_field(EMB)
    assert isinstance(f, fo.VectorField)
    assert f.info["fewshot"] == {"model": MODEL, "dim": 1280}
    before = dict(zip(*raw.values(["id", EMB])))

    import fmnist

    raw.add_samples(
        [fo.Sample(filepath=p, ground_truth=fo.Classification(label=c))
         for p, c in fmnist.write_pngs(raw.first().filepath.rsplit("/", 1)[0], 3, start=300)]
    )
    r = run("start_session", raw, model=MODEL)
    assert r["num_computed"] == 3 and r["num_in_scope"] == 15
    after = dict(zip(*raw.values(["id", EMB])))
    for i, v in before.items():
        np.testing.assert_array_equal(after[i], v)
    assert all(after[i] is not None and len(after[i]) == 1280 for i in after)

    r = run("start_session", raw, model=MODEL)
    assert r["num_computed"] == 0


def test_train_computes_embeddings_of_new_samples(raw, fo):
    run("start_session", raw, model=MODEL, subset_size=6)
    assert raw.exists(EMB).count() == 6
    ids = raw.values("id")
    with_emb = set(raw.exists(EMB).values("id"))
    run("label_positive", raw, selected=[i for i in ids if i not in with_emb][:1])
    run("label_negative", raw, selected=[i for i in ids if i in with_emb][:1])
    r = run("train_and_label", raw)
    assert r["num_computed_embeddings"] == 1
    assert r["num_scored"] == 4 and r["num_in_scope"] == 6


def test_precomputed_field_without_record_is_checked_against_model(raw, fo, ExecutionError=None):
    from fiftyone.operators.executor import ExecutionError

    raw.set_values("mine", [np.ones(7, dtype=np.float32)] * len(raw))
    with pytest.raises(ExecutionError, match="makes 1280-d embeddings but field 'mine' holds 7-d"):
        run("start_session", raw, model=MODEL, embedding_field="mine")
    # without a model, precomputed vectors of any model are accepted as they are
    r = run("start_session", raw, embedding_field="mine")
    assert r["dim"] == 7 and r["num_computed"] == 0 and r["model"] is None


def test_partly_filled_field_of_other_dimension_is_refused(raw, fo):
    from fiftyone.operators.executor import ExecutionError

    raw.select(raw.values("id")[:2]).set_values(EMB, [np.ones(7, dtype=np.float32)] * 2)
    with pytest.raises(ExecutionError, match="makes 1280-d embeddings but field .* holds 7-d"):
        run("start_session", raw, model=MODEL)
    assert raw.exists(EMB).count() == 2  # nothing written


def test_train_computes_missing_unlabeled_embeddings_while_streaming(raw, fo):
    """A sample added after start has no embedding: the (cold) click computes
    it with the session's model and scores it too."""
    run("start_session", raw, model=MODEL)
    ids = raw.values("id")
    run("label_positive", raw, selected=ids[:1])
    run("label_negative", raw, selected=ids[1:2])
    s = raw.first()
    new = fo.Sample(filepath=s.filepath)
    raw.add_sample(new)
    r = run("train_and_label", raw)
    assert r["num_computed_embeddings"] == 1 and not r["embeddings_from_cache"]
    assert r["num_scored"] == len(raw) - 2 and r["num_skipped_missing_embedding"] == 0
    raw.reload()
    assert raw[new.id][EMB] is not None and raw[new.id]["fewshot_prediction"] is not None


def test_unreadable_image_is_skipped_not_blamed_on_the_model(raw, fo, tmp_path):
    """One file that cannot be read (moved, broken) made every Start and Train
    fail with "Model ... makes 1-d embeddings" (the dimension probe embedded
    that sample and got nothing), and was counted as computed."""
    run("start_session", raw, model=MODEL)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    s = raw.first()
    raw.add_samples([fo.Sample(filepath=str(bad)), fo.Sample(filepath=s.filepath)])
    r = run("start_session", raw, model=MODEL)
    assert r["num_computed"] == 1 and r["num_not_embedded"] == 1
    ids = raw.values("id")
    run("label_positive", raw, selected=ids[:1])
    run("label_negative", raw, selected=ids[1:2])
    r = run("train_and_label", raw)
    assert r["num_skipped_missing_embedding"] == 1 and r["num_scored"] == len(raw) - 3


def test_unreadable_images_are_skipped_by_the_dimension_probe(raw, fo, tmp_path):
    """A new field: the model's dimension comes from the first sample it can
    embed; with none among those tried, a clear refusal (not "1-d")."""
    from fiftyone.operators.executor import ExecutionError

    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    ds, only_bad = fo.Dataset(), fo.Dataset()
    try:
        ds.add_samples([fo.Sample(filepath=str(bad))] + [fo.Sample(filepath=p) for p in raw.values("filepath")[:4]])
        r = run("start_session", ds, model=MODEL)
        assert r["num_computed"] == 4 and r["num_not_embedded"] == 1 and r["dim"] == 1280
        only_bad.add_samples([fo.Sample(filepath=str(bad)) for _ in range(3)])
        with pytest.raises(ExecutionError, match="could not embed any of the 3 samples tried .*broken.png"):
            run("start_session", only_bad, model=MODEL)
        assert not only_bad.has_field(EMB)  # nothing declared or recorded
    finally:
        ds.delete()
        only_bad.delete()


def test_compute_records_the_model_before_it_writes(raw, fo, plugin):
    """A compute that dies midway (here: after its first chunk) leaves the
    field recorded as this model's, so that another model cannot later fill
    the rest of it and claim the whole field (the record came after the last
    chunk)."""
    fields = plugin.embeddings.fields

    def die(frac, label):
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        fields.compute_missing(raw, raw.values("id"), EMB, plugin.embeddings.zoo.load_model(MODEL), MODEL,
                               progress=die)
    raw.reload()
    assert raw.exists(EMB).count() > 0
    assert fields.recorded_info(raw, EMB) == {"model": MODEL, "dim": 1280}
