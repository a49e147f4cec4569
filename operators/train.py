"""Train & Label: fit the scorer on the labels, score the inference set, write
predictions. A short orchestrator over named steps::

    [lease] prepare_run (check_train) -> gather_vectors -> fit_model
            -> runs.begin -> score_and_write -> commit -> record_iteration

Everything that can be checked is checked before ``runs.begin`` (params,
labels, scope, every vector's dimension and validity); from then on the run is
recorded, so a failure or a kill is visible and the next train repairs it.
"""

import time
from types import SimpleNamespace

import numpy as np

from .. import fastdb
from ..embeddings import warm
from ..embeddings.source import EmbeddingSource
from ..scoring import FewShotModel
from . import labels, readout, runs
from .errors import FewShotError
from .params import scorer_params
from .scope import describe, scope_ids, view_to_score
from .session import (P_ATTR, add_created, check_output_field, compute_embeddings, declare_prediction_field,
                      require_session, stored_roles)
from .state import Lease, SessionState

POOL_SAMPLE = 20000  # unlabeled samples the background and calibration are fitted on
BLOCK = 16384  # rows scored and queued for writing at a time
RETRIES = 5  # rounds of re-reading samples edited or re-labeled during the write


def _sub(progress, a, b):
    if progress is None:
        return None
    return lambda f, label: progress(a + (b - a) * f, label)


def check_train(dataset, view, params, state):
    """Checks without writes (the form runs it too): ``(config, settings, readout)``."""
    cfg = require_session(state)
    settings = scorer_params(params, cfg.get("scorer"))
    rp = readout.readout_params(dataset, params)
    check_output_field(dataset, cfg["prediction_field"], "prediction")
    _check_sample_view(view)
    if len(view) == 0:
        raise FewShotError("The current view is empty; nothing to score")
    c = labels.label_counts(dataset)  # (indexed counts: instant; the train reads the labels again)
    _check_counts(c["num_positive"], c["num_negative"])
    labels.check_both(dataset)
    return cfg, settings, rp


def _check_sample_view(view):
    """Refuses a view of patches, frames, clips or dynamic groups: its rows are not the
    dataset's samples (a patches view was scored as the whole dataset, or as
    nothing while recorded as a complete run over it)."""
    from fiftyone.core.clips import ClipsView
    from fiftyone.core.patches import PatchesView, EvaluationPatchesView
    from fiftyone.core.video import FramesView

    kinds = ((PatchesView, "patches"), (EvaluationPatchesView, "patches"), (FramesView, "frames"),
             (ClipsView, "clips"))
    what = next((w for cls, w in kinds if isinstance(view, cls)), None)
    # a group_by() view's rows are groups (one sample each on the grid); FiftyOne
    # has no public test for it (1.22), hence the private property
    if what is None and getattr(view, "_is_dynamic_groups", False):
        what = "groups"
    if what is not None:
        raise FewShotError("The grid shows %s, not samples; Train & Label scores samples: switch "
                           "the App back to the samples view" % what)


def _check_counts(npos, nneg):
    if not npos or not nneg:
        raise FewShotError("Training needs at least one positive and one negative label; have %d positive "
                           "and %d negative" % (npos, nneg))


def train_and_label(dataset, view, params, progress=None, delegated=False):
    """``delegated``: run by a worker (recorded: an open panel tells the train it
    queued from a train clicked meanwhile)."""
    t0 = time.time()
    params = params or {}
    state = SessionState(dataset)
    view, derived = view_to_score(state, view, params)
    with Lease(state, "train") as lease:
        run = prepare_run(dataset, view, params, state)  # checks the params (the form did too)
        run.scope = describe(dataset, view, run.cfg, derived)
        warm.wait(dataset, run.field)  # a warm-up start_session began in this process
        src = EmbeddingSource(dataset, run.field, _sub(progress, 0.05, 0.3))
        vec = gather_vectors(run, src, progress)
        model = fit_model(run, vec)
        rec = runs.begin(state, run.id, run.iteration, lease.token, int(vec.write.sum()), run.settings,
                         run.pred_field, delegated=delegated)
        try:
            run.removed_unfinished = runs.remove_elsewhere(dataset, run.cfg, run.repaired_runs, lambda f: stored_roles(
                dataset, {f: "EmbeddedDocumentField"})[f] == "prediction")
            out = score_and_write(run, vec, src, model, lease, progress)
        except Exception as e:
            if not lease.lost:
                runs.fail(state, rec, e)
            raise
        src.commit(out.committed_rows, out.committed_lma)
        lease.check()
        summary = record_iteration(run, rec, model, vec, out, src, t0)
    if progress is not None:
        progress(1.0, "Done")
    return summary


