"""Every bad input gets a clear error (form: invalid + error_message) and loses nothing."""

import numpy as np
import pytest

from conftest import EMB, MODEL, URI, class_ids, run


@pytest.fixture
def ExecutionError():
    from fiftyone.operators.executor import ExecutionError

    return ExecutionError


def started(ds, **kw):
    kw.setdefault("embedding_field", EMB)
    run("start_session", ds, **kw)
    return ds


def labeled(ds, cls="Bag", npos=2, nneg=2):
    run("label_positive", ds, selected=class_ids(ds, cls, npos))
    run("label_negative", ds, selected=class_ids(ds, cls, nneg, exclude=True))


def form_inputs(op, ds, view=None, selected=None, **params):
    """The operator's form (resolve_input): its properties by name."""
    import fiftyone.operators as foo
    from fiftyone.operators.executor import ExecutionContext

    ctx = ExecutionContext(
        request_params={
            "dataset_name": ds.name,
            "view": (view if view is not None else ds.view())._serialize(),
            "selected": list(selected or []),
            "params": params,
        }
    )
    return foo.get_operator(URI + op).resolve_input(ctx).type.properties


def form_error(op, ds, view=None, selected=None, **params):
    """The error the operator's form shows (resolve_input), or None."""
    err = form_inputs(op, ds, view, selected, **params).get("error")
    if err is None:
        return None
    assert err.invalid
    return err.error_message


def invalid_inputs(op, ds, **params):
    """``{input name: its error message}`` of the form's inputs marked invalid
    (the form-wide "error" left out)."""
    props = form_inputs(op, ds, **params)
    return {k: p.error_message for k, p in props.items() if p.invalid and k != "error"}


def test_no_selection(ds, ExecutionError):
    started(ds)
    assert "No samples selected" in form_error("label_positive", ds)
    with pytest.raises(ExecutionError, match="No samples selected"):
        run("label_positive", ds)


def test_only_positives_or_only_negatives(ds, ExecutionError):
    started(ds)
    run("label_positive", ds, selected=class_ids(ds, "Bag", 2))
    with pytest.raises(ExecutionError, match="at least one positive and one negative"):
        run("train_and_label", ds)
    run("clear_labels", ds, selected=class_ids(ds, "Bag", 2))
    run("label_negative", ds, selected=class_ids(ds, "Bag", 2))
    with pytest.raises(ExecutionError, match="have 0 positive and 2 negative"):
        run("train_and_label", ds)
    assert not ds.has_field("fewshot_prediction") or ds.exists("fewshot_prediction").count() == 0


def test_missing_embedding_field_without_model(ds, ExecutionError):
    msg = form_error("start_session", ds, embedding_field="nope")
    assert "does not exist" in msg
    with pytest.raises(ExecutionError, match="does not exist"):
        run("start_session", ds, embedding_field="nope")
    with pytest.raises(ExecutionError, match="Choose an embedding model"):
        run("start_session", ds)


def test_embedding_field_of_wrong_type(ds, ExecutionError):
    with pytest.raises(ExecutionError, match="not an embedding"):
        run("start_session", ds, embedding_field="ground_truth")


def test_embeddings_partly_missing_without_model(ds, ExecutionError):
    ds.select(ds.values("id")[:5]).set_values(EMB, [None] * 5)
    with pytest.raises(ExecutionError, match="5 of 120 samples in scope have no embedding"):
        started(ds)


def test_field_recorded_with_another_model(ds, ExecutionError):
    from embeddings_helpers import record

    record(ds, EMB, "clip-vit-base32-torch", 512)
    assert "holds embeddings of model 'clip-vit-base32-torch'" in form_error(
        "start_session", ds, model="efficientnet-lite0-imagenet-torch", embedding_field=EMB
    )
    with pytest.raises(ExecutionError, match="not 'efficientnet-lite0-imagenet-torch'"):
        run("start_session", ds, model="efficientnet-lite0-imagenet-torch", embedding_field=EMB)


def test_mixed_dimensions_in_field(ds, ExecutionError):
    ds.select(ds.values("id")[:1]).set_values(EMB, [np.ones(7, dtype=np.float32)])
    with pytest.raises(ExecutionError, match="different dimensions"):
        started(ds)


def test_unknown_zoo_model(ds, ExecutionError):
    assert "Unknown zoo model 'no-such-model'" in form_error("start_session", ds, model="no-such-model")
    with pytest.raises(ExecutionError, match="Unknown zoo model"):
        run("start_session", ds, model="no-such-model")


