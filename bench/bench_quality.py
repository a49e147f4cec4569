"""Quality of the written labels and confidences (the protocol of the
calibration issue), on real Fashion-MNIST test images embedded by the plugin's
offline EfficientNet-Lite0 zoo entry (cached under bench/.cache/).

One-vs-rest per class, k random positives + k random negatives, 20 seeds per
class, scored over the unlabeled rest. Prints mean AP, F1 of the written
"positive" label, ECE (10 bins) of P(positive) and the predicted/true positive
ratio, per k, for each scorer configuration.

    python bench/bench_quality.py [--ks 1 5 10 20] [--seeds 20]
"""

import argparse
import os
import sys

import numpy as np

import common  # noqa: F401  (environment)
import fmnist_embeddings

sys.path.insert(0, common.REPO)
from scoring import MODEL_DEFAULTS, FewShotModel, RocchioScorer, l2_normalize  # noqa: E402


def average_precision(scores, truth):
    order = np.argsort(-scores, kind="stable")
    t = truth[order]
    if not t.any():
        return 0.0
    precision = np.cumsum(t) / np.arange(1, len(t) + 1)
    return float((precision * t).sum() / t.sum())


def f1(pred, truth):
    tp = (pred & truth).sum()
    return float(2 * tp / max(pred.sum() + truth.sum(), 1))


def ece(p, truth, bins=10):
    b = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for i in range(bins):
        m = b == i
        if m.any():
            total += m.mean() * abs(p[m].mean() - truth[m].mean())
    return float(total)


def reference(Xp, Xn, XU):
    """The reference defaults: distance mode, beta = gamma = 1, T = 1, P >= 0.5."""
    s = RocchioScorer("distance").fit(Xp, Xn)
    p = s.predict_proba(XU, normalized=True)
    return s.raw_scores(XU, normalized=True), p, p >= 0.5


def model(**settings):
    """What ``train_and_label`` writes with these settings (P >= 0.5 = positive)."""

    def fn(Xp, Xn, XU):
        raw, p = FewShotModel(**settings).fit_score(Xp, Xn, XU)
        return raw, p, p >= 0.5

    return fn


CONFIGS = {
    "reference (distance, T=1, P>=0.5)": reference,
    "ours: train_and_label defaults": model(),
    "ours, whitening always on": model(whiten=True),
    "ours, whitening off": model(whiten=False),
    "ours, calibration off (seed sigmoid)": model(calibrate=False),
}


def evaluate(X, y, k, fn, seeds):
    rows = []
    for c in range(int(y.max()) + 1):
        for seed in range(seeds):
            rng = np.random.default_rng(100_003 * c + seed)
            pos = rng.choice(np.where(y == c)[0], k, replace=False)
            neg = rng.choice(np.where(y != c)[0], k, replace=False)
            unl = np.ones(len(y), bool)
            unl[pos] = unl[neg] = False
            truth = y[unl] == c
            score, p, pred = fn(X[pos], X[neg], X[unl])
            rows.append((average_precision(score, truth), f1(pred, truth), ece(p, truth),
                         pred.sum() / truth.sum()))
    return np.mean(rows, axis=0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 5, 10, 20])
    ap.add_argument("--seeds", type=int, default=20)
    args = ap.parse_args()
    X, y, classes = fmnist_embeddings.load()
    X = l2_normalize(X)
    print("Fashion-MNIST test, %d images, Lite0 %d-d; %d seeds x %d classes per k\n"
          % (len(y), X.shape[1], args.seeds, len(classes)))
    print("| scorer | k | mean AP | F1(positive) | ECE | predicted/true positives |")
    print("|---|---|---|---|---|---|")
    for name, fn in CONFIGS.items():
        for k in args.ks:
            m = evaluate(X, y, k, fn, args.seeds)
            print("| %s | %d | %.3f | %.3f | %.3f | %.2fx |" % (name, k, *m))


if __name__ == "__main__":
    main()
