"""The few-shot workflow: what each operator does, independent of the App.

Every public function takes the dataset, the current view and the operator
params (absent params get their defaults here), raises :class:`FewShotError`
with a message for users on bad input, and returns a JSON-able summary.
"""

import hashlib
import json
import random
import time

import numpy as np

from ..embeddings import cache as ecache
from ..embeddings import fields as efields
from ..embeddings import zoo
from ..scoring import MODEL_DEFAULTS as SCORER_DEFAULTS
from ..scoring import FewShotModel, ScoringError, check_model_settings, suggest
from . import writeback
from .state import MAX_HISTORY, NEGATIVE, POSITIVE, SUBSET, SessionState

DEFAULT_PREDICTION_FIELD = "fewshot_prediction"
LABEL_FIELDS = {POSITIVE: "fewshot_positive", NEGATIVE: "fewshot_negative"}
ROLE_KEY = "fewshot_role"  # marks fields this plugin created, in field.info
P_ATTR = "p_positive"  # attribute on each prediction: P(positive), for sorting


class FewShotError(ValueError):
    """A problem with the user's input; the message is shown as is."""


def _progress(cb, frac, label):
    if cb is not None:
        cb(frac, label)


# -- params ------------------------------------------------------------------


def start_params(params):
    """Start-session params with defaults applied (no I/O)."""
    params = params or {}
    model = (params.get("model") or "").strip() or None
    field = (params.get("embedding_field") or "").strip() or None
    if field is None and model is not None:
        field = zoo.default_embedding_field(model)
    pred = (params.get("prediction_field") or "").strip() or DEFAULT_PREDICTION_FIELD
    try:
        subset = int(params.get("subset_size") or 0)
    except (TypeError, ValueError):
        raise FewShotError("Working subset size must be an integer (0 = whole view)")
    return {
        "model": model,
        "embedding_field": field,
        "prediction_field": pred,
        "subset_size": subset,
        "randomize_subset": bool(params.get("randomize_subset", False)),
    }


def scorer_params(params, previous=None):
    """Scorer settings: params, else the session's last ones, else defaults."""
    params = params or {}
    base = dict(SCORER_DEFAULTS)
    base.update(previous or {})
    for k in SCORER_DEFAULTS:
        if params.get(k) is not None:
            base[k] = params[k]
    try:
        return check_model_settings(**base)
    except ScoringError as e:
        raise FewShotError(str(e))


# -- checks shared by forms and execution -------------------------------------


def _field_name_error(name, what):
    if not name or name.startswith("_") or "." in name or "$" in name:
        return "'%s' is not a valid %s name" % (name, what)
    return None


def check_output_field(dataset, name, role):
    """Returns True if ``name`` is ours to (re)use, False if it must be created.

    Refuses (never overwrites) a field that exists but this plugin did not
    create for ``role``.
    """
    import fiftyone as fo

    f = dataset.get_field(name)
    if f is None:
        return False
    ours = ((getattr(f, "info", None) or {}).get(ROLE_KEY)) == role
    if role == "prediction":
        right_type = isinstance(f, fo.EmbeddedDocumentField) and issubclass(
            f.document_type, fo.Classification
        )
        what = "an EmbeddedDocumentField(Classification)"
    else:
        right_type = isinstance(f, fo.BooleanField)
        what = "a BooleanField"
    if ours and right_type:
        return True
    desc = type(f).__name__
    if isinstance(f, fo.EmbeddedDocumentField):
        desc += "(%s)" % f.document_type.__name__
    raise FewShotError(
        "Field '%s' already exists on the dataset (a %s%s) and was not created by "
        "the few-shot plugin; choose another %s field name (it will not be overwritten)"
        % (name, desc, "" if right_type else ", not " + what, role)
    )


