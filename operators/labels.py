"""Labels live on the samples: the boolean fields ``fewshot_positive`` and
``fewshot_negative`` are the only record of them.

Why the fields and not a list in the session: the grid shows the fields, so
what the user sees is by construction what training reads, and each label call
is one MongoDB update per sample that sets both fields at once (atomic per
document). Any interleaving of label calls from threads, tabs, scripts and
processes therefore leaves each sample with the label of the last call that
touched it, and no call can drop another's labels (a read-modify-write of
shared ID lists did: 136 of 192 labels lost by six threads). Partial indexes on
the ``True`` values make reading the labels instant on 1M samples.
"""

import numpy as np

from .. import fastdb
from .errors import FewShotError
from .params import LABEL_FIELDS
from .state import SessionState, require_session

POSITIVE, NEGATIVE = "positive", "negative"


def read_labels(dataset):
    """``(positive ids, negative ids)`` as sorted ``S12`` arrays.

    Each index read is instant but two of them are not one snapshot: a sample
    re-labeled between them would be missed or seen twice. So the candidates
    are the union of three reads (negative, positive, negative: a sample that
    changes label once while they run is in one of them) and each candidate's
    two fields are then read in one document read.
    """
    pf, nf = LABEL_FIELDS[POSITIVE], LABEL_FIELDS[NEGATIVE]
    if not dataset.has_field(pf) and not dataset.has_field(nf):
        return fastdb.to_bytes([]), fastdb.to_bytes([])  # no session yet: no labels
    cand = np.unique(np.concatenate([fastdb.ids_matching(dataset, {f: True}) for f in (nf, pf, nf)]))
    pos, neg = _current(dataset, cand)
    _refuse_both(len(np.intersect1d(pos, neg)))
    return np.sort(pos), np.sort(neg)


def check_both(dataset):
    """Refuses samples marked both ways, in the forms too (a run-time refusal
    reached Python as FiftyOne's whole traceback); an indexed count."""
    pf, nf = LABEL_FIELDS[POSITIVE], LABEL_FIELDS[NEGATIVE]
    if dataset.has_field(pf) and dataset.has_field(nf):
        _refuse_both(fastdb.count(dataset, {pf: True, nf: True}))


def _refuse_both(n):
    if n:
        raise FewShotError(
            "%d sample(s) are marked both positive and negative (fields %s and %s were edited "
            "by hand); label them again" % (n, LABEL_FIELDS[POSITIVE], LABEL_FIELDS[NEGATIVE])
        )


SUGGESTED_COMPLETE = 0.8  # share of a suggestion batch labeled for its labels to count as picked by score


def suggested_masks(state, pos, neg, pos_rows, neg_rows):
    """Which of the labeled ``pos_rows`` / ``neg_rows`` (ID arrays) were picked
    by the plugin's suggestions, as two boolean masks.

    A suggestion is picked by its score, not its label, so its label is an
    unbiased sample of P(positive | score), which the calibration refits on
    (:func:`..scoring.calibration.recalibrate`). That holds only if the user
    labels what was suggested whatever it shows: a batch counts only when at
    least ``SUGGESTED_COMPLETE`` of it is labeled now (labeling just the
    positives of a batch would pick by label). ``pos``/``neg``: all labels."""
    keep = []
    for batch in state.suggested_batches():
        ids = fastdb.to_bytes(batch)
        labeled = np.isin(ids, pos) | np.isin(ids, neg)
        if len(ids) and labeled.mean() >= SUGGESTED_COMPLETE:
            keep.append(ids[labeled])
    chosen = np.unique(np.concatenate(keep)) if keep else fastdb.to_bytes([])
    return np.isin(pos_rows, chosen), np.isin(neg_rows, chosen)


MAX_SUSPECTS = 100  # possibly mislabeled samples kept per side in a run's summary


def possibly_mislabeled(dataset, summary):
    """The last train's possibly mislabeled samples that still carry the label
    it flagged (a sample re-labeled or cleared since is no longer a suspect):
    ``{"positive": [ids], "negative": [ids], "count": n}``, or None."""
    flagged = (summary or {}).get("possibly_mislabeled")
    if not flagged:
        return None
    ids = fastdb.to_bytes(list(flagged["positive"]) + list(flagged["negative"]))
    pos, neg = _current(dataset, np.unique(ids)) if len(ids) else (ids, ids)

    def still(strs, have):
        return [i for i, ok in zip(strs, np.isin(fastdb.to_bytes(strs), have)) if ok]

    out = {"positive": still(flagged["positive"], pos), "negative": still(flagged["negative"], neg)}
    out["count"] = len(out["positive"]) + len(out["negative"])
    return out


def label_counts(dataset):
    return {
        "num_positive": fastdb.count(dataset, {LABEL_FIELDS[POSITIVE]: True}),
        "num_negative": fastdb.count(dataset, {LABEL_FIELDS[NEGATIVE]: True}),
    }


def create_indexes(dataset):
    have = set(dataset.list_indexes())
    for name in LABEL_FIELDS.values():
        if name + "_1" not in have:
            dataset.create_index(name, partialFilterExpression={name: True})


def clicked_ids(selected, current):
    """What a label button acts on: the sample open in the modal (``current``),
    else the selection. (In the modal the panel says "the open sample": the
    grid's selection, ticked before the modal opened, was labeled instead of
    the sample the user was looking at.)"""
    return [current] if current else list(selected or [])


