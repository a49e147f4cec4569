"""What a label change does to the samples around it: a sample whose label is
cleared or flipped loses the prediction that only copied its old label (it
would look like a confident model score), and label calls refuse to write
into label fields that are gone from the schema (the grid could not show
them and the next session would clear them)."""

import pytest

from conftest import flipping_labels, run, start_labeled

PRED = "fewshot_prediction"


def _trained(ds):
    pos, neg = start_labeled(ds)
    run("train_and_label", ds)
    return pos, neg


def test_cleared_or_flipped_label_drops_its_label_copy_prediction(synth):
    ds = synth
    pos, neg = _trained(ds)
    assert ds[pos[0]][PRED].confidence == 1.0 and ds[pos[0]][PRED].label == "positive"
    run("clear_labels", ds, sample_ids=[pos[0]])
    run("label_negative", ds, sample_ids=[pos[1]])
    run("label_positive", ds, sample_ids=[pos[2]])  # unchanged: keeps its prediction
    ds.reload()
    assert ds[pos[0]][PRED] is None  # no longer labeled: no model score yet
    assert ds[pos[1]][PRED] is None  # never a "positive 1.0" beside a negative label
    assert ds[pos[2]][PRED].label == "positive"
    # an unlabeled sample is never suggested on the strength of its old label
    s = run("suggest_samples", ds, num_samples=50)
    assert pos[0] not in s["ids"]
    # the next train scores it like any unlabeled sample
    run("train_and_label", ds)
    ds.reload()
    p = ds[pos[0]][PRED]
    assert p is not None and p["p_positive"] < 1.0
    assert ds[pos[1]][PRED].label == "negative" and ds[pos[1]][PRED].confidence == 1.0


def test_labeling_an_unlabeled_sample_drops_its_model_score(synth):
    ds = synth
    _trained(ds)
    ids = ds.values("id")
    labeled = set(ds.match({"$or": [{"fewshot_positive": True}, {"fewshot_negative": True}]}).values("id"))
    other = next(i for i in ids if i not in labeled)
    assert ds[other][PRED]["p_positive"] < 1.0
    run("label_positive", ds, sample_ids=[other])
    ds.reload()
    assert ds[other][PRED] is None  # the old score is not this label's prediction


@pytest.mark.parametrize("field", ["fewshot_negative", "fewshot_positive"])
def test_labels_are_refused_while_a_label_field_is_gone(synth, fo, field):
    ds = synth
    pos, neg = _trained(ds)
    ds.delete_sample_field(field)  # the user deleted it (or a keep_fields() view saved without it)
    other = [i for i in ds.values("id") if i not in pos + neg][:4]
    for op in ("label_negative", "label_positive", "clear_labels"):
        with pytest.raises(Exception, match="is gone from the dataset"):
            run(op, ds, sample_ids=other)
    # nothing was written where the grid cannot show it
    assert ds._sample_collection.count_documents({field: {"$exists": True}}) == 0
    # a new start declares it again; the other side's labels are kept
    run("start_session", ds, embedding_field="emb")
    s = run("get_session", ds)
    kept = "num_positive" if field == "fewshot_negative" else "num_negative"
    assert s[kept] == 5
    run("label_negative" if field == "fewshot_negative" else "label_positive", ds, sample_ids=other)
    ds.reload()
    assert ds.has_field(field) and ds.count_values(field)[True] == 4


def test_labels_are_refused_when_a_user_field_took_the_name(synth, fo):
    ds = synth
    pos, neg = _trained(ds)
    ds.delete_sample_field("fewshot_negative")
    ds.add_sample_field("fewshot_negative", fo.StringField)
    ds.set_values("fewshot_negative", ["mine"] * len(ds))
    with pytest.raises(Exception, match="not created by the few-shot plugin"):
        run("label_negative", ds, sample_ids=[ds.first().id])
    assert ds.count_values("fewshot_negative") == {"mine": len(ds)}


def test_reset_gives_the_app_settings_back_as_they_were(synth, fo):
    ds = synth
    assert ds.app_config.active_fields is None and ds.app_config.color_scheme is None
    _trained(ds)
    run("start_session", ds, embedding_field="emb", prediction_field="pred2")  # a second start
    ds.reload()
    assert ds.app_config.active_fields is not None  # the session shows its fields by default
    run("reset_session", ds)
    ds.reload()
    assert ds.app_config.active_fields is None  # the App's default again: every label field shown
    assert ds.app_config.color_scheme is None