def prepare_run(dataset, view, params, state):
    """Session, settings, labels and the inference set (under the lease)."""
    cfg, settings, rp = check_train(dataset, view, params, state)
    pos, neg = labels.read_labels(dataset)
    _check_counts(len(pos), len(neg))
    repaired = runs.unfinished_ids(cfg)
    if not int(cfg.get("subset_size") or 0) and not view._pipeline():
        ids, redrawn = None, False  # the whole dataset: the matrix's IDs (no extra read)
    else:
        ids, redrawn = scope_ids(state, view, cfg, np.concatenate([pos, neg]),
                                 redraw=bool(params.get("resample_subset")))
        ids = np.union1d(ids, runs.repair_ids(dataset, cfg, repaired))
    if declare_prediction_field(dataset, cfg["prediction_field"]):  # the user deleted or renamed it
        state.update(lambda c: dict(c, created_fields=add_created(c, [cfg["prediction_field"]])))
    return SimpleNamespace(
        dataset=dataset, state=state, cfg=cfg, settings=settings, rp=rp, field=cfg["embedding_field"],
        pred_field=cfg["prediction_field"], ids=ids, pos=pos, neg=neg, npos=len(pos), nneg=len(neg),
        redrawn=redrawn, id=runs.new_run_id(), repaired_runs=repaired,
        iteration=int(cfg.get("iteration", 0)) + 1,
    )


def gather_vectors(run, src, progress=None):
    """Every vector of the inference set, checked: computes missing ones with
    the session's model, refuses bad labeled vectors and mixed dimensions."""
    m = src.matrix()
    ids = np.asarray(m.ids) if run.ids is None else run.ids
    rows = np.arange(len(ids)) if run.ids is None else m.rows(ids)
    alive = rows >= 0  # samples deleted since the scope was read are dropped
    ids, rows = ids[alive], rows[alive]
    lab = _label_of(ids, run.pos, run.neg)
    missing = ~m.present[rows]
    computed = 0
    if missing.any() and run.cfg.get("model") is not None:
        todo = ids[missing]
        computed = compute_embeddings(run.dataset, fastdb.to_str(todo), run.cfg, len(ids), _sub(progress, 0.3, 0.4))
        src.refresh(todo)
    present, valid = m.present[rows], m.valid[rows]
    if (~present & (lab != 0)).any():
        raise FewShotError("%d labeled sample(s) have no embedding in field '%s'"
                           % (int((~present & (lab != 0)).sum()), run.field))
    if (present & ~valid & (lab != 0)).any():
        raise FewShotError(
            "%d labeled sample(s) have NaN/infinite or all-zero embeddings in field '%s'; un-label "
            "them or recompute their embeddings" % (int((present & ~valid & (lab != 0)).sum()), run.field)
        )
    if m.dim is not None and run.cfg.get("dim") is not None and m.dim != run.cfg["dim"]:
        raise FewShotError(
            "Field '%s' now holds %d-d embeddings, the session was started with %d-d ones; start the "
            "session again" % (run.field, m.dim, run.cfg["dim"])
        )
    n = len(ids)
    vec = SimpleNamespace(m=m, ids=ids, lab=lab, rows=rows, computed=computed, scored=np.zeros(n, bool),
                          write=np.zeros(n, bool), skip_missing=np.zeros(n, bool), skip_invalid=np.zeros(n, bool))
    _classify(vec, np.arange(n))
    return vec