def test_video_samples_with_a_zoo_model(fo, ExecutionError):
    """Was FiftyOne's 'DatasetView has no field ...' after an ffprobe attempt."""
    vids = fo.Dataset()
    try:
        vids.add_sample(fo.Sample(filepath="/nonexistent/clip.mp4"))
        assert "embed images, and these are video samples" in form_error("start_session", vids, model=MODEL)
        with pytest.raises(ExecutionError, match="embed images, and these are video samples"):
            run("start_session", vids, model=MODEL)
        assert not vids.has_field(EMB)
    finally:
        vids.delete()


def test_nan_or_zero_vectors(ds, fo, ExecutionError):
    started(ds)
    ids = ds.values("id")
    bad_nan, bad_zero = ids[-1], ids[-2]
    ds.select([bad_nan]).set_values(EMB, [np.full(1280, np.nan, dtype=np.float32)])
    ds.select([bad_zero]).set_values(EMB, [np.zeros(1280, dtype=np.float32)])
    labeled(ds)
    r = run("train_and_label", ds)
    # unlabeled invalid vectors are skipped, not scored
    assert r["num_skipped_invalid_embedding"] == 2
    assert ds[bad_nan]["fewshot_prediction"] is None and ds[bad_zero]["fewshot_prediction"] is None
    # a labeled one is an error
    run("label_positive", ds, selected=[bad_zero])
    with pytest.raises(ExecutionError, match="1 labeled sample.*all-zero"):
        run("train_and_label", ds)


def test_labeled_samples_deleted_since_labeling(ds, ExecutionError):
    started(ds)
    pos = class_ids(ds, "Bag", 3)
    labeled(ds, npos=3)
    ds.delete_samples(pos[:2])
    # labels live on the samples: a deleted sample takes its label with it
    assert run("get_session", ds)["num_positive"] == 1
    r = run("train_and_label", ds)
    assert r["num_positive_labels"] == 1 and r["num_in_scope"] == len(ds)
    ds.delete_samples(pos[2:])
    with pytest.raises(ExecutionError, match="have 0 positive"):
        run("train_and_label", ds)


def _plain(values):
    return [v.to_dict() if hasattr(v, "to_dict") else v for v in values]


@pytest.mark.parametrize("ftype", ["StringField", "Classification", "BooleanField"])
def test_prediction_field_taken_by_user_field(ds, fo, ftype, ExecutionError):
    if ftype == "Classification":
        ds.set_values("mine", [fo.Classification(label="x")] * len(ds))
    else:
        ds.set_values("mine", ["x" if ftype == "StringField" else True] * len(ds))
    before = _plain(ds.values("mine"))
    msg = form_error("start_session", ds, embedding_field=EMB, prediction_field="mine")
    assert "was not created by the few-shot plugin" in msg
    assert "(an EmbeddedDocumentField(Classification))" in msg if ftype == "Classification" else "(a " in msg
    with pytest.raises(ExecutionError, match="'mine' already exists"):
        started(ds, prediction_field="mine")
    assert _plain(ds.values("mine")) == before  # untouched, value for value
    assert ds.exists("mine").count() == len(ds)


def test_label_field_taken_by_user_field(ds, ExecutionError):
    ds.set_values("fewshot_positive", ["mine"] * len(ds))
    with pytest.raises(ExecutionError, match="'fewshot_positive' already exists"):
        started(ds)
    assert ds.distinct("fewshot_positive") == ["mine"]


def test_empty_view(ds, fo, ExecutionError):
    empty = ds.match(fo.ViewField("ground_truth.label") == "no such class")
    with pytest.raises(ExecutionError, match="view is empty"):
        run("start_session", ds, view=empty, embedding_field=EMB)
    started(ds)
    labeled(ds)
    with pytest.raises(ExecutionError, match="view is empty"):
        run("train_and_label", ds, view=empty)


def test_selected_samples_outside_current_view(ds, fo, ExecutionError):
    started(ds)
    view = ds.match(fo.ViewField("ground_truth.label") == "Bag")
    outside = class_ids(ds, "Bag", 2, exclude=True)
    assert "not in the current view" in form_error("label_positive", ds, view=view, selected=outside)
    with pytest.raises(ExecutionError, match="2 selected sample.*not in the current view"):
        run("label_positive", ds, view=view, selected=outside)
    assert run("get_session", ds)["num_positive"] == 0


