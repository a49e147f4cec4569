"""The scorer's settings (``MODEL_DEFAULTS``, described in :mod:`.model`) and
their validation; ``REFERENCE`` are the seed settings (no background, no
calibration)."""

import numpy as np

from .rocchio import DEFAULTS, ScoringError, check_settings

MODEL_DEFAULTS = dict(
    DEFAULTS,
    calibrate=True,
    whiten="auto",
    shrinkage="auto",
    background_weight="auto",
    kernel_weight="auto",
    neighbor_weight="auto",
    power="auto",  # 0.75 for nonnegative embeddings (scoring/power.py)
)
REFERENCE = dict(MODEL_DEFAULTS, calibrate=False, whiten=False, background_weight=0.0, kernel_weight=0.0,
                 neighbor_weight=0.0, power=1.0)
MIN_POWER = 0.05  # (below, float32 powers flatten every vector to the same one)
# "auto" (an emptied field too: every default is auto) or a number in [lo, hi]
AUTO_NUMBERS = {
    "shrinkage": (0.0, np.inf, "a finite number >= 0"),
    "background_weight": (0.0, np.inf, "a finite number >= 0"),
    "kernel_weight": (0.0, np.inf, "a finite number >= 0"),
    "neighbor_weight": (0.0, 1.0, "a number from 0 to 1 (0: off)"),
    "power": (MIN_POWER, 1.0, "a number from %g to 1 (1: embeddings as they are)" % MIN_POWER),
}


def _as_bool(v, name, param=None):
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, str) and v.lower() in ("true", "false", "on", "off"):
        return v.lower() in ("true", "on")
    if isinstance(v, (int, np.integer)) and v in (0, 1):
        return bool(v)
    raise ScoringError("%s must be true or false" % name, param=param or name)


def check_model_settings(**kw):
    """Validates all scorer settings; returns them as a normalized dict."""
    s = dict(MODEL_DEFAULTS)
    s.update({k: v for k, v in kw.items() if v is not None})
    unknown = set(s) - set(MODEL_DEFAULTS)
    if unknown:
        raise ScoringError("Unknown scorer setting(s): %s" % ", ".join(sorted(unknown)))
    out = check_settings(s["mode"], s["beta"], s["gamma"], s["temperature"])
    out["calibrate"] = _as_bool(s["calibrate"], "calibrate")
    w = s["whiten"]
    auto = isinstance(w, str) and w.strip().lower() == "auto"
    out["whiten"] = "auto" if auto else _as_bool(w, "whiten (or auto)", "whiten")
    for name, (lo, hi, what) in AUTO_NUMBERS.items():
        if isinstance(s[name], str) and s[name].strip().lower() in ("auto", ""):
            out[name] = "auto"
            continue
        out[name] = _number(s[name], lo, hi, "%s must be auto or %s" % (name, what), name)
    if out["whiten"] is not False and out["shrinkage"] != "auto" and out["shrinkage"] <= 0:
        raise ScoringError("shrinkage must be > 0 when whitening", param="shrinkage")
    return out


def _number(v, lo, hi, message, param=None):
    """``v`` as a finite float in [lo, hi] (not a bool), else ScoringError(message)."""
    if isinstance(v, (bool, np.bool_)):
        raise ScoringError(message, param=param)
    try:
        v = float(v)
    except (TypeError, ValueError):
        raise ScoringError(message, param=param)
    if not (np.isfinite(v) and lo <= v <= hi):
        raise ScoringError(message, param=param)
    return v


def picked_counts(selected, num_pos, num_neg):
    """How many positive and negative labels ``selected`` (the masks of
    :meth:`.model.FewShotModel.fit`; None: none, per side too) marks as picked by
    suggestions; ScoringError when a mask is not one flag per label."""
    selected = (None, None) if selected is None else selected
    if len(selected) != 2:
        raise ScoringError("Labels picked by suggestions are two masks: (positives, negatives)")
    out = []
    for m, n in zip(selected, (num_pos, num_neg)):
        m = np.zeros(n, bool) if m is None else np.asarray(m)
        if m.shape != (n,) or not (m.dtype == bool or np.isin(m, (0, 1)).all()):
            raise ScoringError("A mask of labels picked by suggestions needs one true/false flag per label (%d)" % n)
        out.append(int(np.count_nonzero(m)))
    return out