def _label_of(ids, pos, neg):
    """+1 / -1 / 0 for each of ``ids`` (labeled positive, negative, unlabeled)."""
    lab = np.zeros(len(ids), np.int8)
    lab[np.isin(ids, pos)] = 1
    lab[np.isin(ids, neg)] = -1
    return lab


def _classify(vec, at):
    """What happens to rows ``at``: scored, written, or skipped (why)."""
    r, unl = vec.rows[at], vec.lab[at] == 0
    present, valid = vec.m.present[r], vec.m.valid[r]
    vec.scored[at] = unl & valid
    vec.write[at] = vec.scored[at] | ~unl
    vec.skip_missing[at] = unl & ~present
    vec.skip_invalid[at] = unl & present & ~valid


def _pool_sample(n):
    """A fixed random sample of ``n`` positions (all when n <= POOL_SAMPLE)."""
    if n <= POOL_SAMPLE:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, POOL_SAMPLE, replace=False))


def fit_model(run, vec):
    """The scorer fitted on the labeled vectors and a fixed sample of the pool."""
    m = vec.m
    unl = np.flatnonzero(vec.lab == 0)
    sample = unl[_pool_sample(len(unl))]
    sample = sample[vec.scored[sample]]
    P, N = m.block(vec.rows[vec.lab > 0]), m.block(vec.rows[vec.lab < 0])
    S = m.block(vec.rows[sample]) if len(sample) else np.concatenate([P, N])
    pos_ids, neg_ids = vec.ids[vec.lab > 0], vec.ids[vec.lab < 0]
    picked = labels.suggested_masks(run.state, run.pos, run.neg, pos_ids, neg_ids)
    model = FewShotModel(**run.settings)
    model.fit(P, N, S, selected=picked)
    model.suspect_ids = None
    if len(sample):
        model.fit_calibration(model.raw_scores(S), selected=picked)
        model.suspect_ids = _suspects(model, pos_ids, neg_ids)
    return model


def _suspects(model, pos_ids, neg_ids):
    """Labeled samples whose leave-one-out score strongly disagrees with their
    label (:meth:`.FewShotModel.suspects`), as ID strings (at most
    ``labels.MAX_SUSPECTS`` per side, with the full counts)."""
    found = model.suspects()
    if found is None:
        return None
    sp, sn = found
    m = labels.MAX_SUSPECTS
    return {"positive": fastdb.to_str(pos_ids[sp][:m]), "negative": fastdb.to_str(neg_ids[sn][:m]),
            "num_positive": int(len(sp)), "num_negative": int(len(sn))}


def score_and_write(run, vec, src, model, lease, progress=None):
    """Scores and writes every row of the inference set. Samples edited while
    writing (their write did not apply) or re-labeled since the labels were read
    are re-read, re-scored and written again; any still changing after
    ``RETRIES`` rounds lose their prediction (counted)."""
    n = len(vec.ids)
    raw, probs = np.zeros(n, np.float32), np.zeros(n)
    todo = np.flatnonzero(vec.write)
    committed_rows, committed_lma = [], []
    num_written = 0
    edited = fastdb.to_bytes([])
    for attempt in range(RETRIES + 1):
        lease.check()  # a train that stalled and was replaced writes nothing more
        writer = _write(run, vec, model, todo, raw, probs, lease, _sub(progress, 0.4, 0.95) if attempt == 0 else None)
        # labels changed since this run read them: the vector may have been read after
        # the label write, so the write's condition held
        pos, neg = labels.read_labels(run.dataset)
        relabeled = vec.ids[_label_of(vec.ids, pos, neg) != vec.lab]
        edited = np.union1d(_edited(run, vec, todo, writer), relabeled)
        ok = todo[~np.isin(vec.ids[todo], edited)]
        committed_rows.append(vec.rows[ok])
        committed_lma.append(np.full(len(ok), writer.now, np.int64))
        num_written += writer.matched
        if not len(edited) or attempt == RETRIES:
            break
        todo = _reread(vec, src, edited, pos, neg)
    now = writer.now + 1
    skipped = vec.skip_missing | vec.skip_invalid
    removed = fastdb.remove_predictions(run.dataset, run.pred_field, vec.ids[skipped], now)
    removed += fastdb.remove_predictions(run.dataset, run.pred_field, edited, now)  # never stale-looking
    return SimpleNamespace(raw=raw, probs=probs, num_written=num_written, num_removed=removed,
                           num_kept_changing=int(len(edited)),
                           committed_rows=np.concatenate(committed_rows), committed_lma=np.concatenate(committed_lma))


