"""The scorer as ``train_and_label`` runs it: Rocchio prototypes, optionally
with the pool's background (negative prototype shrunk toward the pool mean,
whitened metric) and calibrated probabilities. Pure numpy.

Settings (``MODEL_DEFAULTS`` in :mod:`.settings`; each default is what ``bench/bench_quality.py``
measured best among the options tried, against the seed scorer at every k; the
targets it still misses are printed by the bench):

- ``mode``, ``beta``, ``gamma``, ``temperature``: the seed scorer
  (:class:`.rocchio.RocchioScorer`); ``temperature`` only matters without
  calibration;
- ``calibrate`` (True): P(positive) from :mod:`.calibration`; False gives the
  plain seed ``sigmoid(s / temperature)``;
- ``whiten`` ("auto") and ``shrinkage`` ("auto"): the whitened metric of
  :mod:`.background`; "auto" whitens a rare concept from ``WHITEN_MIN_LABELS``
  positive labels on (the benchmark: +0.013 to +0.032 AP over no whitening at
  k = 5..20, but -0.030 at k = 1), True/False force it; "auto" shrinkage is
  :func:`.background.auto_shrinkage` of the positive labels (the probes
  deciding rare or common keep ``DEFAULT_SHRINKAGE``, what that decision was
  measured with), a number fixes it for both;
- ``background_weight`` ("auto"): how many times its labels' count the pool
  mean counts in the negative prototype (0 = labeled negatives only); "auto"
  is ``RARE_BACKGROUND_WEIGHT`` for a rare concept, 0 for a common one;
- ``power`` ("auto"): :mod:`.power`'s transform of the vectors, before
  anything else ("auto": 0.75 for nonnegative embeddings, else none; 1: off);
- ``kernel_weight`` ("auto"): weight of the soft nearest-neighbour term of
  :mod:`.kernel` added to the standardized prototype score (0 = prototypes
  only); "auto" is :func:`.kernel.common_weight` for a common concept (1,
  growing from 10 labels per side to 2 at 20; labels picked by suggestions
  do not count),
  ``RARE_KERNEL_WEIGHT`` for a rare one from ``KERNEL_POOL_MIN_POS`` positive
  labels where its negative side may take pool rows (their share shrinks as
  suggestions pick the negative labels: :func:`.kernel.pool_share`; from
  ``KERNEL_MIN_POS`` while positive labels outnumber negative ones), else 0.
  It needs 2 labels per side;
- ``neighbor_weight`` ("auto"): how far the top-scored samples' scores move
  toward their nearest pool samples' (:mod:`.neighbors`; 0 = off); "auto" is
  ``neighbors.WEIGHT`` for a rare concept while positive labels do not
  outnumber negative ones, else 0 (:meth:`FewShotModel._fit_neighbors`).

**Rare or common** ("auto" settings). The pool mean is a good stand-in for
"not the concept" only when the concept is rare, and the pool covariance's top
directions are the concept's own when it is common: at a 30-90% prior both
cost AP against the seed scorer (``bench/bench_quality.py``). Probe models
(labeled prototypes only, whitened as above) are fitted and calibrated on the
pool sample first: one with the labels as given and, from 5 negative and 2
positive labels, one with the negatives taken as the concept. Each estimates
its concept's share of the pool (the mean of the calibration's prior and twice
the pool's share scoring above the median leave-one-out positive, from 2
positive labels). The positives' estimate normalized by the sum of both
(``probe_prior``) decides: below ``COMMON_PRIOR`` the concept is rare (pool
background + whitening), and so it is below ``RARE_UNLESS`` while the
positives' own estimate is below ``COMMON_PRIOR``; else common (labeled
prototypes, no whitening). Positives of many kinds (a 90% "not a 1") are
estimated low when taken alone; the negatives, one kind, are then estimated
low too, which the normalization turns into a common prior. Measured
(``bench/bench_quality.py``, random labels at k = 5/10/20 on both data sets):
common concepts taken for rare 11 -> 9 of 300 trials, rare ones taken for
common 7 -> 6 of 160. Normalized alone (no ``RARE_UNLESS`` band) it was
11 -> 6 and 7 -> 9, and Fashion-MNIST one-vs-rest at k = 10 (rare, the main
use) fell below F1 0.70. The labels decide, never ground
truth; ``choice`` records it. A common concept's calibration then fixes the
pool's positive rate to the share of the pool on the prototypes' positive side
(``prior_method`` "boundary"): the mixture's own estimate runs low with few
labels; or, from 10 negative labels that look rare themselves, to 1 - the
rare-concept model's estimate for the negatives ("negatives",
:meth:`.decide.RareOrCommon._common_prior`).

``REFERENCE`` (:mod:`.settings`) are the seed settings (no background, no calibration).
"""

