"""Leave-one-out scores of the labeled samples (pure numpy): each labeled
vector scored by the prototypes refitted without it. Labeled samples built the
prototypes and would score optimistically; the calibration and the
possibly-mislabeled flags use these instead."""

import numpy as np

MAX_LOO = 300
SUSPECT_THRESHOLD = 0.05  # leave-one-out P(label) that flags it (bench_quality.py --noise)
SUSPECT_Z = 3.0


def _rows(k, max_items, rng, given):
    if given is not None:
        return np.asarray(given, np.int64)
    return np.arange(k) if k <= max_items else rng.choice(k, max_items, replace=False)


def loo_scores(scorer, pos, neg, max_items=MAX_LOO, seed=0, with_index=False, rows=None):
    """Leave-one-out raw scores of the labeled rows (unit-norm ``pos``/``neg``).

    Each labeled vector is scored by the scorer's prototypes refitted without it
    (same background and weights). Returns ``(pos_scores, neg_scores)``; a side
    with a single label has no leave-one-out score for positives, while a single
    negative is scored against the background-only prototype when there is one.
    At most ``max_items`` rows per side are scored (a random sample), or the
    rows given: ``rows = (pos_rows, neg_rows)``.
    ``with_index``: also the rows each score belongs to,
    ``(pos_scores, neg_scores, pos_rows, neg_rows)``.
    """
    pos = np.asarray(pos, dtype=np.float32)
    neg = np.asarray(neg, dtype=np.float32)
    p0, n0 = scorer.pos_centroid.copy(), scorer.neg_centroid.copy()
    kp, kn = len(pos), len(neg)
    rng = np.random.default_rng(seed)
    bg = scorer.background
    w = scorer.background_weight
    given = rows or (None, None)
    out, rows = [], [np.zeros(0, np.int64), np.zeros(0, np.int64)]
    try:
        # positives: the positive prototype without the item
        lp = []
        if kp > 1:
            idx = _rows(kp, max_items, rng, given[0])
            psum = p0.astype(np.float64) * kp
            rows[0] = np.asarray(idx, np.int64)
            for i in idx:
                scorer.set_prototypes((psum - pos[i]) / (kp - 1), n0)
                lp.append(float(scorer.raw_scores(pos[i : i + 1], normalized=True)[0]))
        out.append(np.asarray(lp))
        # negatives: the negative prototype without the item
        ln = []
        if kn > 1 or (bg is not None and w > 0):
            idx = _rows(kn, max_items, rng, given[1])
            if bg is not None:
                nsum = n0.astype(np.float64) * kn * (1.0 + w) - w * kn * bg.mean
            else:
                nsum = n0.astype(np.float64) * kn
            rows[1] = np.asarray(idx, np.int64)
            for i in idx:
                rest = nsum - neg[i]
                if bg is not None:
                    proto = (rest + w * max(kn - 1, 1) * bg.mean) / (max(kn - 1, 1) * (1.0 + w))
                    if kn == 1:
                        proto = bg.mean
                else:
                    proto = rest / (kn - 1)
                scorer.set_prototypes(p0, proto)
                ln.append(float(scorer.raw_scores(neg[i : i + 1], normalized=True)[0]))
        out.append(np.asarray(ln))
    finally:
        scorer.set_prototypes(p0, n0)
    if with_index:
        return out[0], out[1], rows[0], rows[1]
    return out[0], out[1]


def suspects(calibration, loo, threshold=SUSPECT_THRESHOLD, outlier_z=SUSPECT_Z):
    """Labeled samples whose leave-one-out score strongly disagrees with their
    label: ``(positive rows, negative rows)`` from ``loo = (positive rows,
    their scores, negative rows, their scores)``.

    A positive is flagged when its leave-one-out P(positive) is below
    ``threshold``, or below 0.5 while its score is more than ``outlier_z``
    standard deviations below the other positives' (the calibration is timid
    with few labels); negatives mirror it. One wrong support example misleads
    a prototype scorer most (``shared/notes/few-shot-scoring.md``);
    ``bench/bench_quality.py --noise`` measures the flags."""
    ip, lp, in_, ln = loo
    out = []
    for rows, s, sign in ((ip, lp, 1.0), (in_, ln, -1.0)):
        p = calibration.predict_proba(s) if len(s) else np.zeros(0)
        agree = p if sign > 0 else 1.0 - p  # P(the label is right)
        flag = agree < threshold
        if len(s) > 2:
            m = len(s) - 1
            mean = (s.sum() - s) / m  # of the others
            sd = np.sqrt(np.maximum(((s * s).sum() - s * s) / m - mean * mean, 1e-12))
            flag |= (agree < 0.5) & (sign * (s - mean) / sd < -outlier_z)
        out.append(rows[flag])
    return out[0], out[1]
