"""Starting, reading and resetting a session."""

import time
import uuid

import numpy as np

from .. import fastdb
from ..embeddings import cache as ecache
from ..embeddings import warm as ewarm
from ..embeddings import fields as efields
from ..embeddings import orphans as eorphans
from ..embeddings import zoo
from ..scoring import MODEL_DEFAULTS as SCORER_DEFAULTS
from . import appconfig, labels, params as P, runs
from .appconfig import visible_fields  # noqa: F401 (re-exported)
from .errors import FewShotError
from .scope import scope_ids
from .state import RESET_KEY, SESSION_KEY, Lease, SessionState, require_session  # noqa: F401 (re-exported)

ROLE_KEY = "fewshot_role"  # marks fields this plugin created, in field.info
P_ATTR = "p_positive"  # attribute on each prediction: P(positive), for sorting
RUN_ATTRS = {"run_id": "StringField", "iteration": "IntField", P_ATTR: "FloatField"}


def check_output_field(dataset, name, role):
    """True if ``name`` is ours to (re)use, False if it must be created.

    Refuses (never overwrites) a field that exists but this plugin did not
    create for ``role``.
    """
    import fiftyone as fo

    f = dataset.get_field(name)
    if f is None:
        return False
    ours = ((getattr(f, "info", None) or {}).get(ROLE_KEY)) == role
    if role == "prediction":
        right = isinstance(f, fo.EmbeddedDocumentField) and issubclass(f.document_type, fo.Classification)
        what = "an EmbeddedDocumentField(Classification)"
    else:
        right, what = isinstance(f, fo.BooleanField), "a BooleanField"
    if ours and right:
        return True
    desc = type(f).__name__
    if isinstance(f, fo.EmbeddedDocumentField):
        desc += "(%s)" % f.document_type.__name__
    fix = ("rename or delete that field to label with this plugin" if role == "label"  # (fixed names)
           else "choose another %s field name" % role)
    raise FewShotError(
        "Field '%s' already exists on the dataset (%s %s%s) and was not created by "
        "the few-shot plugin; %s (it will not be overwritten)"
        % (name, "an" if desc[0] in "AEIOU" else "a", desc, "" if right else ", not " + what, fix),
        param="prediction_field" if role == "prediction" else None,
    )


def check_start(dataset, view, params):
    """Validation of start params without writes (forms too); returns them normalized."""
    p = P.start_params(params, zoo.default_embedding_field)
    if p["model"] is None and p["embedding_field"] is None:
        # (no input marked: nothing typed is wrong yet, and the form opens this way)
        raise FewShotError("Choose an embedding model or an existing embedding field")
    if p["model"] is not None and not zoo.is_zoo_model(p["model"]):
        raise FewShotError(
            "Unknown zoo model '%s'; use a FiftyOne zoo model name such as %s"
            % (p["model"], ", ".join(zoo.SUGGESTED_MODELS[:3])), param="model"
        )
    media = (view if view is not None else dataset).media_type
    if p["model"] is not None and media not in ("image", "group"):  # (a group view's slices may be images)
        raise FewShotError(
            "Zoo models embed images, and these are %s samples: choose an embedding field that holds "
            "vectors you computed for them" % media, param="model"
        )
    for key, what in (("embedding_field", "embedding field"), ("prediction_field", "prediction field")):
        err = P.field_name_error(p[key], what)
        if err:
            raise FewShotError(err, param=key)
    if p["embedding_field"] == p["prediction_field"] or p["prediction_field"] in P.LABEL_FIELDS.values():
        raise FewShotError("The prediction field must differ from the embedding and label fields",
                           param="prediction_field")
    try:
        exists = efields.check_field_type(dataset, p["embedding_field"])
    except efields.EmbeddingError as e:
        raise FewShotError(str(e), param="embedding_field") from None
    rec = efields.recorded_info(dataset, p["embedding_field"]) if exists else {}
    if p["model"] is not None and rec.get("model") and rec["model"] != p["model"]:
        raise FewShotError(
            "Field '%s' holds embeddings of model '%s', not '%s'; choose another "
            "field or that model" % (p["embedding_field"], rec["model"], p["model"]), param="embedding_field"
        )
    if not exists and p["model"] is None:
        raise FewShotError(
            "Field '%s' does not exist; choose a model to compute embeddings into it" % p["embedding_field"],
            param="embedding_field"
        )
    check_output_field(dataset, p["prediction_field"], "prediction")
    for name in P.LABEL_FIELDS.values():
        check_output_field(dataset, name, "label")
    if len(view) == 0:
        raise FewShotError("The current view is empty; nothing to run a session on")
    return p