def test_unknown_and_deleted_sample_ids(ds, ExecutionError):
    started(ds)
    with pytest.raises(ExecutionError, match="Not sample IDs"):
        run("label_positive", ds, sample_ids=["abc"])
    with pytest.raises(ExecutionError, match="not samples of dataset.*deleted"):
        run("label_positive", ds, sample_ids=["0123456789abcdef01234567"])
    for bad in (5, True, {"a": 1}, [5]):
        with pytest.raises(ExecutionError, match="sample IDs"):
            run("label_positive", ds, sample_ids=bad)
    # IDs are hex: upper case names the same sample
    one = ds.first().id
    assert run("label_positive", ds, sample_ids=[one.upper()])["num_positive"] == 1


@pytest.mark.parametrize("op", ["label_positive", "label_negative", "clear_labels", "train_and_label", "show_predictions", "reset_session"])
def test_no_session(ds, op, ExecutionError):
    assert "No few-shot session" in form_error(op, ds, selected=ds.values("id")[:1])
    with pytest.raises(ExecutionError, match="No few-shot session"):
        run(op, ds, selected=ds.values("id")[:1])


def test_bad_scorer_settings(ds, ExecutionError):
    started(ds)
    labeled(ds)
    assert "temperature" in form_error("train_and_label", ds, temperature=0)
    with pytest.raises(ExecutionError, match="temperature must be > 0"):
        run("train_and_label", ds, temperature=0)
    with pytest.raises(ExecutionError):
        run("train_and_label", ds, mode="cosine")
    with pytest.raises(ExecutionError, match="subset size must be >= 0"):
        started(ds, subset_size=-1)


def test_forms_show_what_execution_would_refuse(ds, plugin, ExecutionError):
    started(ds)
    assert "No predictions yet" in form_error("suggest_samples", ds)
    # (Show Predictions emptied the grid without a word, and a reload kept that view)
    assert "No predictions yet" in form_error("show_predictions", ds)
    run("label_positive", ds, selected=class_ids(ds, "Bag", 2))
    assert "at least one positive and one negative" in form_error("train_and_label", ds)
    labeled(ds)
    assert form_error("train_and_label", ds) is None
    st = plugin.operators.state
    with st.Lease(st.SessionState(ds), "train"):  # a train running in another tab
        assert "A train is running since" in form_error("train_and_label", ds)
    assert form_error("train_and_label", ds) is None


def test_out_of_range_and_mistyped_params(ds, ExecutionError):
    started(ds)
    labeled(ds)
    big = 10**19  # beyond MongoDB's 8-byte integers
    assert "at most" in form_error("start_session", ds, embedding_field=EMB, subset_size=big)
    with pytest.raises(ExecutionError, match="at most"):
        run("start_session", ds, embedding_field=EMB, subset_size=big)
    assert run("get_session", ds)["subset_size"] == 0
    assert "must be a name" in form_error("start_session", ds, model=123)
    assert "must be a name" in form_error("train_and_label", ds, ground_truth_field=123)
    with pytest.raises(ExecutionError, match="must be a name|ground_truth_field. Reason: Invalid value type"):
        run("train_and_label", ds, ground_truth_field=123)  # (FiftyOne checks the declared type first)


def test_the_input_at_fault_is_marked_with_the_message(ds):
    """A bad param marks its own input invalid with the message (the form-wide
    error says it too); errors no input causes mark none."""
    started(ds)
    assert invalid_inputs("train_and_label", ds) == {}
    assert "at least one positive and one negative" in form_error("train_and_label", ds)
    labeled(ds)
    cases = {
        "temperature": (0, "temperature must be > 0"),
        "beta": (-1, "beta and gamma must be >= 0"),
        "gamma": ("x", "must be numbers"),
        "mode": ("cosine", "Unknown scoring mode"),
        "calibrate": ("maybe", "calibrate must be true or false"),
        "neighbor_weight": (2, "neighbor_weight must be auto or a number from 0 to 1"),
        "kernel_weight": (-1, "kernel_weight must be auto"),
        "power": (0, "power must be auto"),
        "ground_truth_field": ("nope", "does not exist"),
        "precision_k": (0, "precision@k: k must be >= 1"),
    }
    for name, (value, message) in cases.items():
        params = {name: value}
        bad = invalid_inputs("train_and_label", ds, **params)
        assert list(bad) == [name] and message in bad[name], (name, bad)
        assert message in form_error("train_and_label", ds, **params)
    # two inputs at fault together: both are marked (the first alone was)
    bad = invalid_inputs("train_and_label", ds, beta=0, gamma=0)
    assert sorted(bad) == ["beta", "gamma"] and "cannot both be 0" in bad["gamma"], bad
    bad = invalid_inputs("suggest_samples", ds, top_fraction=0.7, random_fraction=0.5)
    assert sorted(bad) == ["random_fraction", "top_fraction"] and "add up to more than 1" in bad["top_fraction"]
    bad = invalid_inputs("train_and_label", ds, ground_truth_field="ground_truth")
    assert list(bad) == ["positive_class"] and "Name the positive class" in bad["positive_class"]
    # a field that does not exist is said first, before any class is typed; k is
    # checked without a readout too (a new user's form ran with k = -1)
    bad = invalid_inputs("train_and_label", ds, ground_truth_field="nope_field")
    assert list(bad) == ["ground_truth_field"] and "does not exist" in bad["ground_truth_field"]
    assert list(invalid_inputs("train_and_label", ds, precision_k=-1)) == ["precision_k"]
    assert invalid_inputs("start_session", ds, embedding_field="nope") == {
        "embedding_field": "Field 'nope' does not exist; choose a model to compute embeddings into it"}
    assert list(invalid_inputs("start_session", ds, embedding_field="ground_truth")) == ["embedding_field"]
    assert list(invalid_inputs("start_session", ds, embedding_field=EMB, subset_size=-1)) == ["subset_size"]
    assert list(invalid_inputs("start_session", ds, model="no-such-model-torch")) == ["model"]
    assert list(invalid_inputs("start_session", ds, embedding_field=EMB, prediction_field="a.b")) == \
        ["prediction_field"]


