"""Label-next suggestions vs random labels: a simulated labeling loop.

On each data set of the quality bench (Fashion-MNIST test and scikit-learn
digits, Lite0 embeddings), one-vs-rest per class: 20% of the images are held out
for evaluation, the rest is the pool. The loop starts from 1 random positive +
1 random negative; each of 5 rounds trains the default model (what
``train_and_label`` writes), picks 10 pool samples and labels them from the
ground truth: either ``suggest`` (what ``suggest_samples`` shows: top-scored,
most uncertain and, optionally, random picks) or 10 random pool samples.
Reported after the 50 labels: positives found among them, and the AP of the
final model on the held-out 20% (the same samples for every strategy).

    python bench/bench_suggest.py [--seeds 3] [--data fashion-mnist digits]
                                  [--ours power=0.75 ...]   (settings other than the defaults)
"""

import argparse

import numpy as np

import common  # noqa: F401  (environment)
import quality_lib as q
from bench_quality import DATA
from scoring import FewShotModel, l2_normalize, suggest

ROUNDS, PER_ROUND = 5, 10
# (top-scored fraction, random fraction); (0.1, 0.0) is the default, (0.2, 0.0) was before
MIXES = [(0.2, 0.0), (0.1, 0.0), (0.0, 0.0), (0.1, 0.3)]
SETTINGS = {}  # the model's settings (--ours), for every strategy


def fit(pool, lab, suggested=False):
    """The model on labels ``lab``; with ``suggested``, those after the 1 + 1
    start are marked as picked by suggestions (as the plugin records them)."""
    t = pool.truth[lab]
    picked = np.arange(len(lab)) >= 2
    sel = (picked[t], picked[~t]) if suggested else None
    m = FewShotModel(**SETTINGS)
    m.fit(pool.X[lab[t]], pool.X[lab[~t]], pool.X, background=pool.background, selected=sel)
    return m, sel


def loop(pool, held_X, held_t, start, pick, suggested=False):
    """Runs the loop; returns (positives found in the picked labels, held-out AP)."""
    labeled = list(start)
    found = 0
    for r in range(ROUNDS):
        lab = np.array(labeled)
        unl = np.setdiff1d(np.arange(len(pool.truth)), lab)
        chosen = pick(lab, unl, r)
        found += int(pool.truth[chosen].sum())
        labeled.extend(chosen.tolist())
    return found, q.average_precision(fit(pool, np.array(labeled), suggested)[0].raw_scores(held_X), held_t)


def suggested(pool, top, rand):
    def pick(lab, unl, r):
        m, sel = fit(pool, lab, suggested=True)
        raw = m.raw_scores(pool.X[unl])
        m.fit_calibration(raw, selected=sel)
        idx, _, _ = suggest(m.proba(raw), PER_ROUND, top_fraction=top, random_fraction=rand, seed=r)
        return unl[idx]

    return pick


def run(args, data):
    X, y, classes = DATA[data]()
    X = l2_normalize(X)
    names = ["random"] + ["suggest (top %.1f, random %.1f)" % m for m in MIXES]
    results = {n: [] for n in names}
    for c in range(len(classes)):
        truth = y == c
        for seed in range(args.seeds):
            rng = np.random.default_rng(7_919 * c + seed)
            perm = rng.permutation(len(y))
            held, rows = np.sort(perm[: len(y) // 5]), np.sort(perm[len(y) // 5:])
            pool = q.Pool(X[rows], truth[rows])
            start = [rng.choice(np.flatnonzero(pool.truth)), rng.choice(np.flatnonzero(~pool.truth))]
            r = np.random.default_rng(seed)
            results["random"].append(loop(pool, X[held], truth[held], start,
                                          lambda lab, unl, _: r.choice(unl, PER_ROUND, replace=False)))
            for name, mix in zip(names[1:], MIXES):
                results[name].append(loop(pool, X[held], truth[held], start, suggested(pool, *mix), True))
    print("\n%s, %d classes x %d seeds; start 1+1 labels, then %d rounds x %d labels\n"
          % (data, len(classes), args.seeds, ROUNDS, PER_ROUND))
    print("| strategy | positives found in the %d labels | vs random | held-out AP after | vs random |"
          % (ROUNDS * PER_ROUND))
    print("|---|---|---|---|---|")
    base = np.mean(results["random"], axis=0)
    for name, rows in results.items():
        found, apv = np.mean(rows, axis=0)
        print("| %s | %.1f | %.2fx | %.3f | %+.3f |" % (name, found, found / base[0], apv, apv - base[1]),
              flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--data", nargs="+", default=list(DATA))
    ap.add_argument("--ours", nargs="+", default=[], metavar="SETTING=VALUE",
                    help="scorer settings other than the defaults (e.g. power=0.75)")
    args = ap.parse_args()
    SETTINGS.update(dict(s.split("=", 1) for s in args.ours))
    for data in args.data:
        run(args, data)


if __name__ == "__main__":
    main()