def _missing_in_scope(dataset, view, state, cfg, redraw):
    """``(missing ids (strings), scope size)``: samples in scope without an embedding."""
    field = cfg["embedding_field"]
    has = dataset.has_field(field)
    pos, neg = labels.read_labels(dataset)
    labeled = np.concatenate([pos, neg])
    if int(cfg.get("subset_size") or 0) > 0:
        ids, _ = scope_ids(state, view, cfg, labeled, redraw=redraw)
        lacking = fastdb.ids_matching(dataset, {field: None}) if has else ids  # absent or null: few
        return fastdb.to_str(ids[np.isin(ids, lacking)]), len(ids)
    # the view: MongoDB names the few samples that lack a vector; labeled samples
    # outside the view are in scope too
    outside = labels.not_in_view(view, fastdb.to_str(labeled))
    missing = fastdb.to_str(fastdb.view_ids(view.exists(field, False) if has else view))
    missing += efields.missing_ids(dataset, outside, field) if outside else []
    return missing, len(view) + len(outside)


def _declare_fields(dataset, pred):
    """Creates the label and prediction fields that do not exist; returns their names."""
    import fiftyone as fo

    created = []
    new_labels = [n for n in P.LABEL_FIELDS.values() if not check_output_field(dataset, n, "label")]
    if new_labels:
        fastdb.unset_fields(dataset, new_labels)  # undeclared leftovers never show as labels
    for name in new_labels:
        dataset.add_sample_field(name, fo.BooleanField, info={ROLE_KEY: "label"})
        created.append(name)
    labels.create_indexes(dataset)
    if declare_prediction_field(dataset, pred):
        created.append(pred)
    return created


def declare_prediction_field(dataset, pred):
    """Declares the prediction field (and its run attributes) when it does not
    exist (a new session, or the user deleted or renamed it since); refuses
    one the plugin did not create. Returns whether it was created.

    Checked against the stored schema and retried: the App's operator threads
    share one in-memory dataset and reload it, which can undo a schema change
    in memory between two steps (3 of 25 trains failed re-declaring the field
    while labels were given in another thread)."""
    created = False
    for _ in range(5):
        try:
            created |= _declare_prediction_once(dataset, pred)
        except FewShotError:  # (a refusal: a field of that name the plugin did not create)
            raise
        except ValueError:  # ("Cannot infer ... non-existent sample field": undone in memory)
            pass
        f = fastdb.stored_fields(dataset, [pred]).get(pred)
        if f and f["info"].get(ROLE_KEY) == "prediction" and set(RUN_ATTRS) <= set(f["fields"]):
            return created
        dataset.reload()
    raise FewShotError("Could not declare the prediction field '%s' (the dataset's schema kept changing "
                       "meanwhile); try again" % pred)


def _declare_prediction_once(dataset, pred):
    import fiftyone as fo

    created = not check_output_field(dataset, pred, "prediction")
    if created:
        dataset.add_sample_field(pred, fo.EmbeddedDocumentField, embedded_doc_type=fo.Classification,
                                 info={ROLE_KEY: "prediction"})
    declare_run_attrs(dataset, pred)
    return created


def declare_run_attrs(dataset, pred):
    import fiftyone as fo

    schema = dataset.get_field_schema(flat=True)
    for attr, ftype in RUN_ATTRS.items():
        if pred + "." + attr not in schema:
            dataset.add_sample_field(pred + "." + attr, getattr(fo, ftype))


def add_created(cfg, names):
    """The session's ``created_fields`` with ``names`` added (once each, in order)."""
    return list(dict.fromkeys((cfg.get("created_fields") or []) + list(names)))


def stored_roles(dataset, types):
    """``{name: role}`` for the fields ``types`` (``{name: FiftyOne field class
    name}``) as stored: the plugin role recorded on the field if it has that
    type, "" for a field of another owner or type, None when there is no such
    field. Read from the database, not the shared in-memory dataset
    (:func:`fastdb.stored_fields`)."""
    stored = fastdb.stored_fields(dataset, list(types))
    out = {}
    for name, ftype in types.items():
        f = stored.get(name)
        right = f is not None and (f["ftype"] or "").rsplit(".", 1)[-1] == ftype
        out[name] = None if f is None else ((f["info"].get(ROLE_KEY) or "") if right else "")
    return out