def check_start(dataset, view, params):
    """Cheap validation of start params (for forms); returns them normalized."""
    p = start_params(params)
    if p["subset_size"] < 0:
        raise FewShotError("Working subset size must be >= 0 (0 = whole view)")
    if p["model"] is None and p["embedding_field"] is None:
        raise FewShotError("Choose an embedding model or an existing embedding field")
    if p["model"] is not None and not zoo.is_zoo_model(p["model"]):
        raise FewShotError(
            "Unknown zoo model '%s'; use a FiftyOne zoo model name such as %s"
            % (p["model"], ", ".join(zoo.SUGGESTED_MODELS[:3]))
        )
    for key, what in (("embedding_field", "embedding field"), ("prediction_field", "prediction field")):
        err = _field_name_error(p[key], what)
        if err:
            raise FewShotError(err)
    if p["embedding_field"] == p["prediction_field"] or p["prediction_field"] in LABEL_FIELDS.values():
        raise FewShotError("The prediction field must differ from the embedding and label fields")
    try:
        exists = efields.check_field_type(dataset, p["embedding_field"])
    except efields.EmbeddingError as e:
        raise FewShotError(str(e))
    if exists and p["model"] is not None:
        rec = efields.recorded_info(dataset, p["embedding_field"])
        if rec.get("model") and rec["model"] != p["model"]:
            raise FewShotError(
                "Field '%s' holds embeddings of model '%s', not '%s'; choose another "
                "field or that model" % (p["embedding_field"], rec["model"], p["model"])
            )
    if not exists and p["model"] is None:
        raise FewShotError(
            "Field '%s' does not exist; choose a model to compute embeddings into it"
            % p["embedding_field"]
        )
    check_output_field(dataset, p["prediction_field"], "prediction")
    for name in LABEL_FIELDS.values():
        check_output_field(dataset, name, "label")
    if len(view) == 0:
        raise FewShotError("The current view is empty; nothing to run a session on")
    return p


def require_session(state):
    if not state.active:
        raise FewShotError(
            "No few-shot session on dataset '%s'; start one first (start_session)"
            % state.dataset.name
        )
    return state.config


# -- scope -------------------------------------------------------------------


def view_key(view):
    """Identifies a view by its stages (and dataset), for the subset cache."""
    stages = json.dumps(view._serialize(), sort_keys=True, default=str)
    return hashlib.sha1((view._root_dataset.name + stages).encode()).hexdigest()


def labeled_ids(state):
    return state.get_ids(POSITIVE), state.get_ids(NEGATIVE)


def working_subset(state, view, size, redraw=False, seed=None):
    """The subset's random unlabeled fill (IDs, in random order), drawn once per view.

    Reused while the view (its stages) is unchanged, unless ``redraw``.
    """
    key = view_key(view)
    meta = state.get_meta(SUBSET)
    if not redraw and meta.get("view_key") == key and meta.get("size") == size:
        return state.get_ids(SUBSET), False
    pos, neg = labeled_ids(state)
    labeled = set(pos) | set(neg)
    unlabeled = [i for i in ecache.to_str(ecache.view_ids(view)) if i not in labeled]
    # draw ``size`` (not size - labeled): labels come and go, and the fill's
    # prefix then still tops the subset up to ``size`` (see scope_ids)
    k = min(len(unlabeled), size)
    rng = random.Random(seed)
    fill = rng.sample(unlabeled, k) if k < len(unlabeled) else unlabeled
    state.set_ids(SUBSET, fill, view_key=key, size=size)
    return fill, True


def scope_ids(state, dataset, view, cfg, redraw=False):
    """``(ids, subset_redrawn)``: the inference set as an ``S12`` ID array.

    The inference set is the view (or its working subset) plus every labeled
    sample.
    """
    pos, neg = labeled_ids(state)
    labeled = list(dict.fromkeys(pos + neg))
    redrawn = False
    if cfg["subset_size"] > 0:
        fill, redrawn = working_subset(
            state, view, cfg["subset_size"], redraw=redraw or cfg["randomize_subset"]
        )
        labeled_set = set(labeled)
        fill = [i for i in fill if i not in labeled_set]
        fill = fill[: max(0, cfg["subset_size"] - len(labeled))]
        ids = ecache.to_bytes(fill + labeled)
    else:
        ids = ecache.view_ids(view)
        if labeled:
            lab = ecache.to_bytes(labeled)
            ids = np.concatenate([ids, lab[~np.isin(lab, ids)]])
    return ids, redrawn


