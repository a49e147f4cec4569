"""Progress of long operations, where every tab's panel can see it.

The App shows an operator's ``ctx.set_progress`` only next to the operator
itself; the panel polls this record in the session's execution store instead.
"""

import time
import uuid

PROGRESS_KEY = "progress"
WRITE_EVERY = 0.5  # seconds between store writes
STALE_AFTER = 120  # seconds without an update: the operation died


class Progress(object):
    """A progress callback ``(fraction, label)`` that also records itself."""

    def __init__(self, state, operation, forward=None):
        self.state, self.operation, self.forward = state, operation, forward
        self.started = time.time()
        self._last, self._label = 0.0, None
        self._token = uuid.uuid4().hex
        self._wrote = False  # written at the first update: a call refused before any work
        # (a second train while one runs) never replaces or deletes the running one's record

    def __call__(self, fraction, label):
        if self.forward is not None:
            self.forward(fraction, label)
        # a new step shows at once; updates within a step at most every WRITE_EVERY s
        step = str(label).split(" ")[0]
        if step != self._label or time.time() - self._last >= WRITE_EVERY:
            self._write(fraction, label)

    def _write(self, fraction, label):
        self._last, self._label = time.time(), str(label).split(" ")[0]
        self.state.store.set(PROGRESS_KEY, {
            "operation": self.operation, "label": label, "fraction": float(fraction),
            "started_at": self.started, "updated_at": self._last, "token": self._token,
        })
        self._wrote = True

    def done(self):
        """Deletes the record if it is still this operation's."""
        if not self._wrote:
            return
        rec = self.state.store.get(PROGRESS_KEY)
        if rec and rec.get("token") == self._token:
            self.state.store.delete(PROGRESS_KEY)


def current(state):
    """The running operation's progress with an ETA, or None."""
    rec = state.store.get(PROGRESS_KEY)
    if not rec or time.time() - rec.get("updated_at", 0) > STALE_AFTER:
        return None
    f = rec.get("fraction") or 0.0
    elapsed = time.time() - rec["started_at"]
    rec["eta_seconds"] = round(elapsed * (1 - f) / f, 1) if f > 0.02 else None
    return rec