def target_ids(view, selected, params, current=None):
    """Validated sample IDs (strings) to (un)label: ``sample_ids``, else
    :func:`clicked_ids`."""
    from bson import ObjectId

    ids = (params or {}).get("sample_ids")
    if ids is None:
        ids = clicked_ids(selected, current)
    if isinstance(ids, str):
        ids = [ids]
    if not isinstance(ids, (list, tuple)):
        raise FewShotError("sample_ids must be a list of sample IDs, not %s" % type(ids).__name__)
    bad = [repr(i) for i in ids if not isinstance(i, str) or not ObjectId.is_valid(i)]
    if bad:
        raise FewShotError("Not sample IDs: %s" % ", ".join(bad[:5]))
    ids = list(dict.fromkeys(i.lower() for i in ids))
    if not ids:
        raise FewShotError("No samples selected: select samples in the grid first")
    outside = not_in_view(view, ids)
    if outside:
        gone = not_in_view(view._root_dataset, outside)
        if gone:
            raise FewShotError(
                "%d selected ID(s) are not samples of dataset '%s' (deleted? or the grid shows "
                "patches, clips or frames, which cannot be labeled here)" % (len(gone), view._root_dataset.name))
        raise FewShotError(
            "%d selected sample(s) are not in the current view; clear the selection "
            "or change the view" % len(outside)
        )
    return ids


def not_in_view(view, ids):
    """The IDs (strings) among ``ids`` that are not samples of ``view`` (in
    chunks: a 1.5M-ID select would exceed MongoDB's 16 MB command limit)."""
    out = []
    for s in range(0, len(ids), 50_000):
        chunk = ids[s : s + 50_000]
        have = set(fastdb.to_str(fastdb.view_ids(view.select(chunk))))
        out += [i for i in chunk if i not in have]
    return out


def set_labels(dataset, view, selected, params, label, current=None, ids=None):
    """Labels the target samples ``label`` (POSITIVE/NEGATIVE/None = clear);
    ``ids``: the targets as :func:`target_ids` returned them, else resolved here."""
    from .session import stored_roles  # (session imports this module)

    state = SessionState(dataset)
    cfg = require_session(state)
    ids = fastdb.to_bytes(target_ids(view, selected, params, current) if ids is None else ids)
    pred = cfg["prediction_field"]
    roles = stored_roles(dataset, dict({n: "BooleanField" for n in LABEL_FIELDS.values()},
                                       **{pred: "EmbeddedDocumentField"}))
    check_label_fields(roles)
    pos0, neg0 = _current(dataset, ids)
    _, written_at = fastdb.set_label_flags(dataset, ids, {
        LABEL_FIELDS[POSITIVE]: True if label == POSITIVE else None,
        LABEL_FIELDS[NEGATIVE]: True if label == NEGATIVE else None,
    })
    _undo_if_reset(dataset, state, cfg, ids, written_at)
    was = np.where(np.isin(ids, pos0), 1, np.where(np.isin(ids, neg0), -1, 0))
    want = {POSITIVE: 1, NEGATIVE: -1, None: 0}[label]
    # a prediction made for the old label state (a copy of the old label at
    # confidence 1.0, or a model score for an unlabeled sample) would look
    # current beside the new label: it goes until the next train scores it
    if roles[pred] == "prediction":  # (never a field the user took over)
        fastdb.remove_predictions(dataset, pred, ids[was != want], fastdb.now_ms())
    state.labels_changed()
    out = {
        "label": label,
        "num_targeted": int(len(ids)),
        "num_changed": int((was != want).sum()),
        "num_moved": int(((was != 0) & (was != want) & (want != 0)).sum()),
    }
    out.update(label_counts(dataset))
    return out


def check_label_fields(roles):
    """Refuses to label while a label field is gone from the schema (deleted,
    renamed, or dropped by a saved ``keep_fields()`` view): values written there
    would not show in the grid, yet training would read them and the next
    start would clear them as leftovers. A field of that name the plugin did
    not create is refused too (never overwritten). ``roles``: the stored
    schema's (:func:`.session.stored_roles`; another process may have changed it)."""
    for name in LABEL_FIELDS.values():
        role = roles[name]
        if role is None:
            raise FewShotError(
                "The label field '%s' is gone from the dataset (deleted or renamed, with the labels it "
                "held); run Start Session to declare it again, then label" % name)
        if role != "label":
            raise FewShotError(
                "Field '%s' already exists on the dataset and was not created by the few-shot plugin; "
                "rename or delete that field to label with this plugin (it will not be overwritten)" % name)


def label_of(dataset, sample_id):
    """``"positive"``, ``"negative"`` or None: the label the sample holds now."""
    pos, neg = _current(dataset, fastdb.to_bytes([sample_id]))
    return POSITIVE if len(pos) else NEGATIVE if len(neg) else None


def _current(dataset, ids):
    """``(positive, negative)`` among ``ids``, each sample read once."""
    got, p, n = fastdb.label_flags(dataset, ids, LABEL_FIELDS[POSITIVE], LABEL_FIELDS[NEGATIVE])
    return got[p], got[n]


def _undo_if_reset(dataset, state, cfg, ids, written_at):
    """A reset that ran while we wrote deleted the fields first: our values
    would linger undeclared and show up in a later session. Take back the
    values this call wrote that nobody changed since (a label given in a new
    session meanwhile stays)."""
    now = state.config
    if now is not None and now.get("session_id") == cfg.get("session_id"):
        return
    fastdb.unset_fields(dataset, list(LABEL_FIELDS.values()), ids, written_at=written_at)
    raise FewShotError("The session was reset while labeling; start a session and label again")
