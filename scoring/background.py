"""What the unlabeled pool looks like: its mean and its main directions of spread.

Two uses, both from ``shared/notes/few-shot-scoring.md``:

- **Background negatives.** With one or a few negative labels, their mean is a
  noisy estimate of "everything that is not the concept". In a pool where the
  concept is rare, the pool mean is a much better one; the negative prototype is
  shrunk toward it: ``n = (sum(neg) + w * k_neg * pool_mean) / (k_neg * (1 + w))``.
- **Whitened distances** (LDA with a background covariance, Hariharan, Malik &
  Ramanan, ECCV 2012; GDA, Wang et al., ICLR 2024). Distances to the prototypes
  are measured with the metric ``A = lambda * (S + lambda I)^-1`` where ``S`` is
  the pool covariance and ``lambda`` a strong shrinkage (``shrinkage`` times the
  mean eigenvalue): directions in which the whole pool varies a lot (generic
  variation) count less. Eigen-directions with small eigenvalues change ``A`` by
  ``w / (w + lambda)``, almost nothing, so only the top ``rank`` directions are
  kept: ``A = I - sum_i c_i v_i v_i^T`` with ``c_i = w_i / (w_i + lambda)``,
  and scoring costs one extra ``rank``-column matrix product instead of a full
  ``d x d`` transform.

Pure numpy (no fiftyone import).
"""

import numpy as np

DEFAULT_SHRINKAGE = 100.0
DEFAULT_RANK = 64
DEFAULT_BACKGROUND_WEIGHT = 3.0
MAX_SAMPLE = 20000
SHRINKAGE_LABELS_SQ, MIN_SHRINKAGE = 3000.0, 10.0


def auto_shrinkage(num_pos):
    """A rare concept's whitening shrinkage from ``num_pos`` positive labels:
    ``3000 / num_pos^2`` within [10, 100] (k <= 5: 100, 10: 30, 20: 10). The
    centroid difference that whitening amplifies is noisier with fewer labels;
    from more, a stronger whitening pays. ``bench_quality.py``, random labels,
    10 trials per cell, against 100 at every k: AP at the 1-10% priors
    -0.003 to +0.034 at k = 10 (30), +0.003 to +0.078 at k = 20 (10), on
    Fashion-MNIST and digits; at k = 5, 60 gained under +0.021 and cost 0.004
    AP on a common concept taken for rare (Fashion-MNIST 30%), 40 or 30 cost
    F1 (digits 10%: 0.697 -> 0.618)."""
    return float(min(max(SHRINKAGE_LABELS_SQ / max(num_pos, 1) ** 2, MIN_SHRINKAGE), DEFAULT_SHRINKAGE))


class Background(object):
    """Pool mean and low-rank shrunk-covariance metric.

    Args:
        mean: mean of the (L2-normalized) pool vectors, shape ``[d]``
        vecs: top eigenvectors of the pool covariance, shape ``[d, r]``
        coefs: ``c_i`` per eigenvector (0 where whitening is off), shape ``[r]``
    """

    def __init__(self, mean, vecs, coefs, eigvals=None, unit=None):
        self.mean = np.asarray(mean, dtype=np.float32)
        self.vecs = np.asarray(vecs, dtype=np.float32)
        self.coefs = np.asarray(coefs, dtype=np.float32)
        # the eigenvalues and the pool's mean eigenvalue, kept to re-shrink (reshrunk)
        self.eigvals, self.unit = eigvals, unit

    @property
    def dim(self):
        return len(self.mean)

    @property
    def whitened(self):
        return bool(self.coefs.size and self.coefs.max() > 0)

    @classmethod
    def fit(cls, X, shrinkage=DEFAULT_SHRINKAGE, rank=DEFAULT_RANK, whiten=True, seed=0):
        """Fits from unit-norm pool rows ``X`` (a random sample of at most
        ``MAX_SAMPLE`` rows is used; ``X`` may be a memory map)."""
        n = len(X)
        if n == 0:
            raise ValueError("The pool is empty")
        if n > MAX_SAMPLE:
            idx = np.sort(np.random.default_rng(seed).choice(n, MAX_SAMPLE, replace=False))
            X = X[idx]
        X = np.asarray(X, dtype=np.float32)
        mean = X.mean(axis=0, dtype=np.float64)
        d = X.shape[1]
        if not whiten or len(X) < 3:
            return cls(mean, np.zeros((d, 0)), np.zeros(0))
        Xc = X - mean.astype(np.float32)
        # mean eigenvalue = trace / d; top-r eigenpairs by randomized subspace
        # iteration on Xc (never forms the d x d covariance: 2 n d r per pass)
        unit = max(float(np.einsum("ij,ij->", Xc, Xc)) / (len(X) - 1) / d, 1e-12)
        r = min(int(rank), d, len(X) - 1)
        Q = np.random.default_rng(seed).standard_normal((d, min(r + 16, d))).astype(np.float32)
        for _ in range(6):
            Q, _ = np.linalg.qr(Xc.T @ (Xc @ Q))
        B = Q.T @ (Xc.T @ (Xc @ Q)) / (len(X) - 1)
        w, U = np.linalg.eigh(B.astype(np.float64))
        w, V = np.maximum(w[::-1][:r], 0.0), (Q @ U[:, ::-1][:, :r].astype(np.float32))
        return cls(mean, V, w, w, unit).reshrunk(shrinkage)

    def reshrunk(self, shrinkage):
        """The same fit with another ``shrinkage`` (no refit: ``c_i`` only
        depends on the eigenvalues); itself when not whitened."""
        if self.eigvals is None or not self.coefs.size:
            return self
        lam = float(shrinkage) * self.unit
        return Background(self.mean, self.vecs, self.eigvals / (self.eigvals + lam), self.eigvals, self.unit)

    def negative_prototype(self, neg_sum, num_neg, weight):
        """The negative prototype shrunk toward the pool mean."""
        return (np.asarray(neg_sum, np.float64) + weight * num_neg * self.mean) / (
            num_neg * (1.0 + weight)
        )

    def project(self, X):
        """``X @ vecs`` (``[n, r]``)."""
        return np.asarray(X, dtype=np.float32) @ self.vecs

    def sq_dists(self, dots, proj, c, c_proj):
        """Squared metric distances between unit rows ``x`` and a point ``c``.

        ``dots = X @ c``, ``proj = X @ vecs``, ``c_proj = c @ vecs``:
        ``(x - c)^T A (x - c) = |x - c|^2 - sum_i c_i ((x - c).v_i)^2``.
        """
        d2 = 1.0 - 2.0 * dots + float(c @ c)
        if self.coefs.size:
            diff = proj - c_proj[None, :]
            d2 = d2 - (diff * diff) @ self.coefs
        return np.maximum(d2, 0.0)

    def inner(self, dots, proj, q_proj):
        """``x^T A q`` for unit rows ``x`` (``dots = X @ q``, ``q_proj = q @ vecs``)."""
        if not self.coefs.size:
            return dots
        return dots - proj @ (self.coefs * q_proj)