def missing_in_scope(dataset, view, state, cfg, redraw=False):
    """``(missing ids, scope size)``: samples in scope without an embedding.

    With a working subset, (re)draws it first when ``redraw``.
    """
    field = cfg["embedding_field"]
    pos, neg = labeled_ids(state)
    labeled = list(dict.fromkeys(pos + neg))
    if cfg["subset_size"] > 0:
        ids, _ = scope_ids(state, dataset, view, cfg, redraw=redraw)
        ids = ecache.to_str(ids)
        return efields.missing_ids(dataset, ids, field), len(ids)
    if dataset.has_field(field):
        missing = view.exists(field, False).values("id")
    else:
        missing = view.values("id")
    in_view = set(view.select(labeled).values("id")) if labeled else set()
    outside = [i for i in labeled if i not in in_view]
    missing += efields.missing_ids(dataset, outside, field) if outside else []
    return missing, len(view) + len(outside)


def ensure_embeddings(dataset, missing, cfg, num_in_scope, progress=None):
    """Computes the ``missing`` embeddings with the session's model.

    Returns the number computed; raises if the session has no model.
    """
    field = cfg["embedding_field"]
    if not missing:
        return 0
    if cfg.get("model") is None:
        raise FewShotError(
            "%d of %d samples in scope have no embedding in field '%s'; choose an "
            "embedding model so they can be computed" % (len(missing), num_in_scope, field)
        )
    _progress(progress, 0.0, "Loading model %s" % cfg["model"])
    try:
        model = zoo.load_model(cfg["model"])
        return efields.compute_missing(
            dataset, missing, field, model, cfg["model"], progress=progress
        )
    except (ValueError, efields.EmbeddingError) as e:
        raise FewShotError(str(e))


# -- operators ---------------------------------------------------------------


def start_session(dataset, view, params, progress=None):
    """Starts (or reconfigures) the dataset's session; computes missing embeddings."""
    t0 = time.time()
    p = check_start(dataset, view, params)
    state = SessionState(dataset)
    old = state.config or {}

    cfg = dict(old)
    cfg.update(p)
    cfg.setdefault("iteration", 0)
    cfg.setdefault("history", [])
    cfg.setdefault("created_fields", [])
    cfg.setdefault("scorer", dict(SCORER_DEFAULTS))
    cfg["label_fields"] = dict(LABEL_FIELDS)

    # the inference scope, computed before any field is created
    redraw = p["subset_size"] > 0 and (
        old.get("subset_size") != p["subset_size"] or p["randomize_subset"]
    )
    missing, n_scope = missing_in_scope(dataset, view, state, cfg, redraw=redraw)
    computed = 0
    field = p["embedding_field"]
    if missing:
        computed = ensure_embeddings(dataset, missing, cfg, n_scope, progress=progress)
    elif p["model"] is not None and not efields.recorded_info(dataset, field):
        # precomputed by the user without a record: check the model's dimension
        try:
            efields.check_model_dim(view, field, zoo.load_model(p["model"]), p["model"])
        except (ValueError, efields.EmbeddingError) as e:
            raise FewShotError(str(e))
    dim = efields.existing_dim(dataset, field)
    try:
        # a sample of the vectors must agree (the cache checks them all)
        efields.stack_vectors(dataset.exists(field).limit(1000).values(field), dim)
    except efields.EmbeddingError as e:
        raise FewShotError(str(e))
    cfg["dim"] = dim

    import fiftyone as fo

    created = list(cfg["created_fields"])
    for name in LABEL_FIELDS.values():
        if not check_output_field(dataset, name, "label"):
            dataset.add_sample_field(name, fo.BooleanField, info={ROLE_KEY: "label"})
            created.append(name)
    pred = p["prediction_field"]
    if not check_output_field(dataset, pred, "prediction"):
        dataset.add_sample_field(
            pred,
            fo.EmbeddedDocumentField,
            embedded_doc_type=fo.Classification,
            info={ROLE_KEY: "prediction"},
        )
        dataset.add_sample_field(pred + "." + P_ATTR, fo.FloatField)
        created.append(pred)
    cfg["created_fields"] = list(dict.fromkeys(created))
    cfg.setdefault("started_at", time.time())
    state.save_config(cfg)
    pos, neg = labeled_ids(state)
    return {
        "model": p["model"],
        "embedding_field": field,
        "prediction_field": pred,
        "dim": dim,
        "subset_size": p["subset_size"],
        "randomize_subset": p["randomize_subset"],
        "num_in_scope": n_scope,
        "num_computed": computed,
        "num_positive": len(pos),
        "num_negative": len(neg),
        "iteration": cfg["iteration"],
        "seconds": round(time.time() - t0, 3),
    }


