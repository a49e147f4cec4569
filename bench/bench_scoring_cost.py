"""What the scorer's optional terms cost: fit (on a 20k pool sample, as
``train_and_label`` fits) and scoring 100k rows in 16,384-row blocks (as it
writes), for a rare concept, each term off and on in the same run.

Synthetic nonnegative embeddings (20 clusters, one of them ~5% of the rows, so
that the defaults decide "rare"): only the time is measured here; the quality
of each term is ``bench_quality.py``'s.

    python bench/bench_scoring_cost.py [--n 100000] [--dims 512 1280]
"""

import argparse
import sys
import time

import numpy as np

import common

sys.path.insert(0, common.REPO)
from scoring import FewShotModel, l2_normalize  # noqa: E402

TERMS = {"neighbors off": dict(neighbor_weight=0.0), "defaults": {}}


def data(n, d, rng):
    centers = rng.normal(size=(20, d)).astype(np.float32)
    c = rng.integers(0, 19, n)
    c[rng.random(n) < 0.05] = 19
    X = l2_normalize(np.abs(centers[c] + 1.5 * rng.normal(size=(n, d)).astype(np.float32)))
    return X, c == 19


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100000)
    ap.add_argument("--dims", type=int, nargs="+", default=[512, 1280])
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print("| d | scorer | concept | neighbors' share | fit (20k sample) | score %d rows |" % args.n)
    print("|---|---|---|---|---|---|")
    for d in args.dims:
        X, y = data(args.n, d, rng)
        pos, neg = np.flatnonzero(y)[:10], np.flatnonzero(~y)[:10]
        S = X[np.sort(rng.choice(args.n, 20000, replace=False))]
        for name, settings in TERMS.items():
            m = FewShotModel(**settings)
            t = time.time()
            m.fit(X[pos], X[neg], S)
            m.fit_calibration(m.raw_scores(S))
            fit = time.time() - t
            t = time.time()
            for i in range(0, args.n, 16384):
                m.proba(m.raw_scores(X[i : i + 16384]))
            d_ = m.describe()
            print("| %d | %s | %s | %.2f | %.2f s | %.2f s |" % (
                d, name, d_["concept"], d_["neighbor_share"], fit, time.time() - t), flush=True)


if __name__ == "__main__":
    main()
