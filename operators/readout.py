"""The optional quality readout: AP, precision@k, precision/recall/F1 of the
scored unlabeled samples against a ground-truth field. ``quality_metrics`` is
pure numpy; the rest reads the dataset."""

import numpy as np

from .. import fastdb
from .errors import FewShotError
from .params import name_param, precision_k

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
    k = precision_k(params)  # (checked without a readout too: the form shows the input either way)
    gt = name_param(params, "ground_truth_field") or ""
    cls = params.get("positive_class")
    cls = None if cls is None else str(cls).strip()
    if not gt and not cls:
        return None
    if not gt:
        raise FewShotError("A positive class needs a ground-truth field to compare with", param="ground_truth_field")
    field = dataset.get_field(gt)
    if field is None:
        raise FewShotError("Ground-truth field '%s' does not exist" % gt, param="ground_truth_field")
    if not cls:
        raise FewShotError("Name the positive class of ground-truth field '%s'" % gt, param="positive_class")
    if isinstance(field, fo.StringField):
        path = gt
    elif isinstance(field, fo.EmbeddedDocumentField) and field.document_type.__name__ in _TRUTH_TYPES:
        path = gt + _TRUTH_TYPES[field.document_type.__name__]
    else:
        raise FewShotError(
            "Ground-truth field '%s' must be a string, Classification, Classifications or "
            "Detections field" % gt, param="ground_truth_field"
        )
    if cls not in set(dataset.distinct(path)):
        raise FewShotError("Class '%s' does not occur in ground-truth field '%s'" % (cls, gt), param="positive_class")
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
    pos = fastdb.view_ids(view)
    return np.isin(ids, pos) if len(pos) else np.zeros(len(ids), bool)


def quality_metrics(raw, probs, truth, k):
    """AP (by score), precision@k, and precision/recall/F1 of "positive" = P >= 0.5."""
    truth = np.asarray(truth, bool)
    n_true = int(truth.sum())
    order = np.argsort(-np.asarray(raw), kind="stable")
    t = truth[order]
    k = min(k, len(t))
    pred = np.asarray(probs) >= 0.5
    tp, npred = int((pred & truth).sum()), int(pred.sum())

    def ratio(a, b):  # None ("n/a"), not 0, when undefined: no positive in scope
        return round(a / b, 4) if b else None

    return {
        "average_precision": ratio(float((np.cumsum(t) / np.arange(1, len(t) + 1) * t).sum()), n_true),
        "precision_at_k": ratio(float(t[:k].sum()), k),
        "k": int(k),
        "precision": ratio(tp, npred),
        "recall": ratio(tp, n_true),
        "f1": ratio(2.0 * tp, npred + n_true) if n_true else None,
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


def truth_fields(dataset, exclude=None):
    """Fields that can be a readout's ground truth: classification-like labels
    and strings (not the plugin's, not FiftyOne's own)."""
    import fiftyone as fo

    out = []
    for name, f in dataset.get_field_schema().items():
        if name in ("filepath", "id", exclude) or name.startswith("fewshot_"):
            continue
        if isinstance(f, fo.StringField) or (
            isinstance(f, fo.EmbeddedDocumentField) and f.document_type.__name__ in _TRUTH_TYPES
        ):
            out.append(name)
    return out


def truth_classes(dataset, field, limit=500):
    """The classes of a ground-truth field (for the readout's dropdown)."""
    f = dataset.get_field(field)
    if f is None:
        return []
    import fiftyone as fo

    path = field
    if isinstance(f, fo.EmbeddedDocumentField):
        path = field + _TRUTH_TYPES.get(f.document_type.__name__, ".label")
    return [str(c) for c in dataset.distinct(path)[:limit] if c is not None]