def target_ids(view, selected, params):
    """Validated sample IDs to (un)label: ``sample_ids`` param, else the selection."""
    from bson import ObjectId

    ids = (params or {}).get("sample_ids")
    if ids is None:
        ids = selected or []
    if isinstance(ids, str):
        ids = [ids]
    ids = list(dict.fromkeys(str(i) for i in ids))
    if not ids:
        raise FewShotError("No samples selected: select samples in the grid first")
    bad = [i for i in ids if not ObjectId.is_valid(i)]
    if bad:
        raise FewShotError("Not sample IDs: %s" % ", ".join(bad[:5]))
    in_view = set(view.select(ids).values("id"))
    outside = [i for i in ids if i not in in_view]
    if outside:
        in_dataset = set(view._root_dataset.select(outside).values("id"))
        gone = [i for i in outside if i not in in_dataset]
        if gone:
            raise FewShotError(
                "%d selected sample(s) do not exist in the dataset (deleted?)" % len(gone)
            )
        raise FewShotError(
            "%d selected sample(s) are not in the current view; clear the selection "
            "or change the view" % len(outside)
        )
    return ids


def _mirror(dataset, cfg, ids, label):
    """Writes the label booleans of ``ids`` (label None = unlabeled)."""
    if not ids:
        return
    before = ecache.stamp(dataset)
    view = dataset.select(ids)
    n = len(view)
    for which, name in cfg["label_fields"].items():
        view.set_values(name, [True if which == label else None] * n)
    ecache.restamp_after_own_write(dataset, before)


def set_labels(dataset, view, selected, params, label):
    """Labels the target samples ``label`` (POSITIVE/NEGATIVE/None = clear)."""
    state = SessionState(dataset)
    cfg = require_session(state)
    ids = target_ids(view, selected, params)
    target = set(ids)
    pos, neg = labeled_ids(state)
    before = {POSITIVE: set(pos), NEGATIVE: set(neg)}
    moved = 0
    new = {}
    for which, current in ((POSITIVE, pos), (NEGATIVE, neg)):
        kept = [i for i in current if i not in target]
        if which == label:
            kept += [i for i in ids if i not in before[which]]
        elif label is not None:
            moved += len(before[which] & target)
        new[which] = kept
        if kept != current:
            state.set_ids(which, kept)
    _mirror(dataset, cfg, ids, label)
    changed = sum(
        1 for i in ids if (i in before[POSITIVE], i in before[NEGATIVE])
        != (label == POSITIVE, label == NEGATIVE)
    )
    return {
        "label": label,
        "num_targeted": len(ids),
        "num_changed": changed,
        "num_moved": moved,
        "num_positive": len(new[POSITIVE]),
        "num_negative": len(new[NEGATIVE]),
    }


POOL_SAMPLE = 20000  # unlabeled samples the background and calibration are fitted on


def _pool_sample(unlabeled_ids):
    """A fixed random sample of the (sorted) unlabeled scope IDs."""
    n = len(unlabeled_ids)
    if n <= POOL_SAMPLE:
        return unlabeled_ids
    idx = np.random.default_rng(0).choice(n, POOL_SAMPLE, replace=False)
    return unlabeled_ids[np.sort(idx)]


def _vectors(dataset, field, M, ids):
    """``{id bytes: normalized vector or None (invalid)}`` of ``ids`` that have
    an embedding, from the matrix ``M`` when given, else from MongoDB."""
    out = {}
    if M is not None:
        rows = M.rows(ids)
        for i, r in zip(ids, rows):
            if r >= 0 and M.present[r]:
                out[bytes(i)] = np.array(M.X[r]) if M.valid[r] else None
        return out
    got, X, valid, present = ecache.read_vectors(dataset, field, ids)
    for i, x, v, p in zip(got, X, valid, present):
        if p:
            out[bytes(i)] = x if v else None
    return out


class _Collector(object):
    """Per scope row: whether it was scored, its raw score and P(positive)."""

    def __init__(self, ids, lab):
        n = len(ids)
        self.lab = lab
        self.raw = np.zeros(n, dtype=np.float32)
        self.probs = np.zeros(n)
        self.scored = np.zeros(n, dtype=bool)
        self.present = np.zeros(n, dtype=bool)
        self.seen_or_cached = np.zeros(n, dtype=bool)

    def add(self, where, sc, raw, probs):
        w = where[sc]
        self.raw[w], self.probs[w], self.scored[w] = raw, probs, True

    def mark_present(self, where, present):
        self.seen_or_cached[where] = True
        self.present[where] = present

    def missing_unlabeled(self):
        return np.where(self.seen_or_cached & ~self.present & (self.lab == 0))[0]