def _ensure_embeddings(dataset, view, state, cfg, p, progress):
    redraw = p["subset_size"] > 0 and (
        (state.config or {}).get("subset_size") != p["subset_size"] or p["randomize_subset"]
    )
    missing, n_scope = _missing_in_scope(dataset, view, state, cfg, redraw)
    field, computed = p["embedding_field"], 0
    if missing:
        computed = compute_embeddings(dataset, missing, cfg, n_scope, progress)
    elif p["model"] is not None and not efields.recorded_info(dataset, field):
        # precomputed by the user without a record: check the model's dimension
        efields.check_model_dim(view, field, zoo.load_model(p["model"]), p["model"])
    dim = efields.existing_dim(dataset, field)
    efields.stack_vectors(dataset.exists(field).limit(1000).values(field), dim)
    # (those the model could not embed, unreadable files: a train skips and counts them)
    return n_scope, computed, len(missing) - computed, dim


def compute_embeddings(dataset, missing, cfg, num_in_scope, progress=None):
    """Computes the ``missing`` (ID strings) embeddings with the session's model."""
    if not missing:
        return 0
    field = cfg["embedding_field"]
    if cfg.get("model") is None:
        raise FewShotError(
            "%d of %d samples in scope have no embedding in field '%s'; choose an "
            "embedding model so they can be computed" % (len(missing), num_in_scope, field)
        )
    if progress is not None:
        progress(0.0, "Loading model %s" % cfg["model"])
    model = zoo.load_model(cfg["model"])
    return efields.compute_missing(dataset, missing, field, model, cfg["model"], progress=progress)


def start_session(dataset, view, params, progress=None):
    """Starts (or reconfigures) the dataset's session; computes missing embeddings."""
    t0 = time.time()
    p = check_start(dataset, view, params)
    state = SessionState(dataset)
    with Lease(state, "start_session"):
        # FiftyOne's dataset singleton is not thread-safe: an operator in another
        # thread may have changed the schema through another instance
        dataset.reload()
        finish_killed_reset(dataset, state)
        cfg = dict(state.config or {}, **p)
        n_scope, computed, not_embedded, dim = _ensure_embeddings(dataset, view, state, cfg, p, progress)
        created = _declare_fields(dataset, p["prediction_field"])
        before = appconfig.snapshot(dataset)
        colors = appconfig.show(dataset, p["prediction_field"])
        before["active_paths"] = list(dataset.app_config.active_fields.paths)
        cur = state.config or {}
        pred = p["prediction_field"]
        # a field new to the session may hold predictions of runs it does not know (a clone's source's)
        # (or one it declared anew: the documents may hold values of a deleted field,
        # such as a train's whose field was deleted while it wrote)
        new_to_it = pred in created or pred != cur.get("prediction_field")
        found = runs.inherited(dataset, cur, pred) if new_to_it else ([], 0)

        def apply(cur):
            new = dict(cur or {}, **p)
            new.setdefault("session_id", uuid.uuid4().hex)
            new.setdefault("iteration", 0)
            new.setdefault("history", [])
            new.setdefault("scorer", dict(SCORER_DEFAULTS))
            new.setdefault("started_at", time.time())
            # a new session owns the label fields even when an earlier session left
            # them behind (a reset that was killed, a start that failed)
            owned = list(P.LABEL_FIELDS.values()) if cur is None else []
            new["created_fields"] = add_created(new, owned + created)
            new["label_fields"] = dict(P.LABEL_FIELDS)
            new["color_paths"] = sorted(set(new.get("color_paths") or []) | set(colors))
            new.setdefault("app_before", before)  # (the first start's: reset gives those back)
            new["dim"] = dim
            return runs.adopt(new, pred, *found) if found[0] else new

        cfg = state.update(apply, create=True)
    try:
        eorphans.sweep()  # (the caches of deleted datasets: nothing else removes them)
    except (OSError, RuntimeError):
        pass
    if (params or {}).get("warm_cache", True):
        # the first Train & Label then reads the cache like a repeat click
        ewarm.start(dataset, p["embedding_field"])
    out = {k: p[k] for k in ("model", "embedding_field", "prediction_field", "subset_size", "randomize_subset")}
    out.update(dim=dim, num_in_scope=n_scope, num_computed=computed, num_not_embedded=not_embedded,
               iteration=cfg["iteration"],
               seconds=round(time.time() - t0, 3))
    out.update(labels.label_counts(dataset))
    return out


