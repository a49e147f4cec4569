"""Rocchio-style prototype scorer (pure numpy; importable without fiftyone).

Embeddings are L2-normalized, then summarized by two prototypes: the mean of the
positive vectors ``p`` and the mean of the negative vectors ``n``.

Two seed modes turn a vector ``x`` into a raw score ``s``:

- ``distance``: ``s = gamma * ||x - n|| - beta * ||x - p||``; positive when ``x`` is
  closer to the positive centroid. Plain (unsquared) Euclidean distances are used:
  they are not linear in ``x`` and ranked better than the dot product on real
  features (see ``shared/notes/few-shot-scoring.md``).
- ``query``: the Rocchio query vector ``q = beta * p - gamma * n`` and
  ``s = x . q``.

``P(positive) = sigmoid(s / temperature)`` (the plain seed sigmoid; the
calibrated probabilities are in :mod:`.calibration`).

Optionally (:class:`.background.Background`) the negative prototype is shrunk
toward the pool mean and distances/inner products use a metric whitened by the
pool covariance; without a background the scores are the seed formulas exactly.
"""

import numpy as np

MODES = ("distance", "query")

DEFAULTS = {"mode": "distance", "beta": 1.0, "gamma": 1.0, "temperature": 1.0}


class ScoringError(ValueError):
    """Raised for inputs the scorer cannot work with (a message for users);
    ``param``: the setting at fault, when one is."""

    def __init__(self, message="", param=None):
        super().__init__(message)
        self.param = param


def valid_rows(X):
    """Boolean mask of the rows of ``X`` that are finite and non-zero."""
    X = np.asarray(X)
    if X.ndim != 2:
        raise ScoringError("Embeddings must be a 2D array, got shape %s" % (X.shape,))
    finite = np.isfinite(X).all(axis=1)
    nonzero = np.zeros(len(X), dtype=bool)
    # norms only where finite, so inf/nan never propagate into warnings
    nonzero[finite] = np.einsum("ij,ij->i", X[finite], X[finite]) > 0
    return finite & nonzero


def l2_normalize(X, dtype=np.float32):
    """Returns a copy of ``X`` with unit-norm rows (rows must be valid)."""
    X = np.asarray(X, dtype=dtype)
    norms = np.sqrt(np.einsum("ij,ij->i", X, X))
    return X / norms[:, None]


def sigmoid(z):
    z = np.asarray(z, dtype=np.float64)
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


def check_settings(mode="distance", beta=1.0, gamma=1.0, temperature=1.0):
    """Validates scorer settings; returns them as a normalized dict."""
    if mode not in MODES:
        raise ScoringError(
            "Unknown scoring mode '%s'; expected one of %s" % (mode, ", ".join(MODES)), param="mode"
        )
    out = {"mode": mode}
    for name, v in (("beta", beta), ("gamma", gamma), ("temperature", temperature)):
        try:
            out[name] = float(v)
        except (TypeError, ValueError):
            raise ScoringError("beta, gamma and temperature must be numbers", param=name)
        if not np.isfinite(out[name]):
            raise ScoringError("%s must be a finite number" % name, param=name)
    for name in ("beta", "gamma"):
        if out[name] < 0:
            raise ScoringError("beta and gamma must be >= 0", param=name)
    if out["beta"] == 0 and out["gamma"] == 0:
        raise ScoringError("beta and gamma cannot both be 0", param=("beta", "gamma"))
    if out["temperature"] <= 0:
        raise ScoringError("temperature must be > 0", param="temperature")
    return out