def train_and_label(dataset, view, params, progress=None):
    """Fits the scorer on the labels, scores the inference set, writes predictions."""
    t0 = time.time()
    params = params or {}
    state = SessionState(dataset)
    cfg = require_session(state)
    settings = scorer_params(params, cfg.get("scorer"))
    rp = readout_params(dataset, params)
    pred_field = cfg["prediction_field"]
    check_output_field(dataset, pred_field, "prediction")
    if len(view) == 0:
        raise FewShotError("The current view is empty; nothing to score")

    # labels whose samples were deleted since labeling are dropped
    pos, neg = labeled_ids(state)
    alive = set(dataset.select(pos + neg).values("id")) if (pos or neg) else set()
    dropped = 0
    for which, cur in ((POSITIVE, pos), (NEGATIVE, neg)):
        keep = [i for i in cur if i in alive]
        if len(keep) != len(cur):
            dropped += len(cur) - len(keep)
            state.set_ids(which, keep)
    pos, neg = labeled_ids(state)
    if not pos or not neg:
        raise FewShotError(
            "Training needs at least one positive and one negative label; have %d "
            "positive and %d negative%s"
            % (len(pos), len(neg), " (%d labeled samples were deleted)" % dropped if dropped else "")
        )

    _progress(progress, 0.05, "Reading embeddings")
    field = cfg["embedding_field"]
    st = ecache.stamp(dataset)
    fresh = ecache.is_fresh(dataset, field, st)
    whole = cfg["subset_size"] == 0 and not view._pipeline()
    M = None
    try:
        if fresh:
            M, _ = ecache.load(dataset, field, current=st)
    except efields.EmbeddingError as e:
        raise FewShotError(str(e))
    if whole:
        # the whole dataset: its IDs (the cache's, when valid: same stamp)
        ids = np.asarray(M.ids) if M is not None else np.sort(ecache.view_ids(dataset.view()))
        redrawn = False
    else:
        ids, redrawn = scope_ids(
            state, dataset, view, cfg, redraw=bool(params.get("resample_subset"))
        )
        ids = np.unique(ids)
    lab = np.zeros(len(ids), dtype=np.int8)
    lab[np.isin(ids, ecache.to_bytes(pos))] = 1
    lab[np.isin(ids, ecache.to_bytes(neg))] = -1

    # the model: labeled vectors + a fixed random sample of the unlabeled
    # scope (the same sample whether the vectors come from the cache or MongoDB)
    computed = 0
    sample = _pool_sample(ids[lab == 0])
    need = np.concatenate([ids[lab != 0], sample])
    vec = _vectors(dataset, field, M, need)
    lab_missing = [i for i in ids[lab != 0] if i not in vec]
    if lab_missing and cfg.get("model") is not None:
        computed += ensure_embeddings(dataset, ecache.to_str(lab_missing), cfg, len(ids), progress)
        vec.update(_vectors(dataset, field, None, np.asarray(lab_missing)))
        st, M = ecache.stamp(dataset), None  # our own embeddings changed the dataset
        lab_missing = [i for i in ids[lab != 0] if i not in vec]
    if lab_missing:
        raise FewShotError(
            "%d labeled sample(s) have no embedding in field '%s'" % (len(lab_missing), field)
        )
    bad_labeled = sum(1 for i in ids[lab != 0] if vec[i] is None)
    if bad_labeled:
        raise FewShotError(
            "%d labeled sample(s) have NaN/infinite or all-zero embeddings in field "
            "'%s'; un-label them or recompute their embeddings" % (bad_labeled, field)
        )
    dims = {len(v) for v in vec.values() if v is not None}
    if len(dims) > 1 or (dims and cfg.get("dim") is not None and dims != {cfg["dim"]}):
        raise FewShotError(
            "Field '%s' now holds %s-d embeddings, the session was started with %s-d ones; "
            "start the session again" % (field, "/".join(map(str, sorted(dims))), cfg.get("dim"))
        )
    model = FewShotModel(**settings)
    P = np.stack([vec[i] for i in ids[lab > 0]])
    N = np.stack([vec[i] for i in ids[lab < 0]])
    S = [vec[i] for i in sample if vec.get(i) is not None]
    try:
        model.fit(P, N, np.stack(S) if S else np.concatenate([P, N]))
    except ScoringError as e:
        raise FewShotError(str(e))
    if S:
        model.fit_calibration(model.raw_scores(np.stack(S)))

    _progress(progress, 0.3, "Scoring and writing predictions")
    out = _Collector(ids, lab)
    with writeback.PredictionWriter(dataset, pred_field, P_ATTR) as writer:
        def consume(bids, X, valid):
            """Scores one batch of rows (any order) and queues its writes."""
            pos_in = np.searchsorted(ids, bids)
            pos_in = np.minimum(pos_in, max(len(ids) - 1, 0))
            inscope = (ids[pos_in] == bids) if len(ids) else np.zeros(len(bids), bool)
            rows = np.where(inscope)[0]
            where = pos_in[rows]
            blab = lab[where]
            ok = valid[rows]
            sc = (blab == 0) & ok
            raw = model.raw_scores(X[rows[sc]]) if sc.any() else np.zeros(0, np.float32)
            probs = model.proba(raw)
            out.add(where, sc, raw, probs)
            w = sc | (blab != 0)
            pw = np.zeros(len(rows))
            pw[sc] = probs
            writer.write(bids[rows[w]], pw[w], blab[w])

        try:
            if M is not None:
                rows = M.rows(ids)
                have = rows >= 0
                out.mark_present(np.where(have)[0], M.present[rows[have]])
                hv = np.where(have)[0]
                order = hv[np.argsort(rows[hv], kind="stable")]
                for s0 in range(0, len(order), 16384):
                    sel = order[s0 : s0 + 16384]
                    consume(ids[sel], M.X[rows[sel]], M.valid[rows[sel]])
                from_cache = True
            else:
                # streaming: each batch read from MongoDB is scored and its
                # predictions queued for writing while the next is read
                M = ecache.read_all(
                    dataset, field, on_batch=consume,
                    progress=lambda f, label: _progress(progress, 0.3 + 0.6 * f, label),
                )
                rows = M.rows(ids)
                have = rows >= 0
                out.mark_present(np.where(have)[0], M.present[rows[have]])
                from_cache = False
        except efields.EmbeddingError as e:
            raise FewShotError(str(e))
        # in scope without an embedding: computed with the session's model, then scored
        todo = ids[out.missing_unlabeled()]
        if len(todo) and cfg.get("model") is not None:
            computed += ensure_embeddings(dataset, ecache.to_str(todo), cfg, len(ids), progress)
            got, X, valid, present = ecache.read_vectors(dataset, field, todo)
            consume_order = np.argsort(got)
            got, X, valid = got[consume_order], X[consume_order], valid[consume_order]
            out.mark_present(np.searchsorted(ids, got), present[consume_order])
            consume(got, X, valid)
    if not from_cache and not computed:
        after = ecache.stamp(dataset)
        if ecache.only_own_writes(dataset, st, writer.now, after[0]):
            ecache.save(dataset, field, M, after, background=True)
    elif from_cache:
        ecache.restamp_after_own_write(dataset, st, writer.now)

    alive = out.seen_or_cached | (lab != 0)  # deleted since the scope was computed: not counted
    raw, probs, scored = out.raw, out.probs, out.scored
    quality = readout(dataset, ids[scored], raw[scored], probs[scored], rp)
    n_pos_pred = int((probs[scored] >= 0.5).sum())
    n_scored = int(scored.sum())
    missing = ~out.present & out.seen_or_cached
    invalid = out.present & ~scored & (lab == 0)
    probs = probs[scored]
    cfg = state.config
    cfg["iteration"] = int(cfg.get("iteration", 0)) + 1
    cfg["scorer"] = settings
    summary = {
        "iteration": cfg["iteration"],
        "prediction_field": pred_field,
        "num_positive_labels": len(pos),
        "num_negative_labels": len(neg),
        "num_in_scope": int(alive.sum()),
        "num_scored": n_scored,
        "num_predicted_positive": n_pos_pred,
        "num_predicted_negative": n_scored - n_pos_pred,
        "num_skipped_missing_embedding": int((missing & (lab == 0)).sum()),
        "num_skipped_invalid_embedding": int(invalid.sum()),
        "num_computed_embeddings": computed,
        "num_dropped_deleted_labels": dropped,
        "embeddings_from_cache": bool(from_cache),
        "subset_redrawn": redrawn,
        "settings": settings,
        "calibration": model.calibration.to_dict() if model.calibration else None,
        "estimated_pool_positive_rate": (
            round(model.calibration.prior, 4) if model.calibration else None
        ),
        "quality": quality,
        "timestamp": time.time(),
        "seconds": round(time.time() - t0, 3),
    }
    hist_scores = probs
    summary["histogram"] = {
        "bins": np.linspace(0, 1, 21).round(2).tolist(),
        "counts": np.histogram(hist_scores, bins=20, range=(0, 1))[0].tolist(),
    }
    cfg["history"] = (cfg.get("history") or [])[-(MAX_HISTORY - 1):] + [summary]
    state.save_config(cfg)
    _progress(progress, 1.0, "Done")
    return summary


