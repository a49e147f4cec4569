"""What one open panel is doing: the operation it started ("Running ..."),
the error it shows, the delegated train it waits for, the prediction field,
run and labels its grid was loaded after, the session whose colors it sent
the App, and what Advanced's inputs showed. Kept in the execution store by
panel ID, not in panel state.

Each panel-state write makes the App save its spaces and reload the dataset
page, and that reload resets the sidebar's filters. Measured in Chromium
(FiftyOne 1.22.1): one second after a Train & Label click, a grid filtered to
13 samples showed all 120, because the click wrote "busy". Execution-store
writes stay on the server.
"""

from ..operators import workflow as wf

STORE = "fewshot_panel"
TTL = 24 * 3600  # seconds: a closed panel's entries expire


class PanelMemo(object):
    """One panel's entries, each under its own key (two events of one panel
    run at once in the App's thread pool: no read-modify-write of a shared
    record)."""

    NAMES = ("busy", "error", "waiting_since", "grid_run", "shown_defaults", "colors")

    def __init__(self, ctx):
        self._store = ctx.store(STORE)
        self._prefix = "%s." % (ctx.panel.id or "none")
        self._got = {}

    @classmethod
    def of(cls, ctx):
        """The event's memo (one store handle per event: each costs a query)."""
        memo = getattr(ctx, "_fewshot_memo", None)
        if memo is None:
            memo = cls(ctx)
            ctx._fewshot_memo = memo
        return memo

    def get(self, name):
        """The value (``None`` when unset)."""
        if name not in self._got:
            self._got[name] = self._store.get(self._prefix + name)
        return self._got[name]

    def set(self, **values):
        """Writes the values that changed; ``None`` deletes."""
        for name, value in values.items():
            assert name in self.NAMES, name
            if self.get(name) == value:
                continue
            if value is None:
                self._store.delete(self._prefix + name)
            else:
                self._store.set(self._prefix + name, value, ttl=TTL)
                if self._got[name] is not None:  # (a TTL is set when a key is made, not by a write)
                    self._store.update_ttl(self._prefix + name, TTL)
            self._got[name] = value

    def grid_loaded(self, state, cfg):
        """Records that the App's grid shows the prediction field, last run and
        labels of the session (its :class:`.state.SessionState` ``state``,
        config ``cfg``; it was loaded after them);
        returns what it showed before, ``[field, run ID, labels token]``
        (``["", "", ""]`` when unknown; the token: :meth:`.state.SessionState.labels_token`)."""
        before = self.get("grid_run")
        before = before if isinstance(before, list) and len(before) == 3 else ["", "", ""]
        self.set(grid_run=[cfg.get("prediction_field") or "", (wf.last_train(cfg) or {}).get("run_id") or "",
                           state.labels_token()])
        return before

    def colors_due(self, cfg):
        """True once per session and prediction field of ``cfg``: the App is to
        be sent the dataset's colors (it keeps those it loaded, so a session
        started from Python showed its labels in the App's own colors)."""
        key = [cfg.get("session_id") or "", cfg.get("prediction_field") or ""] if cfg else None
        due = key is not None and self.get("colors") != key
        self.set(colors=key)
        return due