def last_train(cfg):
    """The summary of the session's last train (None before the first)."""
    return (cfg.get("history") or [None])[-1]


def get_session(dataset):
    """The session as a JSON-able dict (``{"active": False}`` if none)."""
    state = SessionState(dataset)
    cfg = state.config
    if cfg is None:
        return {"active": False, "dataset": dataset.name}
    out = dict(cfg, active=True, dataset=dataset.name, subset=state.get_meta("subset").get("count"),
               last_train=last_train(cfg))
    out.update(labels.label_counts(dataset))
    out["possibly_mislabeled"] = labels.possibly_mislabeled(dataset, out["last_train"])
    out["run"] = runs.describe(dataset, state, cfg)
    return out


def _own(dataset, name):
    f = dataset.get_field(name)
    return f is not None and bool((getattr(f, "info", None) or {}).get(ROLE_KEY))


def _delete_own_fields(dataset, names):
    """Deletes the fields the session created, checked against the stored schema:
    an operator running at the same time in the App's thread pool can reload
    the shared in-memory dataset between FiftyOne's delete and save and write a
    deleted field back (seen 1 in 5 resets racing label calls)."""
    deleted = []
    for _ in range(10):
        dataset.reload()
        todo = [n for n in names if _own(dataset, n)]
        if not todo:
            break
        dataset.delete_sample_fields(todo)
        deleted += [n for n in todo if n not in deleted]
    return deleted


KEEP_TAGS = {"positive": "fewshot:positive", "negative": "fewshot:negative"}


def keep_labels_as_tags(dataset):
    """Tags the labeled samples ``fewshot:positive`` / ``fewshot:negative``."""
    pos, neg = labels.read_labels(dataset)
    for ids, tag in ((pos, KEEP_TAGS["positive"]), (neg, KEEP_TAGS["negative"])):
        if len(ids):
            dataset.select(fastdb.to_str(ids)).tag_samples(tag)
    return {"num_positive": int(len(pos)), "num_negative": int(len(neg))}


def reset_session(dataset, keep_labels=False):
    """Ends the session; deletes only fields the session created (after tagging
    the labeled samples, with ``keep_labels``). What it will do is stored
    first: a reset killed midway is finished by the next start
    (:func:`finish_killed_reset`)."""
    state = SessionState(dataset)
    require_session(state)
    with Lease(state, "reset_session"):
        cfg = require_session(state)
        if keep_labels:
            labels.read_labels(dataset)  # refuses (a sample marked both ways) before anything changes
        pending = {k: cfg.get(k) for k in ("created_fields", "color_paths", "app_before")}
        state.store.set(RESET_KEY, dict(pending, keep_labels=bool(keep_labels)))
        # then: a label call in flight sees the reset and takes its values back
        # (it says so); the tags are read after, so a label written before is kept
        state.store.delete(SESSION_KEY)
        try:
            kept = _tag_kept(state, pending) if keep_labels else None
        except Exception:
            state.store.set(SESSION_KEY, cfg)  # nothing deleted yet: the session goes on
            state.store.delete(RESET_KEY)
            raise
        deleted = _end(dataset, state, pending)
    ewarm.wait(dataset)  # a warm-up still running would save the cache after the clear
    ecache.clear(dataset)  # the plugin's own embedding cache files (rebuilt on demand)
    return {"deleted_fields": deleted, "iteration": cfg.get("iteration", 0), "kept_labels_as_tags": kept}


def _tag_kept(state, pending):
    kept = keep_labels_as_tags(state.dataset)
    state.store.set(RESET_KEY, dict(pending, keep_labels=True, tagged=True))
    return kept


def _end(dataset, state, pending):
    """A reset's last steps: the session's own fields, the App config, the store."""
    deleted = _delete_own_fields(dataset, pending.get("created_fields") or [])
    appconfig.restore(dataset, pending.get("color_paths") or [], pending.get("app_before"))
    state.clear()
    return deleted


def finish_killed_reset(dataset, state):
    """Finishes a reset that was killed after it ended the session (its record
    is left, no session): else the next session showed, and trained on, the old
    labels, and never deleted the old prediction field. Called under the lease."""
    pending = state.store.get(RESET_KEY)
    if pending is None or state.config is not None:
        return None
    if pending.get("keep_labels") and not pending.get("tagged"):
        _tag_kept(state, pending)
    return _end(dataset, state, pending)