# -- quality readout -----------------------------------------------------------

_TRUTH_TYPES = {
    "Classification": ".label",
    "Classifications": ".classifications.label",
    "Detections": ".detections.label",
}


def readout_params(dataset, params):
    """``(values path, positive class, k)`` of the optional quality readout, or
    None when no ground-truth field is named; raises on a bad request."""
    import fiftyone as fo

    params = params or {}
    gt = (params.get("ground_truth_field") or "").strip()
    cls = params.get("positive_class")
    cls = None if cls is None else str(cls).strip()
    if not gt and not cls:
        return None
    if not gt:
        raise FewShotError("A positive class needs a ground-truth field to compare with")
    if not cls:
        raise FewShotError("Name the positive class of ground-truth field '%s'" % gt)
    field = dataset.get_field(gt)
    if field is None:
        raise FewShotError("Ground-truth field '%s' does not exist" % gt)
    if isinstance(field, fo.StringField):
        path = gt
    elif isinstance(field, fo.EmbeddedDocumentField) and field.document_type.__name__ in _TRUTH_TYPES:
        path = gt + _TRUTH_TYPES[field.document_type.__name__]
    else:
        raise FewShotError(
            "Ground-truth field '%s' must be a string, Classification, Classifications or "
            "Detections field" % gt
        )
    if cls not in set(dataset.distinct(path)):
        raise FewShotError("Class '%s' does not occur in ground-truth field '%s'" % (cls, gt))
    try:
        k = int(params["precision_k"]) if params.get("precision_k") is not None else 100
    except (TypeError, ValueError):
        raise FewShotError("precision@k: k must be an integer")
    if k < 1:
        raise FewShotError("precision@k: k must be >= 1")
    return {"field": gt, "path": path, "positive_class": cls, "k": k}


