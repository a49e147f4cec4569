"""Label-next suggestions vs random labels: a simulated labeling loop.

On the Fashion-MNIST test embeddings (plugin's offline Lite0 zoo entry, see
fmnist_embeddings.py), one-vs-rest per class: 20% of the images are held out
for evaluation, the rest is the pool. The loop starts from 1 random positive +
1 random negative; each of 5 rounds trains the default model (what
``train_and_label`` writes), picks 10 pool samples and labels them from the
ground truth; either ``suggest`` (what ``suggest_samples`` shows, a top-scored /
most-uncertain mix) or 10 random pool samples. Reported after the 50 labels:
positives found among them, and the AP of the final model on the held-out 20%
(the same samples for both strategies).

    python bench/bench_suggest.py [--seeds 3] [--fractions 0.2 0.5 1.0 0.0]
"""

import argparse
import sys

import numpy as np

import common  # noqa: F401  (environment)
import fmnist_embeddings
from bench_quality import average_precision

sys.path.insert(0, common.REPO)
from scoring import FewShotModel, l2_normalize, suggest  # noqa: E402

ROUNDS, PER_ROUND = 5, 10


def loop(X, truth, pool, held, start, pick):
    """Runs the loop; returns (positives found in the picked labels, held-out AP)."""
    labeled = list(start)
    found = 0
    for _ in range(ROUNDS):
        lab = np.array(labeled)
        unl = np.setdiff1d(pool, lab)
        chosen = pick(lab, unl, truth)
        found += int(truth[chosen].sum())
        labeled.extend(chosen.tolist())
    lab = np.array(labeled)
    unl = np.setdiff1d(pool, lab)
    m = FewShotModel().fit(X[lab[truth[lab]]], X[lab[~truth[lab]]], X[unl])
    return found, average_precision(m.raw_scores(X[held]), truth[held])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.2, 0.5, 1.0, 0.0],
                    help="top-scored fractions of the suggestions to compare")
    ap.add_argument("--data", nargs="+", default=["fashion-mnist", "digits"])
    args = ap.parse_args()
    for data in args.data:
        run(args, data)


def run(args, data):
    import digits_embeddings

    X, y, classes = {"fashion-mnist": fmnist_embeddings.load, "digits": digits_embeddings.load}[data]()
    X = l2_normalize(X)

    def suggested(frac):
        def pick(lab, unl, truth):
            is_pos = truth[lab]
            _, p = FewShotModel().fit_score(X[lab[is_pos]], X[lab[~is_pos]], X[unl])
            idx, _ = suggest(p, PER_ROUND, top_fraction=frac)
            return unl[idx]

        return pick

    strategies = {"random": None}
    for f in args.fractions:
        strategies["suggest (top fraction %.1f)" % f] = suggested(f)
    results = {name: [] for name in strategies}
    for c in range(len(classes)):
        truth = y == c
        for seed in range(args.seeds):
            rng = np.random.default_rng(7_919 * c + seed)
            perm = rng.permutation(len(y))
            held, pool = np.sort(perm[: len(y) // 5]), np.sort(perm[len(y) // 5:])
            start = [rng.choice(pool[truth[pool]]), rng.choice(pool[~truth[pool]])]
            for name, pick in strategies.items():
                if pick is None:
                    r = np.random.default_rng(seed)
                    pick_fn = lambda lab, unl, truth: r.choice(unl, PER_ROUND, replace=False)  # noqa: E731
                else:
                    pick_fn = pick
                results[name].append(loop(X, truth, pool, held, start, pick_fn))
    print("\n%s, %d classes x %d seeds; start 1+1 labels, then %d rounds x %d labels\n"
          % (data, len(classes), args.seeds, ROUNDS, PER_ROUND))
    print("| strategy | positives found in the %d labels | vs random | held-out AP after |"
          % (ROUNDS * PER_ROUND))
    print("|---|---|---|---|")
    base = np.mean([r[0] for r in results["random"]])
    for name, rows in results.items():
        found, apv = np.mean(rows, axis=0)
        print("| %s | %.1f | %.2fx | %.3f |" % (name, found, found / base, apv))


if __name__ == "__main__":
    main()
