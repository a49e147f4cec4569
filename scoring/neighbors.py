"""The pool neighbors' scores: one step of smoothing over the pool (pure numpy).

Samples of a concept sit near each other: a sample whose nearest pool samples
score high is more likely the concept than its own score says, and one among
low-scoring neighbors less. Diffusion over the pool's neighbor graph uses this
in image retrieval (Zhou et al., "Learning with local and global consistency",
NIPS 2003; Iscen et al., CVPR 2017). One step of it, over the top of the
ranking only:

    s'(x) = (1 - w) z(x) + w sum_j a_j(x) z_j,   a(x) = softmax_j(beta x.c_j)

for a sample whose standardized score ``z(x)`` is at least the pool's ``cut``
(the score above which ``share`` of the pool sample lies); ``c_j`` are up to
``MAX_ROWS`` of those pool rows (a fixed random subset) and ``z_j`` their
scores; below the cut ``s' = z`` (``w`` grows from 0 over ``RAMP`` above it,
so that ``s'`` is continuous). Every ``z_j`` is at least the cut, so a sample
above it stays above every sample below it: the smoothing reorders the top
only, and a sample's score depends only on the sample (it can be scored in
blocks, and the calibration is fitted on the same function). A pool row never
counts as its own neighbor, nor does a near-duplicate of the sample (cosine >=
``SELF_COSINE``).

A labeled sample's leave-one-out score is smoothed with the pool rows' scores
of the model fitted on every label, itself included: its neighbors score a
little higher for it (the nearest-labels term most). Measured by a review
(digits, 10 + 10 labels, in pool standard deviations against a true refit
without the label): +0.21 on average, +0.04 without the smoothing. With the
calibration fitted on these scores, ECE at the 1-10% priors was equal or lower
in 16 of 21 bench_quality.py cells (random labels and the loop) and at most
0.006 higher in the others; refitting the rows' scores per left-out label
would remove it.

``share`` follows the concept's estimated prior (:func:`top_share`: twice it,
from ``MIN_SHARE`` to ``MAX_SHARE``): the concept's samples must be among the
rows for their neighbors to lift them. The model applies it to a concept it
decided rare (:meth:`.model.FewShotModel._fit_neighbors` says when, and why not
to a common one). ``bench/bench_quality.py`` against the previous defaults,
same trials: AP at the 1-10% priors +0.005 to +0.042 with random labels (all
15 cells, k = 5/10/20, both data sets), F1 up in 13 of them (digits 3% at
k = 10 / 20: -0.012 / -0.030); after the suggestion loop -0.002 (Fashion-MNIST
3%) to +0.049 (digits 1%). The choices, from AP alone over 10 + 10 random labels (every
prior bucket smoothed): a fixed share lost where it did not fit the concept
(0.2 gained nothing at digits 30-50%, where twice the prior gained +0.004 to
+0.019; 0.5 cost digits 3% 0.012, where twice the prior gained 0.017); hard
nearest 5 and beta 100 were within 0.003 (mean AP) of beta 60 (the kernel
term's, :data:`.kernel.BETA`), whose softmax costs less than a partial sort;
pool rows capped at 1,000 lost up to 0.005 at Fashion-MNIST 1-3%; neighbors
in the space the model scores in (after the power transform) did a little
better than in the raw embeddings. Cost (``bench/bench_scoring_cost.py``): one
``n_top x 2,000 x d`` product and its softmax for the ``n_top`` samples
above the cut, +0.2 s (d = 512) and +0.6 s (d = 1280) per 100k scored rows
at a 10% share on one core (+0.4 / +0.8 s with float64 similarities before);
it grows with the share.
"""

import numpy as np

from .kernel import BETA, SELF_COSINE

WEIGHT = 0.5
MAX_ROWS = 2000
MIN_SHARE, MAX_SHARE = 0.1, 0.5
DEFAULT_SHARE = 0.3  # without an estimated prior (explicit settings)
RAMP = 0.01  # pool standard deviations above the cut over which the weight grows from 0
CHUNK = 2048  # rows at a time: three 2,048 x 2,000 float32 arrays (~16 MB each)


def top_share(prior):
    """The share of the pool smoothed: twice the estimated ``prior`` (None:
    ``DEFAULT_SHARE``), from ``MIN_SHARE`` to ``MAX_SHARE``."""
    if prior is None or not np.isfinite(prior):
        return DEFAULT_SHARE
    return float(np.clip(2.0 * prior, MIN_SHARE, MAX_SHARE))


class NeighborTerm(object):
    """Fitted on unit-norm pool rows and their scores; :meth:`apply` smooths
    the scores of any unit-norm rows (module docstring)."""

    def __init__(self, rows, scores, share, weight=WEIGHT, beta=BETA, seed=0):
        s = np.asarray(scores, np.float64)
        self.center, self.scale = float(np.median(s)), float(s.std()) or 1.0
        self.share, self.weight, self.beta = float(share), float(weight), float(beta)
        z = (s - self.center) / self.scale
        self.cut = float(np.quantile(z, 1.0 - self.share))
        top = np.flatnonzero(z >= self.cut)
        if len(top) > MAX_ROWS:
            top = np.sort(np.random.default_rng(seed).choice(top, MAX_ROWS, replace=False))
        self.C = np.asarray(rows)[top].astype(np.float32)
        self.zc = z[top].astype(np.float32)

    def apply(self, X, scores):
        """The smoothed ``scores`` of unit-norm rows ``X`` (float32). The
        weight grows from 0 at the cut to ``weight`` at ``RAMP`` above it, so
        that the score is continuous there (a score within rounding of the cut,
        which can differ in the last bits from one block of rows to another,
        moves by as little)."""
        s = np.asarray(scores, np.float64)
        z = (s - self.center) / self.scale
        at = np.flatnonzero(z >= self.cut)
        out = s.copy()
        X = np.asarray(X)
        for i in range(0, len(at), CHUNK):
            rows = at[i : i + CHUNK]
            m = self._neighbors(X[rows].astype(np.float32, copy=False) @ self.C.T, z[rows])
            w = self.weight * np.minimum((z[rows] - self.cut) / RAMP, 1.0)
            out[rows] = self.center + self.scale * ((1.0 - w) * z[rows] + w * m)
        return out.astype(np.float32)

    def _neighbors(self, S, own):
        """Softmax-weighted mean of the rows' scores (``S``: the float32
        similarities, overwritten); ``own`` where every row is the sample itself."""
        itself = S >= SELF_COSINE
        S *= np.float32(self.beta)
        S[itself] = -np.inf
        top = S.max(axis=1, keepdims=True)
        alone = ~np.isfinite(top[:, 0])
        top[alone] = 0.0
        S -= top
        np.exp(S, out=S)
        with np.errstate(invalid="ignore", divide="ignore"):
            m = (S @ self.zc) / S.sum(axis=1)
        return np.where(alone, own, m.astype(np.float64))