def _truth(dataset, ids, rp):
    """Whether each sample (12-byte ids) is a positive of the ground truth.

    Asks MongoDB for the positives' IDs only (a rare class: few), never for a
    ``select()`` of every scored ID (1M IDs would not fit in one query).
    """
    from fiftyone import ViewField as F

    gt, cls = rp["field"], rp["positive_class"]
    if rp["path"] == gt:  # a string field
        view = dataset.match(F(gt) == cls)
    else:
        view = dataset.filter_labels(gt, F("label") == cls)
    pos = ecache.view_ids(view)
    return np.isin(ids, pos) if len(pos) else np.zeros(len(ids), bool)


def quality_metrics(raw, probs, truth, k):
    """AP (by score), precision@k, and precision/recall/F1 of "positive" = P >= 0.5."""
    truth = np.asarray(truth, bool)
    n_true = int(truth.sum())
    order = np.argsort(-np.asarray(raw), kind="stable")
    t = truth[order]
    ap = float((np.cumsum(t) / np.arange(1, len(t) + 1) * t).sum() / n_true) if n_true else 0.0
    k = min(k, len(t))
    pred = np.asarray(probs) >= 0.5
    tp = int((pred & truth).sum())
    return {
        "average_precision": round(ap, 4),
        "precision_at_k": round(float(t[:k].mean()), 4) if k else 0.0,
        "k": int(k),
        "precision": round(tp / max(int(pred.sum()), 1), 4),
        "recall": round(tp / max(n_true, 1), 4),
        "f1": round(2.0 * tp / max(int(pred.sum()) + n_true, 1), 4),
        "num_true_positive": n_true,
        "num_predicted_positive": int(pred.sum()),
        "num_scored": int(len(t)),
    }


