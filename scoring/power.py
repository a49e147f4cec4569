"""Power transform of the embeddings before the scorer sees them:
``x -> sign(x) |x|^power``, then unit norm (pure numpy).

CNN embeddings pooled after a ReLU are nonnegative, sparse and heavy-tailed
(EfficientNet-Lite0 here: 52-61% of the coordinates are 0 on Fashion-MNIST and
digits), so a few large activations dominate every dot product. A power below 1
evens them out; it is the power transform of transductive few-shot
classification (Hu, Gripon & Pateux, "Leveraging the feature distribution in
transfer-based few-shot learning", ICANN 2021, power 0.5). ``"auto"`` applies
``AUTO_POWER`` only when every vector the fit sees is nonnegative: signed
embeddings (CLIP, DINOv2) are left as they are.

Off by default (``power`` = 1 in :mod:`.settings`). Measured with
``bench/bench_quality.py --ours power=auto`` (Lite0 features, random labels,
k = 10): AP +0.007 to +0.020 at the Fashion-MNIST 1-10% priors and +0.028 to
+0.040 at digits 3-30%; but in the suggestion loop (20 trials) Fashion-MNIST's
F1 fell below the seed scorer's at the 3%, 40% and 70% priors (0.907 -> 0.855
at 40%), and on raw pixel intensities (scikit-learn digits, 3-8% priors) AP
fell 0.020.
"""

import numpy as np

from .rocchio import ScoringError

AUTO_POWER = 0.5


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