class RocchioScorer(object):
    """Positive/negative prototypes over L2-normalized embeddings.

    Args:
        mode ("distance"): ``"distance"`` or ``"query"``
        beta (1.0): weight of the positive prototype
        gamma (1.0): weight of the negative prototype
        temperature (1.0): scores are divided by it before the sigmoid
    """

    def __init__(self, mode="distance", beta=1.0, gamma=1.0, temperature=1.0):
        s = check_settings(mode, beta, gamma, temperature)
        self.mode = s["mode"]
        self.beta = s["beta"]
        self.gamma = s["gamma"]
        self.temperature = s["temperature"]
        self.pos_centroid = None
        self.neg_centroid = None
        self.background = None
        self.background_weight = 0.0

    def settings(self):
        return {
            "mode": self.mode,
            "beta": self.beta,
            "gamma": self.gamma,
            "temperature": self.temperature,
        }

    def fit(self, pos, neg, background=None, background_weight=0.0):
        """Fits the prototypes from positive and negative embeddings (rows).

        With a ``background`` (:class:`.background.Background` of the pool), the
        negative prototype is shrunk toward the pool mean with
        ``background_weight`` and scores use its metric.
        """
        pos = np.asarray(pos, dtype=np.float32)
        neg = np.asarray(neg, dtype=np.float32)
        if pos.ndim != 2 or len(pos) == 0:
            raise ScoringError("At least one positive example is required")
        if neg.ndim != 2 or len(neg) == 0:
            raise ScoringError("At least one negative example is required")
        if pos.shape[1] != neg.shape[1]:
            raise ScoringError(
                "Positive and negative embeddings differ in dimension (%d vs %d)"
                % (pos.shape[1], neg.shape[1])
            )
        for name, X in (("positive", pos), ("negative", neg)):
            bad = int((~valid_rows(X)).sum())
            if bad:
                raise ScoringError(
                    "%d %s example(s) have NaN/infinite or all-zero embeddings"
                    % (bad, name)
                )
        self.background = background
        self.background_weight = float(background_weight) if background is not None else 0.0
        self.pos_centroid = l2_normalize(pos).mean(axis=0)
        neg = l2_normalize(neg)
        if background is not None:
            if background.dim != pos.shape[1]:
                raise ScoringError("The background model's dimension differs from the embeddings'")
            self.neg_centroid = background.negative_prototype(
                neg.sum(axis=0), len(neg), float(background_weight)
            ).astype(np.float32)
        else:
            self.neg_centroid = neg.mean(axis=0)
        self._prepare()
        return self

    def set_prototypes(self, pos_centroid, neg_centroid):
        """Replaces the prototypes (e.g. leave-one-out refits); keeps the background."""
        self.pos_centroid = np.asarray(pos_centroid, dtype=np.float32)
        self.neg_centroid = np.asarray(neg_centroid, dtype=np.float32)
        self._prepare()
        return self

    def _prepare(self):
        p, n = self.pos_centroid, self.neg_centroid
        cols = [p, n] if self.mode == "distance" else [self.beta * p - self.gamma * n]
        self._cols = np.stack(cols, axis=1).astype(np.float32)
        if self.background is not None and self.background.coefs.size:
            self._cols = np.concatenate([self._cols, self.background.vecs], axis=1)
            self._cproj = [c @ self.background.vecs for c in cols]

    @property
    def dim(self):
        return None if self.pos_centroid is None else len(self.pos_centroid)

    def raw_scores(self, X, normalized=False):
        """Raw scores ``s`` for the rows of ``X`` (higher = more positive).

        Rows must be valid (see :func:`valid_rows`). Pass ``normalized=True`` if
        ``X`` already has unit-norm rows.
        """
        if self.pos_centroid is None:
            raise ScoringError("The scorer is not fitted")
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.dim:
            raise ScoringError(
                "Expected embeddings of dimension %d, got shape %s" % (self.dim, X.shape)
            )
        if not normalized:
            X = l2_normalize(X)
        p, n = self.pos_centroid, self.neg_centroid
        # one matrix product: the prototypes (and the background's directions)
        dots = X @ self._cols
        bg = self.background
        if bg is not None:
            k = 2 if self.mode == "distance" else 1
            proj = dots[:, k:]
            if self.mode == "query":
                return bg.inner(dots[:, 0], proj, self._cproj[0] if bg.coefs.size else None)
            d2p = bg.sq_dists(dots[:, 0], proj, p, self._cproj[0] if bg.coefs.size else None)
            d2n = bg.sq_dists(dots[:, 1], proj, n, self._cproj[1] if bg.coefs.size else None)
            return self.gamma * np.sqrt(d2n) - self.beta * np.sqrt(d2p)
        if self.mode == "query":
            return dots[:, 0]
        # ||x - c||^2 = 1 - 2 x.c + ||c||^2 for unit x
        d2p = np.maximum(1.0 - 2.0 * dots[:, 0] + float(p @ p), 0.0)
        d2n = np.maximum(1.0 - 2.0 * dots[:, 1] + float(n @ n), 0.0)
        return self.gamma * np.sqrt(d2n) - self.beta * np.sqrt(d2p)

    def predict_proba(self, X, normalized=False):
        """P(positive) in [0, 1] for the rows of ``X``."""
        return sigmoid(self.raw_scores(X, normalized=normalized) / self.temperature)