def readout(dataset, ids, raw, probs, rp):
    """The quality readout on the scored, unlabeled samples (None if not asked)."""
    if rp is None:
        return None
    truth = _truth(dataset, ids, rp)
    out = quality_metrics(raw, probs, truth, rp["k"])
    out.update(ground_truth_field=rp["field"], positive_class=rp["positive_class"])
    return out


# -- label-next suggestions ------------------------------------------------------


# measured by bench/bench_suggest.py: 0.2 finds ~6x the positives of random labels
# and gives a better held-out AP than random (0.5 found more but lost AP)
DEFAULT_TOP_FRACTION = 0.2


def suggest_params(params):
    params = params or {}
    try:
        num = int(params["num_samples"]) if params.get("num_samples") is not None else 20
        frac = params.get("top_fraction")
        frac = DEFAULT_TOP_FRACTION if frac is None else float(frac)
    except (TypeError, ValueError):
        raise FewShotError("Number of samples and top fraction must be numbers")
    if num < 1:
        raise FewShotError("Number of samples to suggest must be >= 1")
    if not 0.0 <= frac <= 1.0:
        raise FewShotError("Top-scored fraction must be between 0 and 1")
    return {"num_samples": num, "top_fraction": frac}


def suggest_samples(dataset, view, params):
    """``(view of the suggested samples, summary)``: unlabeled samples of the
    view with predictions, a mix of top-scored and most uncertain ones."""
    p = suggest_params(params)
    state = SessionState(dataset)
    cfg = require_session(state)
    field = cfg["prediction_field"]
    if not dataset.has_field(field) or not cfg.get("iteration"):
        raise FewShotError("No predictions yet; run Train & Label first")
    pos, neg = labeled_ids(state)
    cand = view.exists(field)
    if pos or neg:
        cand = cand.exclude(pos + neg)
    ids, probs = cand.values(["id", field + "." + P_ATTR])
    keep = [i for i, v in enumerate(probs) if v is not None]
    if not keep:
        raise FewShotError("No unlabeled samples with predictions in the current view")
    ids = [ids[i] for i in keep]
    idx, n_top = suggest(np.asarray([probs[i] for i in keep]), p["num_samples"], p["top_fraction"])
    chosen = [ids[i] for i in idx]
    summary = {
        "num_suggested": len(chosen),
        "num_top_scored": int(min(n_top, len(chosen))),
        "num_boundary": int(len(chosen) - min(n_top, len(chosen))),
        "ids": chosen,
    }
    return dataset.select(chosen, ordered=True), summary


def predictions_view(dataset, view):
    """The view of samples with predictions, most likely positive first."""
    from fiftyone import ViewField as F

    state = SessionState(dataset)
    cfg = require_session(state)
    field = cfg["prediction_field"]
    if not dataset.has_field(field):
        raise FewShotError("No predictions yet; run Train & Label first")
    return view.exists(field).sort_by(F(field + "." + P_ATTR), reverse=True)


def get_session(dataset):
    """The session as a JSON-able dict (``{"active": False}`` if none)."""
    state = SessionState(dataset)
    if not state.active:
        return {"active": False, "dataset": dataset.name}
    cfg = dict(state.config)
    cfg.update(
        active=True,
        dataset=dataset.name,
        num_positive=state.get_meta(POSITIVE).get("count", 0),
        num_negative=state.get_meta(NEGATIVE).get("count", 0),
        subset=state.get_meta(SUBSET).get("count"),
        last_train=(cfg.get("history") or [None])[-1],
    )
    return cfg


def reset_session(dataset):
    """Ends the session; deletes only fields the session created."""
    state = SessionState(dataset)
    cfg = require_session(state)
    deleted = []
    for name in cfg.get("created_fields", []):
        f = dataset.get_field(name)
        if f is not None and ((getattr(f, "info", None) or {}).get(ROLE_KEY)):
            dataset.delete_sample_field(name)
            deleted.append(name)
    state.clear()
    ecache.clear(dataset)  # the plugin's own embedding cache files (rebuilt on demand)
    return {"deleted_fields": deleted, "iteration": cfg.get("iteration", 0)}
