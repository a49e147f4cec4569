"""Pure-numpy scoring for the few-shot plugin (no fiftyone import)."""

from .rocchio import (
    DEFAULTS,
    MODES,
    RocchioScorer,
    ScoringError,
    check_settings,
    l2_normalize,
    sigmoid,
    valid_rows,
)
from .model import FewShotModel
from .settings import MODEL_DEFAULTS, REFERENCE, check_model_settings
from .suggest import suggest
