"""The scorer as ``train_and_label`` runs it: Rocchio prototypes, optionally
with the pool's background (negative prototype shrunk toward the pool mean,
whitened metric) and calibrated probabilities. Pure numpy.

Settings (``MODEL_DEFAULTS``; the defaults are what ``bench/bench_quality.py``
measured better than the seed scorer at every k):

- ``mode``, ``beta``, ``gamma``, ``temperature``: the seed scorer
  (:class:`.rocchio.RocchioScorer`); ``temperature`` only matters without
  calibration;
- ``calibrate`` (True): P(positive) from :mod:`.calibration`; False gives the
  plain seed ``sigmoid(s / temperature)``;
- ``whiten`` ("auto") and ``shrinkage`` (100): the whitened metric of
  :mod:`.background`; "auto" whitens from ``WHITEN_MIN_LABELS`` positive labels
  on (the benchmark: +0.013 to +0.032 AP over no whitening at k = 5..20, but
  -0.030 at k = 1), True/False force it;
- ``background_weight`` (3): how many times its labels' count the pool mean
  counts in the negative prototype (0 = labeled negatives only).

``REFERENCE`` are the seed settings (no background, no calibration).
"""

import numpy as np

from . import calibration
from .background import DEFAULT_BACKGROUND_WEIGHT, DEFAULT_SHRINKAGE, Background
from .rocchio import DEFAULTS, RocchioScorer, ScoringError, check_settings, sigmoid

MODEL_DEFAULTS = dict(
    DEFAULTS,
    calibrate=True,
    whiten="auto",
    shrinkage=DEFAULT_SHRINKAGE,
    background_weight=DEFAULT_BACKGROUND_WEIGHT,
)
WHITEN_MIN_LABELS = 5
REFERENCE = dict(MODEL_DEFAULTS, calibrate=False, whiten=False, background_weight=0.0)


def _as_bool(v, name):
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, str) and v.lower() in ("true", "false", "on", "off"):
        return v.lower() in ("true", "on")
    if isinstance(v, (int, np.integer)) and v in (0, 1):
        return bool(v)
    raise ScoringError("%s must be true or false" % name)


def check_model_settings(**kw):
    """Validates all scorer settings; returns them as a normalized dict."""
    s = dict(MODEL_DEFAULTS)
    s.update({k: v for k, v in kw.items() if v is not None})
    unknown = set(s) - set(MODEL_DEFAULTS)
    if unknown:
        raise ScoringError("Unknown scorer setting(s): %s" % ", ".join(sorted(unknown)))
    out = check_settings(s["mode"], s["beta"], s["gamma"], s["temperature"])
    out["calibrate"] = _as_bool(s["calibrate"], "calibrate")
    out["whiten"] = "auto" if s["whiten"] == "auto" else _as_bool(s["whiten"], "whiten (or auto)")
    for name in ("shrinkage", "background_weight"):
        try:
            v = float(s[name])
        except (TypeError, ValueError):
            raise ScoringError("%s must be a number" % name)
        if not np.isfinite(v) or v < 0:
            raise ScoringError("%s must be a finite number >= 0" % name)
        out[name] = v
    if out["whiten"] is not False and out["shrinkage"] <= 0:
        raise ScoringError("shrinkage must be > 0 when whitening")
    return out


class FewShotModel(object):
    """Fit on labeled unit-norm vectors and a sample of the pool; score; calibrate."""

    def __init__(self, **settings):
        self.settings = check_model_settings(**settings)
        s = self.settings
        self.scorer = RocchioScorer(s["mode"], s["beta"], s["gamma"], s["temperature"])
        self.calibration = None
        self._pos = self._neg = None

    def whitens(self, num_pos):
        w = self.settings["whiten"]
        return num_pos >= WHITEN_MIN_LABELS if w == "auto" else w

    def fit(self, pos, neg, pool_sample=None, seed=0):
        """``pool_sample``: unit-norm rows of the unlabeled pool (needed when the
        background is used; a random sample of it is enough)."""
        s = self.settings
        bg = None
        whiten = self.whitens(len(pos))
        if whiten or s["background_weight"] > 0:
            if pool_sample is None or len(pool_sample) == 0:
                raise ScoringError("The background needs a sample of the unlabeled pool")
            bg = Background.fit(pool_sample, shrinkage=s["shrinkage"], whiten=whiten, seed=seed)
        self.scorer.fit(pos, neg, background=bg, background_weight=s["background_weight"])
        self._pos, self._neg = np.asarray(pos, np.float32), np.asarray(neg, np.float32)
        self.calibration = None
        return self

    def raw_scores(self, X):
        return self.scorer.raw_scores(X, normalized=True)

    def fit_calibration(self, pool_scores, seed=0):
        """Fits the calibration from the raw scores of the pool (no-op when off)."""
        if not self.settings["calibrate"]:
            return None
        lp, ln = calibration.loo_scores(self.scorer, self._pos, self._neg, seed=seed)
        own = self.raw_scores(self._pos)
        self.calibration = calibration.fit(pool_scores, lp, ln, own_pos=own, seed=seed)
        return self.calibration

    def proba(self, raw):
        if self.calibration is not None:
            return self.calibration.predict_proba(raw)
        return sigmoid(np.asarray(raw, dtype=np.float64) / self.settings["temperature"])

    def fit_score(self, pos, neg, pool):
        """Convenience for small pools: ``(raw scores, P(positive))`` of ``pool``."""
        self.fit(pos, neg, pool)
        raw = self.raw_scores(pool)
        self.fit_calibration(raw)
        return raw, self.proba(raw)