def _write(run, vec, model, todo, raw, probs, lease, progress):
    m = vec.m
    order = todo[np.argsort(vec.rows[todo], kind="stable")]  # read the matrix in row order
    with fastdb.PredictionWriter(run.dataset, run.pred_field, P_ATTR, run.id, run.iteration) as w:
        for s in range(0, len(order), BLOCK):
            lease.check()  # fencing: a replaced train stops here (each write is also conditional)
            sel = order[s : s + BLOCK]
            sc = sel[vec.scored[sel]]
            if len(sc):
                raw[sc] = model.raw_scores(m.block(vec.rows[sc]))
                probs[sc] = model.proba(raw[sc])
            w.write(vec.ids[sel], m.lma[vec.rows[sel]], probs[sel], vec.lab[sel])
            if progress is not None:
                progress(min(s + BLOCK, len(order)) / max(len(order), 1), "Scored and wrote %d/%d" % (
                    min(s + BLOCK, len(order)), len(order)))
    return w


def _edited(run, vec, todo, writer):
    """IDs written but not matched: edited since read (deleted ones are left out)."""
    if writer.matched >= writer.sent:
        return fastdb.to_bytes([])
    return fastdb.not_written(run.dataset, run.pred_field, vec.ids[todo], run.id)


def _reread(vec, src, edited, pos, neg):
    """Re-reads edited samples' vectors, takes their labels as now; returns their positions."""
    src.refresh(edited)
    at = np.searchsorted(vec.ids, edited)
    vec.lab[at] = _label_of(edited, pos, neg)
    _classify(vec, at)
    return at[vec.write[at]]


def record_iteration(run, rec, model, vec, out, src, t0):
    """The summary, recorded in the session with the run marked complete."""
    sc = vec.scored
    p = out.probs[sc]
    n_pos = int((p >= 0.5).sum())
    cal = model.calibration
    summary = {
        "run_id": run.id, "iteration": run.iteration, "prediction_field": run.pred_field,
        "num_positive_labels": run.npos, "num_negative_labels": run.nneg,
        "num_in_scope": int(len(vec.ids)), "num_scored": int(sc.sum()),
        "num_predicted_positive": n_pos, "num_predicted_negative": int(sc.sum()) - n_pos,
        "num_written": int(out.num_written), "num_removed_stale": int(out.num_removed),
        "num_kept_changing": out.num_kept_changing, "repaired_runs": run.repaired_runs,
        "removed_unfinished": run.removed_unfinished,
        "num_skipped_missing_embedding": int(vec.skip_missing.sum()),
        "num_skipped_invalid_embedding": int(vec.skip_invalid.sum()),
        "num_computed_embeddings": int(vec.computed),
        "scope": run.scope,
        "embeddings_from_cache": bool(src.from_cache), "num_embeddings_reread": int(src.num_reread),
        "subset_redrawn": run.redrawn,
        "settings": run.settings, "delegated": bool(rec.get("delegated")),
        "scorer": model.describe(),
        "possibly_mislabeled": model.suspect_ids,
        "calibration": cal.to_dict() if cal else None,
        "estimated_pool_positive_rate": round(cal.prior, 4) if cal else None,
        "quality": readout.readout(run.dataset, vec.ids[sc], out.raw[sc], p, run.rp),
        "histogram": {"bins": np.linspace(0, 1, 21).round(2).tolist(),
                      "counts": np.histogram(p, bins=20, range=(0, 1))[0].tolist()},
        "timestamp": time.time(), "seconds": round(time.time() - t0, 3),
    }
    runs.finish(run.state, rec, summary)
    return summary