import numpy as np

from . import calibration, kernel, maps, neighbors, power
from .kernel import KernelTerm
from .neighbors import NeighborTerm
from .maps import quantile_prior
from .loo import MAX_LOO, SUSPECT_THRESHOLD, SUSPECT_Z, loo_scores, suspects
from .background import DEFAULT_BACKGROUND_WEIGHT, DEFAULT_SHRINKAGE, Background, auto_shrinkage
from .rocchio import RocchioScorer, ScoringError, sigmoid
from .settings import check_model_settings, picked_counts
from .decide import COMMON_PRIOR, RARE_UNLESS, RareOrCommon  # noqa: F401  (the decision's constants, re-exported)

WHITEN_MIN_LABELS = 5
RARE_BACKGROUND_WEIGHT = DEFAULT_BACKGROUND_WEIGHT
RARE_KERNEL_WEIGHT = 0.5
KERNEL_MIN_POS = 10  # a rare concept's kernel term lost AP below this (bench_quality.py)
KERNEL_POOL_MIN_POS = 5  # ... where pool rows or suggested negatives fill its negative side, from this many


class FewShotModel(RareOrCommon):
    """Fit on labeled unit-norm vectors and a sample of the pool; score; calibrate."""

    def __init__(self, **settings):
        self.settings = check_model_settings(**settings)
        s = self.settings
        self.scorer = RocchioScorer(s["mode"], s["beta"], s["gamma"], s["temperature"])
        self.calibration = None
        self._pos = self._neg = None
        self.choice = None  # "rare" / "common" once an "auto" setting was decided
        self.probe_prior = None
        self._negatives_prior = None  # the negatives' probe estimate, when it ran
        self._forced = None  # a choice made by the caller (the negatives' model below)
        self._fixed_prior = None  # (a common concept's pool positive rate, how it was estimated)
        self._kernel = None  # (KernelTerm, weight, prototype center, scale, kernel center, scale)
        self._neighbors = None  # NeighborTerm, when the pool neighbors' scores smooth the top
        self._quantile = None  # the quantile prior before that smoothing (:meth:`_fit_neighbors`)
        self._used_shrinkage = None  # the whitening's, when the fit whitened
        self._power = 1.0  # the power transform the fit chose (:mod:`.power`)

    def _auto(self):
        return "auto" in (self.settings["whiten"], self.settings["background_weight"])

    def whitens(self, num_pos):
        w = self.settings["whiten"]
        if w != "auto":
            return w
        return num_pos >= WHITEN_MIN_LABELS and self.choice != "common"

    def background_weight(self):
        w = self.settings["background_weight"]
        if w != "auto":
            return w
        return 0.0 if self.choice == "common" else RARE_BACKGROUND_WEIGHT

    def kernel_weight(self, num_pos, num_neg, picked):
        """``picked``: the positive and negative labels suggestions picked
        (:func:`.kernel.common_weight` counts the others)."""
        w = self.settings["kernel_weight"]
        if min(num_pos, num_neg) < 2:
            return 0.0
        if w != "auto":
            return w
        if self.choice == "common":
            return kernel.common_weight(num_pos - picked[0], num_neg - picked[1])
        enough = num_pos >= (KERNEL_POOL_MIN_POS if self._kernel_pool_rows(num_pos, num_neg) else KERNEL_MIN_POS)
        return RARE_KERNEL_WEIGHT if self.choice == "rare" and enough else 0.0

    def _kernel_pool_rows(self, num_pos, num_neg):
        """Whether the kernel term's negative side may take pool rows (their
        share: :func:`.kernel.pool_share`): where the pool stands in for
        negatives (a rare concept as "auto" decided it; not with explicit
        settings, which may be a common concept's), and not once most labels
        are positive (suggestions that come back mostly positive: a common
        concept taken for rare, which the pool rows, mostly its own samples
        then, made worse: bench_quality.py's loop, Fashion-MNIST 50%, F1 0.79
        -> 0.38 in one trial)."""
        return self.choice == "rare" and self.background_weight() > 0 and num_pos <= num_neg

    def uses_background(self, num_pos):
        return bool(self.whitens(num_pos) or self.background_weight() > 0)

    def fit(self, pos, neg, pool_sample=None, seed=0, background=None, selected=None):
        """``pool_sample``: unit-norm rows of the unlabeled pool (needed when the
        background is used; a random sample of it is enough). ``background``: a
        :class:`.background.Background` already fitted on that pool with this
        model's whitening (used as given; only with power 1: ScoringError
        else), or a function ``(whiten)`` that returns one, called ``(whiten,
        power)`` for the pool after :func:`.power.transform` when the power is
        not 1 (the benchmark reuses them per pool; this model's shrinkage
        replaces its own). ``selected``: as in
        :meth:`fit_calibration` (:meth:`_whitening`).

        Everything after the power transform sees the transformed vectors, the
        probes deciding rare or common included (probes on the untransformed
        vectors did no better: bench_quality.py --ours power=auto, 31 targets
        missed either way, and cost a second background fit)."""
        self.choice, self._neighbors, self._quantile = None, None, None
        picked = picked_counts(selected, len(pos), len(neg))  # (checked before any work)
        self._power = power.choose(self.settings["power"], pos, neg, pool_sample)
        pos, neg, pool_sample = (power.transform(a, self._power) for a in (pos, neg, pool_sample))
        if background is not None and self._power != 1.0:
            if not callable(background):
                raise ScoringError("A fitted Background is of untransformed vectors: with power %g pass a "
                                   "function (whiten, power) that returns one, or power=1" % self._power)
            # (the models fitted inside this one see transformed vectors: power 1)
            outer, p = background, self._power
            background = lambda w: outer(w, p)
        # undecided "auto" settings count as the rare concept's, which use the pool
        if (self._auto() or self.uses_background(len(pos))) and (pool_sample is None or len(pool_sample) == 0):
            raise ScoringError("The background needs a sample of the unlabeled pool")
        if not callable(background):
            background = self._memo(background, pool_sample, seed)
        if self._auto():
            self._decide(pos, neg, pool_sample, seed, background)
        whiten = self.whitens(len(pos))
        bg = background(whiten) if self.uses_background(len(pos)) else None
        bg = self._whitening(bg, whiten, len(pos) - picked[0])
        self.scorer.fit(pos, neg, background=bg, background_weight=self.background_weight())
        self._pos, self._neg = np.asarray(pos, np.float32), np.asarray(neg, np.float32)
        self.calibration = None
        w = self.kernel_weight(len(pos), len(neg), picked)
        if w > 0 and (pool_sample is None or len(pool_sample) == 0):
            raise ScoringError("The kernel term needs a sample of the unlabeled pool")
        # the prototypes' scores of the pool, for the common concept's prior and the kernel's scale
        r = self.scorer.raw_scores(pool_sample, normalized=True) if self.choice == "common" or w > 0 else None
        self._fixed_prior = self._common_prior(pos, neg, pool_sample, seed, background, r)
        self._fit_kernel(pool_sample, r, w, seed, picked[1])
        self._fit_neighbors(pool_sample, seed)
        return self

    def _fit_neighbors(self, pool_sample, seed):
        """The pool neighbors' smoothing (:mod:`.neighbors`), over the share of
        the pool sample that the estimated prior sets. "auto" is
        ``neighbors.WEIGHT`` for a concept "auto" decided rare, while positive
        labels do not outnumber negative ones (as for the kernel's pool rows:
        mostly positive labels are a common concept taken for rare), else 0:
        for a common concept the suggestion loop's F1 fell below the seed
        scorer's (bench_quality.py, Fashion-MNIST 50% and 70%), and explicit
        settings (the seed scorer's among them) keep their scores. The
        calibration's quantile prior is taken before the smoothing (after it,
        the rare map's estimate at the 10% priors fell to 0.65-0.83x the
        truth, from 0.75-1.09x)."""
        w = self.settings["neighbor_weight"]
        if w == "auto":
            w = neighbors.WEIGHT if self.choice == "rare" and len(self._pos) <= len(self._neg) else 0.0
        if w <= 0 or pool_sample is None or len(pool_sample) < 2:
            return
        share = neighbors.top_share(self.probe_prior)
        r = self._raw(pool_sample)
        if self.settings["calibrate"]:  # (only the calibration uses it)
            self._quantile = quantile_prior(r, self._loo_scores(seed=seed)[0])
        self._neighbors = NeighborTerm(pool_sample, r, share, w, seed=seed)

    def _whitening(self, bg, whiten, num_pos):
        """``bg`` with this model's shrinkage: auto is :func:`.background.auto_shrinkage`
        of ``num_pos``, the positive labels not picked by suggestions (top-scored,
        near the current direction: counted, bench_quality.py's loop missed 7
        targets instead of 5 at 20 trials), or 100 for a common concept."""
        self._used_shrinkage = None
        if bg is None or not whiten or getattr(bg, "eigvals", None) is None:
            return bg
        auto = auto_shrinkage(num_pos) if self.choice != "common" else DEFAULT_SHRINKAGE
        self._used_shrinkage = self._shrinkage(auto)
        return bg.reshrunk(self._used_shrinkage)

    def _shrinkage(self, auto):
        s = self.settings["shrinkage"]
        return auto if s == "auto" else s

    def _fit_kernel(self, pool_sample, r, w, seed, picked_neg):
        """The kernel term (weight ``w``) and the pool statistics both scores
        are standardized with (``r``: the prototypes' scores of the pool;
        ``picked_neg``: how many negative labels suggestions picked)."""
        self._kernel = None
        if w <= 0:
            return
        bg, share = None, kernel.pool_share(len(self._neg), picked_neg)
        if self._kernel_pool_rows(len(self._pos), len(self._neg)) and share > 0:
            bg = np.asarray(pool_sample)[r < np.quantile(r, 1.0 - kernel.BACKGROUND_TOP_OUT)]
        term = KernelTerm(self._pos, self._neg, seed=seed, background=bg, share=share)
        k = term.scores(pool_sample)
        self._kernel = (term, float(w), float(np.median(r)), float(r.std()) or 1.0,
                        float(np.median(k)), float(k.std()) or 1.0)

    def _combine(self, r, k):
        _, w, cr, sr, ck, sk = self._kernel
        return ((np.asarray(r, np.float64) - cr) / sr + w * (np.asarray(k, np.float64) - ck) / sk).astype(np.float32)

    def _memo(self, fixed, pool_sample, seed):
        """``whiten -> Background``, each fitted once (the probe and the model
        share it: one fit of a 20k x 1280 sample takes ~1 s here)."""
        memo = {}

        def get(whiten):
            if fixed is not None:
                return fixed
            if whiten not in memo:
                memo[whiten] = Background.fit(pool_sample, shrinkage=self._shrinkage(DEFAULT_SHRINKAGE),
                                              whiten=whiten, seed=seed)
            return memo[whiten]

        return get

    def describe(self):
        """What this fit used: the rare/common decision and the effective settings."""
        cal = self.calibration
        whitened = bool(self.scorer.background is not None and self.scorer.background.whitened)
        rows = bool(self._kernel and self._kernel[0].B is not None)
        return {
            "concept": self.choice,
            "probe_prior": None if self.probe_prior is None else round(float(self.probe_prior), 4),
            "whitened": whitened,
            "shrinkage": self._used_shrinkage if whitened else None,
            "background_weight": float(self.scorer.background_weight),
            "calibration": cal.method if cal is not None else None,
            "recalibrated_on": cal.recal[2] if cal is not None and cal.recal else 0,
            "kernel_weight": self._kernel[1] if self._kernel else 0.0,
            "kernel_pool_rows": rows,
            "kernel_pool_share": float("%.3g" % self._kernel[0].share) if rows else 0.0,
            "power": self._power,
            "neighbor_weight": self._neighbors.weight if self._neighbors else 0.0,
            "neighbor_share": round(self._neighbors.share, 3) if self._neighbors else 0.0,
        }

    def raw_scores(self, X):
        """Scores of unit-norm rows ``X`` (transformed as the fit chose)."""
        return self._raw(power.transform(X, self._power))

    def _raw(self, X):
        r = self.scorer.raw_scores(X, normalized=True)
        if self._kernel is not None:
            r = self._combine(r, self._kernel[0].scores(X))
        return r if self._neighbors is None else self._neighbors.apply(X, r)

    def fit_calibration(self, pool_scores, seed=0, selected=None):
        """Fits the calibration from the raw scores of the pool (no-op when off).

        ``selected``: ``(positive mask, negative mask)`` over the rows given to
        :meth:`fit`, True for labels picked from the scores (suggested): with
        enough of them the calibration is refitted on them
        (:func:`.calibration.recalibrate`). ``pool_scores`` are this model's
        scores of the pool sample :meth:`fit` was given: with the pool
        neighbors' smoothing, a rare concept's quantile prior comes from that
        sample's scores before the smoothing (:meth:`_fit_neighbors`)."""
        if not self.settings["calibrate"]:
            return None
        lp, ln, ip, in_ = self._loo_scores(seed=seed)
        own = self._raw(self._pos)
        picked = self._picked_scores(selected, seed)
        cal = self._base_calibration(pool_scores, lp, ln, own, seed, picked)
        if picked is not None:
            calibration.recalibrate(cal, np.r_[picked[0], picked[1]],
                                    np.r_[np.ones(len(picked[0])), np.zeros(len(picked[1]))], pool_scores)
        self.calibration = cal
        self._loo = (ip, lp, in_, ln)
        return self.calibration

    def _loo_scores(self, seed=0, rows=None):
        """Leave-one-out scores (:func:`.loo.loo_scores`), with the kernel term."""
        lp, ln, ip, in_ = loo_scores(self.scorer, self._pos, self._neg, seed=seed, with_index=True, rows=rows)
        if self._kernel is not None:
            kp, kn = self._kernel[0].loo(self._pos, self._neg, ip, in_)
            lp, ln = self._combine(lp, kp), self._combine(ln, kn)
        if self._neighbors is not None:
            lp, ln = self._neighbors.apply(self._pos[ip], lp), self._neighbors.apply(self._neg[in_], ln)
        return lp, ln, ip, in_

    def _picked_scores(self, selected, seed):
        """Leave-one-out scores of the labels marked in ``selected`` (at most
        ``MAX_LOO`` per side, drawn at random), or None. Scored on their own:
        the calibration's sample of labels can leave most of them out."""
        if selected is None:
            return None
        picked_counts(selected, len(self._pos), len(self._neg))  # (checks the masks)
        rng = np.random.default_rng(seed)
        rows = []
        for m in selected:
            r = np.flatnonzero(np.asarray(m, bool))
            rows.append(np.sort(rng.choice(r, MAX_LOO, replace=False)) if len(r) > MAX_LOO else r)
        lp, ln, ip, in_ = self._loo_scores(seed=seed, rows=tuple(rows))
        return lp, ln

    def _base_calibration(self, pool_scores, lp, ln, own, seed, picked):
        """The map before any recalibration on suggested labels (``picked``:
        the leave-one-out scores of the labels picked from the scores,
        ``(positives, negatives)``, or None): :mod:`.maps`."""
        if self._fixed_prior is not None:
            return maps.common_map(pool_scores, lp, ln, own, seed, *self._fixed_prior, picked)
        if self.choice == "rare":
            return maps.rare_map(pool_scores, lp, ln, own, seed, COMMON_PRIOR, q=self._quantile)
        return calibration.fit(pool_scores, lp, ln, own_pos=own, seed=seed)

    def suspects(self, threshold=SUSPECT_THRESHOLD, outlier_z=SUSPECT_Z):
        """Labeled samples whose leave-one-out score strongly disagrees with
        their label (:func:`.loo.suspects`): ``(positive rows, negative rows)``
        into the ``pos`` and ``neg`` given to :meth:`fit`, or None without
        calibration."""
        if self.calibration is None:
            return None
        return suspects(self.calibration, self._loo, threshold, outlier_z)

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