def test_other_fields_get_colors_unlike_the_labels_and_a_users_pool_stays(synth, fo, plugin):
    """Coloring by value gives every class of the user's label fields a color
    from the pool: FiftyOne's default pool has the labels' red and green (a new
    user read a red "Pullover" beside a red negative). The session's pool has
    neither; a pool of the user's own is left as it is."""
    import colorsys

    ds = synth
    _trained(ds)
    ds.reload()
    pool = ds.app_config.color_scheme.color_pool
    hues = [colorsys.rgb_to_hsv(*(int(c[i:i + 2], 16) / 255 for i in (1, 3, 5))) for c in pool]
    red_or_green = [c for c, (h, s, v) in zip(pool, hues) if s > 0.5 and (h < 0.06 or h > 0.94 or 0.22 < h < 0.45)]
    assert pool and not red_or_green
    run("reset_session", ds)
    ds.reload()
    assert ds.app_config.color_scheme is None
    ds.app_config.color_scheme = fo.ColorScheme(color_pool=["#ee0000", "#00ee00"])
    ds.save()
    run("start_session", ds, embedding_field="emb")
    ds.reload()
    assert ds.app_config.color_scheme.color_pool == ["#ee0000", "#00ee00"]
    run("reset_session", ds)
    ds.reload()
    assert ds.app_config.color_scheme.color_pool == ["#ee0000", "#00ee00"]


def test_reset_keeps_app_settings_the_user_changed_meanwhile(synth, fo):
    ds = synth
    _trained(ds)
    ds.reload()
    active = ds.app_config.active_fields
    active.paths = list(active.paths) + ["cluster"]
    scheme = ds.app_config.color_scheme
    scheme.opacity = 0.5
    ds.save()
    run("reset_session", ds)
    ds.reload()
    assert "cluster" in ds.app_config.active_fields.paths
    assert not {"fewshot_prediction", "fewshot_positive"} & set(ds.app_config.active_fields.paths)
    assert ds.app_config.color_scheme.opacity == 0.5 and not ds.app_config.color_scheme.fields


def test_label_calls_leave_a_prediction_field_the_plugin_no_longer_owns(synth, fo):
    ds = synth
    pos, neg = _trained(ds)
    ds.delete_sample_field(PRED)  # the user deleted it and stored their own under that name
    ds.set_values(PRED, [fo.Classification(label="theirs")] * len(ds))
    run("clear_labels", ds, sample_ids=pos[:2])
    run("label_positive", ds, sample_ids=neg[:2])
    ds.reload()
    assert ds.count_values(PRED + ".label") == {"theirs": len(ds)}


def test_reset_keeps_color_by_value_when_the_users_own_colors_need_it(synth, fo):
    ds = synth
    _trained(ds)
    ds.reload()
    scheme = ds.app_config.color_scheme
    scheme.fields = list(scheme.fields) + [{"path": "cluster", "valueColors": [{"value": "1", "color": "#000000"}]}]
    ds.save()
    run("reset_session", ds)
    ds.reload()
    scheme = ds.app_config.color_scheme
    assert [f["path"] for f in scheme.fields] == ["cluster"] and scheme.color_by == "value"


def test_restarts_racing_label_calls_keep_their_fields_and_app_settings(synth, plugin):
    """start_session with a new prediction field while another thread labels
    (the App's thread pool, one shared in-memory dataset): every start succeeds,
    and its field and App settings are stored."""
    ds = synth
    pos, neg = _trained(ds)
    errors, names = [], ["pred_%d" % i for i in range(20)]
    with flipping_labels(ds, pos):
        for name in names:
            try:
                run("start_session", ds, embedding_field="emb", warm_cache=False, prediction_field=name)
            except Exception as e:
                errors.append(str(e).strip().splitlines()[-1][:200])
    assert not errors
    fastdb = plugin.fastdb
    stored = fastdb.stored_fields(ds, names)
    assert all(set(stored[n]["fields"]) >= {"run_id", "iteration", "p_positive"} for n in names)
    app = fastdb.stored_app_config(ds)
    assert set(names) <= set(app["active_fields"]["paths"])
    assert set(names) <= {f["path"] for f in app["color_scheme"]["fields"]}


def test_reset_unsets_color_by_when_only_colors_from_before_the_session_remain(synth, fo):
    ds = synth
    ds.app_config.color_scheme = fo.ColorScheme(fields=[{"path": "cluster", "fieldColor": "#000000"}])
    ds.save()
    _trained(ds)
    run("reset_session", ds)
    ds.reload()
    scheme = ds.app_config.color_scheme
    assert [f["path"] for f in scheme.fields] == ["cluster"] and scheme.color_by is None


def test_a_user_field_taking_the_prediction_name_mid_train_is_refused_clearly(synth, fo, plugin, monkeypatch):
    ds = synth
    _trained(ds)
    labels_mod = plugin.operators.labels
    orig = labels_mod.read_labels

    def meanwhile(dataset):  # the user's notebook, in another process, while this train starts
        coll = dataset._sample_collection.database["datasets"]
        coll.update_one({"_id": dataset._doc.id}, {"$pull": {"sample_fields": {"name": PRED}}})
        coll.update_one({"_id": dataset._doc.id}, {"$push": {"sample_fields": {
            "name": PRED, "ftype": "fiftyone.core.fields.StringField", "embedded_doc_type": None,
            "subfield": None, "fields": [], "db_field": PRED, "description": None, "info": None,
            "read_only": False, "created_at": None}}})
        monkeypatch.setattr(labels_mod, "read_labels", orig)
        return orig(dataset)

    monkeypatch.setattr(labels_mod, "read_labels", meanwhile)
    with pytest.raises(Exception, match="not created by the few-shot plugin"):
        run("train_and_label", ds)
