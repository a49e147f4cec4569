"""Power transform of the embeddings before the scorer sees them:
``x -> sign(x) |x|^power``, then unit norm (pure numpy).

CNN embeddings pooled after a ReLU are nonnegative, sparse and heavy-tailed
(EfficientNet-Lite0 here: 52-61% of the coordinates are 0 on Fashion-MNIST and
digits), so a few large activations dominate every dot product. A power below 1
evens them out; it is the power transform of transductive few-shot
classification (Hu, Gripon & Pateux, "Leveraging the feature distribution in
transfer-based few-shot learning", ICANN 2021, power 0.5). ``"auto"`` (the
default) applies ``AUTO_POWER`` only when every vector the fit sees is
nonnegative: signed embeddings (CLIP, DINOv2) are left as they are.

Measured (``bench/bench_quality.py``, Lite0 features, in the same runs):

- 0.75 against 1 (random labels, k = 5/10/20, 10 trials): targets missed
  32 -> 30; mean AP over the Similarity Search query at k = 10 +0.044 ->
  +0.047 (Fashion-MNIST), +0.061 -> +0.070 (digits). The suggestion loop
  (20 trials): 5 targets missed either way. ``bench/bench_suggest.py``:
  held-out AP after the suggested labels 0.835 both (Fashion-MNIST, 6 seeds),
  0.890 -> 0.901 (digits, 3 seeds).
- 0.5 gained more at random labels (mean AP over the query +0.049 /
  +0.079) but the suggestion loop missed 6 targets (Fashion-MNIST F1 below
  the seed scorer's at 3%, 40% and 70%).
- Raw pixel intensities (scikit-learn digits, nonnegative: "auto" applies)
  lost AP: -0.002 to -0.014 at the 1-10% priors with 0.75 (k = 5..20), up
  to -0.028 with 0.5; it is meant for a zoo model's pooled features.
"""

import numpy as np

from .rocchio import ScoringError

AUTO_POWER = 0.75


def choose(setting, *blocks):
    """The power a fit uses: ``setting`` when it is a number, else (``"auto"``)
    ``AUTO_POWER`` when every value of ``blocks`` is >= 0, else 1 (none)."""
    if setting != "auto":
        return float(setting)
    nonneg = all(float(np.min(b)) >= 0.0 for b in blocks if b is not None and np.size(b))
    return AUTO_POWER if nonneg else 1.0


def transform(X, power):
    """``X`` (rows) with each coordinate raised to ``power`` (sign kept), rows
    renormalized to unit norm; ``X`` itself when ``power`` is 1."""
    if power == 1.0 or X is None:
        return X
    X = np.asarray(X, np.float32)
    if X.ndim != 2:
        raise ScoringError("Expected rows of embeddings, got shape %s" % (X.shape,))
    Y = _pow(np.abs(X), power)  # (in place from here: each pass over 1M rows counts)
    np.copysign(Y, X, out=Y)
    norms = np.sqrt(np.einsum("ij,ij->i", Y, Y))
    Y /= np.maximum(norms, 1e-12)[:, None]
    return Y


def _pow(a, power):
    """``a ** power`` for ``a >= 0`` (in place). Quarter powers are square
    roots: np.power costs ~11 ns a value here, a square root ~1.2 (0.75 as
    s * sqrt(s), s = sqrt(a): ~3.7 ns, 9 s less for 1M x 1280 values)."""
    if power in (0.25, 0.5, 0.75):
        np.sqrt(a, out=a)
        if power == 0.75:
            a *= np.sqrt(a)
        elif power == 0.25:
            np.sqrt(a, out=a)
        return a
    return np.power(a, power, out=a)
