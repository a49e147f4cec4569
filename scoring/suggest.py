"""Which unlabeled samples to label next (pure numpy).

A mix of the top-scored samples (likely positives to confirm: finds more of a
rare concept fast) and the most uncertain ones, P(positive) closest to 0.5
(boundary samples: relevance feedback on the samples nearest the decision
boundary beats random, Tong & Chang, ACM MM 2001).
"""

import numpy as np


def suggest(probs, num, top_fraction=0.5):
    """Indices into ``probs`` of ``num`` samples to label next.

    ``round(num * top_fraction)`` are the highest P(positive); the rest the
    closest to 0.5 among those not already taken. Returned top first, then
    boundary, without repeats.
    """
    probs = np.asarray(probs, dtype=np.float64)
    num = int(min(max(num, 0), len(probs)))
    if not 0.0 <= float(top_fraction) <= 1.0:
        raise ValueError("top_fraction must be in [0, 1]")
    n_top = int(round(num * float(top_fraction)))
    order = np.argsort(-probs, kind="stable")
    top = order[:n_top]
    rest = order[n_top:]
    boundary = rest[np.argsort(np.abs(probs[rest] - 0.5), kind="stable")[: num - n_top]]
    return np.concatenate([top, boundary]).astype(np.int64), n_top
