"""User errors: one base class, and one boundary that turns them into messages.

Modules raise their own error types (:class:`FewShotError` here,
``EmbeddingError`` in ``embeddings``, ``ScoringError`` in the pure-numpy
``scoring``); the operators' :func:`user_errors` boundary is the only place that
maps them to the message a form or an ``ExecutionError`` shows.
"""

import contextlib


class FewShotError(ValueError):
    """A problem with the user's input or data; the message is shown as is.
    ``param``: the operator param at fault, when one is (the form marks that
    input invalid with the message)."""

    def __init__(self, message="", param=None):
        super().__init__(message)
        self.param = param


def _user_error_types():
    from ..embeddings.fields import EmbeddingError
    from ..fastdb import WriteError
    from ..scoring import ScoringError

    return (FewShotError, EmbeddingError, ScoringError, WriteError)


@contextlib.contextmanager
def user_errors():
    """Re-raises any user error as :class:`FewShotError` (same message)."""
    try:
        yield
    except FewShotError:
        raise
    except _user_error_types() as e:
        raise FewShotError(str(e), param=getattr(e, "param", None)) from None
