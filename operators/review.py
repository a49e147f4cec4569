"""Reviewing predictions: the sorted predictions view and label-next suggestions."""

import numpy as np

from ..scoring import suggest
from .errors import FewShotError
from .labels import possibly_mislabeled
from .params import LABEL_FIELDS, suggest_params
from .session import P_ATTR, last_train, require_session
from .state import SessionState


def _unlabeled(view):
    from fiftyone import ViewField as F

    pos, neg = LABEL_FIELDS["positive"], LABEL_FIELDS["negative"]
    return view.match((F(pos) != True) & (F(neg) != True))  # noqa: E712


def suggest_samples(dataset, view, params):
    """``(view of the suggested samples, summary)``: unlabeled samples of the
    view with predictions, a mix of top-scored and most uncertain ones."""
    p = suggest_params(params)
    cfg = require_session(SessionState(dataset))
    field = cfg["prediction_field"]
    if not dataset.has_field(field) or not cfg.get("iteration"):
        raise FewShotError("No predictions yet; run Train & Label first")
    ids, probs = _unlabeled(view.exists(field)).values(["id", field + "." + P_ATTR])
    keep = [i for i, v in enumerate(probs) if v is not None]
    if not keep:
        raise FewShotError("No unlabeled samples with predictions in the current view")
    ids, probs = [ids[i] for i in keep], np.asarray([probs[i] for i in keep])
    idx, n_top, n_rand = suggest(probs, p["num_samples"], p["top_fraction"],
                                 random_fraction=p["random_fraction"], seed=int(cfg.get("iteration") or 0))
    chosen = [ids[i] for i in idx]
    SessionState(dataset).add_suggested(chosen)  # their labels are picked by score (calibration)
    near = probs[idx[n_top:len(idx) - n_rand]]
    summary = {"num_suggested": len(chosen), "num_top_scored": n_top,
               "num_boundary": len(chosen) - n_top - n_rand, "num_random": n_rand, "ids": chosen,
               "boundary_range": [round(float(near.min()), 3), round(float(near.max()), 3)] if len(near) else None,
               "iteration": int(cfg["iteration"])}
    return dataset.select(chosen, ordered=True), summary


def predictions_view(dataset, view):
    """The view of samples with predictions: unlabeled ones, most likely
    positive first, then the labeled ones (their "prediction" is the label)."""
    from fiftyone import ViewField as F

    cfg = require_session(SessionState(dataset))
    field = cfg["prediction_field"]
    # (the field exists from the start; an interrupted first train wrote some: it has a run record)
    if not dataset.has_field(field) or not (cfg.get("iteration") or cfg.get("run")):
        raise FewShotError("No predictions yet; run Train & Label first")
    labeled = (F(LABEL_FIELDS["positive"]) == True) | (F(LABEL_FIELDS["negative"]) == True)  # noqa: E712
    # (a sample labeled since the train has no prediction: it stays, with the labeled ones;
    # a new user saw 999 samples go to 996 as they labeled)
    return view.match(F(field).exists() | labeled).sort_by([(labeled, 1), (F(field + "." + P_ATTR), -1)])


def histogram_bar_view(dataset, x, width):
    """The samples of the last train's histogram bar centred at ``x``: those it
    scored (unlabeled, its run ID, in the field it wrote), most likely positive
    first. Matching the range alone mixed in predictions of earlier iterations
    outside its scope, and the labeled samples (23 shown on a bar of 10); the
    histogram counts the samples it repaired outside the view too."""
    from fiftyone import ViewField as F

    last = last_train(require_session(SessionState(dataset))) or {}
    if not last.get("run_id"):
        raise FewShotError("No predictions yet; run Train & Label first")
    field = last["prediction_field"]
    path = field + "." + P_ATTR
    lo, hi = max(0.0, x - width / 2), x + width / 2
    upper = (F(path) < hi) if hi < 1 else (F(path) <= 1)
    mine = F(field + ".run_id") == last["run_id"]
    return _unlabeled(dataset.view()).match(mine & (F(path) >= lo) & upper).sort_by(F(path), reverse=True)


def mislabeled_view(dataset):
    """The labeled samples the last train flagged as possibly mislabeled (that
    still carry that label), positives first."""
    cfg = require_session(SessionState(dataset))
    found = possibly_mislabeled(dataset, last_train(cfg))
    if not found or not found["count"]:
        raise FewShotError("No labels look mislabeled in the last train")
    return dataset.select(found["positive"] + found["negative"], ordered=True)


def subset_view(dataset, view):
    """The working subset (its random fill and the labeled samples) as a view."""
    import numpy as np

    from .. import fastdb
    from .labels import read_labels
    from .scope import SUBSET, view_key

    state = SessionState(dataset)
    cfg = require_session(state)
    if not int(cfg.get("subset_size") or 0):
        raise FewShotError("This session has no working subset (start it with a subset size)")
    meta = state.get_meta(SUBSET)
    if not meta or meta.get("view_key") != view_key(view):
        raise FewShotError("No working subset drawn for this view yet; Train & Label draws it")
    pos, neg = read_labels(dataset)
    fill = fastdb.to_bytes(state.get_ids(SUBSET))
    labeled = np.concatenate([pos, neg])
    fill = fill[~np.isin(fill, labeled)][: max(0, int(cfg["subset_size"]) - len(labeled))]
    return dataset.select(fastdb.to_str(np.concatenate([fill, labeled])))
