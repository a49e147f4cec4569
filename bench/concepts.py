"""Concepts at controlled priors on real images (the quality issue's protocol).

A concept is a set of classes of a labeled image set; its prior is its share of
the pool. Buckets:

- 1% and 3%: one class, subsampled (per trial) to that share of the pool;
- 10%: one class vs the rest (every class);
- 30% / 40% / 50% / 70% / 90%: unions of classes (named for Fashion-MNIST), and
  complements ("not footwear", "not <class>").

``trials(X, y, bucket, ...)`` yields ``(name, pool_rows, truth)``: the rows of
the pool and which of them show the concept.
"""

import numpy as np

FMNIST_UNIONS = {
    0.3: [("footwear", [5, 7, 9])],
    0.4: [("tops", [0, 2, 4, 6])],
    0.5: [("tops+dress", [0, 2, 3, 4, 6]), ("not tops+dress", [1, 5, 7, 8, 9])],
    0.7: [("not footwear", [0, 1, 2, 3, 4, 6, 8])],
}
DIGITS_UNIONS = {
    0.3: [("0, 6, 8", [0, 6, 8])],
    0.4: [("1, 4, 7, 9", [1, 4, 7, 9])],
    0.5: [("even", [0, 2, 4, 6, 8]), ("odd", [1, 3, 5, 7, 9])],
    0.7: [("not 0, 6, 8", [1, 2, 3, 4, 5, 7, 9])],
}
UNIONS = {"fashion-mnist": FMNIST_UNIONS, "digits": DIGITS_UNIONS}
BUCKETS = (0.01, 0.03, 0.1, 0.3, 0.4, 0.5, 0.7, 0.9)


def concepts(dataset, y, bucket):
    """``[(name, classes, subsample_to)]`` for a bucket."""
    n = int(y.max()) + 1
    if bucket in (0.01, 0.03):
        return [("class %d at %g%%" % (c, bucket * 100), [c], bucket) for c in range(n)]
    if bucket == 0.1:
        return [("class %d" % c, [c], None) for c in range(n)]
    if bucket == 0.9:
        return [("not class %d" % c, [i for i in range(n) if i != c], None) for c in range(n)]
    return [(name, cls, None) for name, cls in UNIONS[dataset][bucket]]


def trials(dataset, y, bucket, per_bucket, seed=0):
    """``per_bucket`` trials spread over the bucket's concepts:
    ``(name, pool_rows, truth, rng)``."""
    cs = concepts(dataset, y, bucket)
    for t in range(per_bucket):
        name, cls, share = cs[t % len(cs)]
        rng = np.random.default_rng(1_000_003 * seed + 7_919 * t + int(bucket * 1000))
        member = np.isin(y, cls)
        rows = np.arange(len(y))
        if share is not None:
            neg = rows[~member]
            npos = max(int(round(share / (1 - share) * len(neg))), 2)
            pos = rng.choice(rows[member], min(npos, member.sum()), replace=False)
            rows = np.sort(np.concatenate([neg, pos]))
        yield name, rows, member[rows], rng