def test_two_inputs_at_fault_give_python_callers_the_message(ds, ExecutionError):
    started(ds)
    labeled(ds)
    with pytest.raises(ExecutionError, match="beta and gamma cannot both be 0"):
        run("train_and_label", ds, beta=0, gamma=0)
    with pytest.raises(ExecutionError, match="add up to more than 1"):
        run("suggest_samples", ds, top_fraction=0.7, random_fraction=0.5)


def test_the_start_form_is_filled_in_from_the_active_session(ds):
    """A new user restarting with the form blank lost the model's name (the
    session became "precomputed"); the form now starts from the session's."""
    props = form_inputs("start_session", ds)
    assert props["model"].default is None and props["embedding_field"].default is None
    run("start_session", ds, embedding_field=EMB, prediction_field="mine", subset_size=50)
    props = form_inputs("start_session", ds)
    assert props["embedding_field"].default == EMB and props["prediction_field"].default == "mine"
    assert props["subset_size"].default == 50 and props["model"].default is None
    assert form_error("start_session", ds, embedding_field=EMB) is None  # (what the App sends then)
    # another model typed: its own field's name
    props = form_inputs("start_session", ds, model="efficientnet-lite0-imagenet-torch")
    assert props["embedding_field"].default == "efficientnet_lite0_imagenet_embeddings"


def test_the_panel_shows_the_words_of_a_failure_not_the_payload(plugin):
    """The App hands the panel a traceback, or the server's whole response
    (a dict, or its text) when the request was refused (the browser test:
    two tabs' trains); the panel shows the message only."""
    words = plugin.panels.render.error_words
    tb = ('Traceback (most recent call last):\n  File "x.py", line 3, in run\n    raise FewShotError(m)\n'
          "operators.errors.FewShotError: Needs at least one positive and one negative label\n")
    assert words(tb) == "Needs at least one positive and one negative label"
    stack = ("Traceback (most recent call last):\n  ...\nfiftyone.operators.executor.ExecutionError: Validation "
             "error. Path: error. Reason: A train is running since 02:37:40 UTC on this dataset; wait for it\n")
    payload = {"stack": stack, "name": "Network Error", "code": 500, "payload": {"panel_state": {"error": None}}}
    msg = "A train is running since 02:37:40 UTC on this dataset; wait for it"
    assert words(payload) == msg and words(str(payload)) == msg
    assert words(None) == "Failed" and words("plain words") == "plain words"


def test_the_panel_names_settings_as_labeled_only_where_the_message_is_about_them(plugin):
    """A review: the renaming also hit a field called 'power' and a class called 'gamma'."""
    words = plugin.panels.render.in_words
    assert words("neighbor_weight must be auto or a number from 0 to 1") == \
        "\"Pool neighbors' weight\" must be auto or a number from 0 to 1"
    assert words("beta and gamma must be >= 0") == '"beta (positives)" and "gamma (negatives)" must be >= 0'
    assert words("beta, gamma and temperature must be numbers").startswith('"beta (positives)", "gamma (negatives)" and temperature')
    for theirs in ("Field 'power' already exists on the dataset (a StringField)", "Class gamma must be a name",
                   "power"):
        assert words(theirs) == theirs
