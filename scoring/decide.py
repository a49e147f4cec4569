"""Rare or common: the probe models that decide it, and a common concept's
fixed pool positive rate (the :class:`.model.FewShotModel` methods that fit
other models; the rules are described in :mod:`.model`). Apart from the model
so that each file stays readable."""

import numpy as np

from .background import DEFAULT_SHRINKAGE
from .maps import quantile_prior

COMMON_PRIOR = 0.2
RARE_UNLESS = 0.25
# the negatives' probe rests on their leave-one-out scores: with 1 negative its
# prior was noise (a 10% concept called common, everything positive); with 2-3
# it decided worse than the positives' probe alone (scikit-learn digits pixels,
# 10 or 20 positives: rare concepts called common 7 -> 12-13 of 50), from 4 on
# as well or better
NEGATIVES_PROBE_MIN = 5
NEGATIVES_MODEL_MIN = 10  # a common concept's prior from the negatives' model (_common_prior)


class RareOrCommon(object):
    """Mixed into :class:`.model.FewShotModel` (``settings``, ``whitens``,
    ``_shrinkage``, ``choice``, ``probe_prior``, ``_forced`` and
    ``_negatives_prior`` are the model's)."""

    def _decide(self, pos, neg, pool_sample, seed, background):
        """Rare or common, from probe models' estimated priors (module docstring)."""
        self._negatives_prior = None
        if self._forced is not None:
            self.choice = self._forced
            return
        ep = self._probe_prior(pos, neg, pool_sample, seed, background)
        self.probe_prior = ep
        if len(pos) >= 2 and len(neg) >= NEGATIVES_PROBE_MIN:
            en = self._probe_prior(neg, pos, pool_sample, seed, background)  # the negatives as the concept
            self.probe_prior = ep / (ep + en) if ep + en > 0 else ep
            self._negatives_prior = en
        rare = self.probe_prior < COMMON_PRIOR or (ep < COMMON_PRIOR and self.probe_prior < RARE_UNLESS)
        self.choice = "rare" if rare else "common"

    def _probe_prior(self, pos, neg, pool_sample, seed, background):
        """The pool's positive rate as a probe model (labeled prototypes only)
        estimates it: the mean of its calibration's prior and the quantile prior."""
        probe = type(self)(**dict(self.settings, background_weight=0.0, kernel_weight=0.0, neighbor_weight=0.0,
                                  calibrate=True, power=1.0,
                                  whiten=self.whitens(len(pos)), shrinkage=self._shrinkage(DEFAULT_SHRINKAGE)))
        probe.fit(pos, neg, pool_sample, seed=seed, background=background)
        raw = probe.raw_scores(pool_sample)
        probe.fit_calibration(raw, seed=seed)
        est = [probe.calibration.prior]
        q = quantile_prior(raw, probe._loo[1])
        if q is not None:
            est.append(q)
        return float(np.mean(est))

    def _common_prior(self, pos, neg, pool_sample, seed, background, r):
        """A common concept's pool positive rate, fixed in its calibration: the
        share of the pool on the prototypes' positive side ("boundary"); when
        the negatives look rare themselves (their probe under ``COMMON_PRIOR``,
        from ``NEGATIVES_MODEL_MIN`` negative labels), 1 - the rare-concept
        model's estimate with the negatives as the concept ("negatives"). The
        boundary runs low at a 90% concept ("all but one class": 0.82-0.89x
        the truth at k = 10-20); the negatives' model was within 0.93-0.98x
        (``bench/bench_quality.py``: ECE 0.107 -> 0.050 on Fashion-MNIST, 0.118 ->
        0.079 on digits at k = 10). With 5 negatives it ran high at 30-40%
        concepts (digits k = 5: F1 below the seed scorer's), hence the minimum."""
        if self.choice != "common" or not self.settings["calibrate"]:
            return None  # (only the calibration uses it)
        en = self._negatives_prior
        if en is not None and en < COMMON_PRIOR and len(neg) >= NEGATIVES_MODEL_MIN:
            # (its prior was measured with the fixed shrinkage: 0.93-0.98x below)
            other = type(self)(**dict(self.settings, shrinkage=self._shrinkage(DEFAULT_SHRINKAGE), power=1.0,
                                      neighbor_weight=0.0))
            other._forced = "rare"
            other.fit(neg, pos, pool_sample, seed=seed, background=background)
            other.fit_calibration(other.raw_scores(pool_sample), seed=seed)
            return 1.0 - other.calibration.prior, "negatives"
        return float(np.mean(r > 0)), "boundary"
