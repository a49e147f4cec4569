"""The few-shot workflow, independent of the App: what each operator does.

Every function takes the dataset, the current view and the operator params
(absent params get their defaults), raises a user error with a message on bad
input, and returns a JSON-able summary. The steps live in the modules below;
this module is the one place the operators and the panel import.
"""

from ..scoring import MODEL_DEFAULTS as SCORER_DEFAULTS  # noqa: F401
from .errors import FewShotError, user_errors  # noqa: F401
from .labels import NEGATIVE, POSITIVE, clicked_ids, label_of, set_labels, target_ids  # noqa: F401
from .params import DEFAULT_PREDICTION_FIELD, DEFAULT_RANDOM_FRACTION, DEFAULT_TOP_FRACTION, LABEL_FIELDS  # noqa: F401
from .params import scorer_params, suggest_params  # noqa: F401
from .readout import readout_params, truth_classes, truth_fields  # noqa: F401
from .review import histogram_bar_view, mislabeled_view, predictions_view, subset_view, suggest_samples  # noqa: F401
from .session import (  # noqa: F401
    KEEP_TAGS, P_ATTR, check_start, get_session, last_train, require_session, reset_session,
)
from .session import start_session, visible_fields  # noqa: F401
from .progress import Progress  # noqa: F401
from .runs import worker_ran_since  # noqa: F401
from .progress import current as current_progress  # noqa: F401
from .scope import describe as describe_scope  # noqa: F401
from .scope import derived_record, remember_derived, resolve_base, view_key, view_to_score  # noqa: F401
from .state import SessionState, running_operation  # noqa: F401
from .train import check_train, train_and_label  # noqa: F401
