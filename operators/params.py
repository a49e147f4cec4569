"""Operator params: absent ones get their defaults, bad ones a message. Pure
(no FiftyOne, no database)."""

from ..scoring import MODEL_DEFAULTS as SCORER_DEFAULTS
from ..scoring import ScoringError, check_model_settings
from .errors import FewShotError

DEFAULT_PREDICTION_FIELD = "fewshot_prediction"
LABEL_FIELDS = {"positive": "fewshot_positive", "negative": "fewshot_negative"}
# measured by bench/bench_suggest.py (held-out AP after 50 suggested labels, over
# 50 random ones): 0.1 +0.049 / +0.063 (Fashion-MNIST / digits), 0.2 +0.040 / +0.055
# while finding more positives (5.4x / 5.1x random's, 0.1: 4.3x / 4.0x)
DEFAULT_TOP_FRACTION = 0.1
DEFAULT_RANDOM_FRACTION = 0.0  # random share of suggestions: 0.2-0.3 did not help (bench_suggest.py)


MAX_WHOLE = 2**53  # larger whole numbers are typos (and past 2**63 MongoDB cannot store them)


def whole_number(value, what, default, minimum=None, maximum=MAX_WHOLE, param=None):
    """``value`` as an int: absent -> ``default``; 2.5, "ten", True -> error
    (``param``: the param it came from, marked invalid on the form)."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise FewShotError("%s must be an integer, not %r" % (what, value), param=param)
    if isinstance(value, float):
        if not value.is_integer():
            raise FewShotError("%s must be an integer, not %r" % (what, value), param=param)
        value = int(value)
    try:
        out = int(str(value).strip()) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        raise FewShotError("%s must be an integer, not %r" % (what, value), param=param)
    if minimum is not None and out < minimum:
        raise FewShotError("%s must be >= %d" % (what, minimum), param=param)
    if out > maximum:
        raise FewShotError("%s must be at most %s" % (what, format(maximum, ",")), param=param)
    return out


def name_param(params, key):
    """A name param (model, field) stripped: None when absent or empty."""
    v = (params or {}).get(key)
    if v is None or isinstance(v, str):
        return (v or "").strip() or None
    raise FewShotError("%s must be a name (text), not %r" % (key, v), param=key)


def start_params(params, default_field_for=None):
    """Start-session params with defaults applied (no I/O).

    ``default_field_for(model)`` names the embedding field of a model.
    """
    params = params or {}
    model = name_param(params, "model")
    field = name_param(params, "embedding_field")
    if field is None and model is not None and default_field_for is not None:
        field = default_field_for(model)
    return {
        "model": model,
        "embedding_field": field,
        "prediction_field": name_param(params, "prediction_field") or DEFAULT_PREDICTION_FIELD,
        "subset_size": whole_number(
            params.get("subset_size"), "Working subset size", 0, minimum=0, param="subset_size"
        ),
        "randomize_subset": bool(params.get("randomize_subset", False)),
    }


def field_name_error(name, what):
    """Why ``name`` cannot be a field of ours (None if it can)."""
    if (not name or not isinstance(name, str) or name.startswith("_") or "." in name or "$" in name
            or any(ord(c) < 32 for c in name)):
        return "'%s' is not a valid %s name" % (name, what)
    return None


def scorer_params(params, previous=None):
    """Scorer settings: params, else the session's last ones, else defaults."""
    params = params or {}
    base = dict(SCORER_DEFAULTS)
    base.update(previous or {})
    for k in SCORER_DEFAULTS:
        if params.get(k) is not None:
            base[k] = params[k]
    try:
        return check_model_settings(**base)
    except ScoringError as e:
        raise FewShotError(str(e), param=e.param)


def suggest_params(params):
    params = params or {}
    num = whole_number(params.get("num_samples"), "Number of samples to suggest", 20, minimum=1, param="num_samples")
    frac = _fraction(params, "top_fraction", "Top-scored fraction", DEFAULT_TOP_FRACTION)
    rand = _fraction(params, "random_fraction", "Random fraction", DEFAULT_RANDOM_FRACTION)
    if params.get("top_fraction") is None:
        frac = min(frac, 1.0 - rand)  # only the random share was asked for
    if frac + rand > 1.0 + 1e-9:
        raise FewShotError("Top-scored and random fractions add up to more than 1",
                           param=("top_fraction", "random_fraction"))
    return {"num_samples": num, "top_fraction": frac, "random_fraction": rand}


def _fraction(params, key, what, default):
    v = params.get(key)
    try:
        v = default if v is None else float(v)
    except (TypeError, ValueError):
        raise FewShotError("%s must be a number between 0 and 1" % what, param=key)
    if not 0.0 <= v <= 1.0:
        raise FewShotError("%s must be between 0 and 1" % what, param=key)
    return v


def precision_k(params):
    return whole_number((params or {}).get("precision_k"), "precision@k: k", 100, minimum=1, param="precision_k")
