"""Which unlabeled samples to label next (pure numpy).

A mix of the top-scored samples (likely positives to confirm: finds more of a
rare concept fast), the most uncertain ones, P(positive) closest to 0.5
(boundary samples: relevance feedback on the samples nearest the decision
boundary beats random, Tong & Chang, ACM MM 2001), and optionally a share of
random ones: labels picked only at the top and the boundary are a biased sample
of the pool, and a scorer trained on them alone ranks the rest worse than one
trained on as many random labels (``bench/bench_suggest.py``).
"""

import numpy as np


def suggest(probs, num, top_fraction=0.5, random_fraction=0.0, seed=0):
    """Indices into ``probs`` of ``num`` samples to label next.

    ``round(num * top_fraction)`` are the highest P(positive);
    ``round(num * random_fraction)`` (at most what is left) are drawn at random
    among the others (``seed``); the rest are the closest to 0.5 among those not
    already taken. Returned top first, then boundary, then random, without
    repeats. Returns ``(indices, number of top-scored, number of random)``.
    """
    probs = np.asarray(probs, dtype=np.float64)
    num = int(min(max(num, 0), len(probs)))
    for name, v in (("top_fraction", top_fraction), ("random_fraction", random_fraction)):
        if not 0.0 <= float(v) <= 1.0:
            raise ValueError("%s must be in [0, 1]" % name)
    n_top = int(round(num * float(top_fraction)))
    n_rand = min(int(round(num * float(random_fraction))), num - n_top)
    order = np.argsort(-probs, kind="stable")
    top = order[:n_top]
    rest = order[n_top:]
    rand = np.random.default_rng(seed).choice(rest, n_rand, replace=False) if n_rand else rest[:0]
    rest = rest[~np.isin(rest, rand)]
    boundary = rest[np.argsort(np.abs(probs[rest] - 0.5), kind="stable")[: num - n_top - n_rand]]
    return np.concatenate([top, boundary, rand]).astype(np.int64), n_top, n_rand
