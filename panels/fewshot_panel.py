"""The Few-Shot panel: renders the session (read from the execution store) and
triggers the plugin's operators. No workflow logic lives here; the layout is in
:mod:`.render`."""

import threading
import time
from collections import OrderedDict

import fiftyone.operators as foo
import fiftyone.operators.types as types

from ..embeddings import zoo
from ..operators import grid
from ..operators import workflow as wf
from ..operators.ops_base import PLUGIN, show_derived
from . import render
from .memo import PanelMemo

URI = PLUGIN + "/"
BUSY_SHOWN_FOR = 10  # seconds a clicked operation shows "Running ..." without progress
_SCOPES, _SCOPES_LOCK, MAX_SCOPES = OrderedDict(), threading.Lock(), 256  # scope lines for idle polls (_scope)
WAIT_FOR_WORKER = 600  # seconds the panel polls for a queued (delegated) train to finish

# the inputs Train & Label sends, by the row (h_stack) that holds them
TRAIN_INPUTS = {
    "settings": ("mode", "beta", "gamma", "temperature"),
    "options": ("calibrate", "whiten", "power"),
    "weights": ("background_weight", "kernel_weight", "neighbor_weight"),
    "truth": ("ground_truth_field", "positive_class"),
}
SETTING_ROWS = {k: row for row, keys in TRAIN_INPUTS.items() if row != "truth" for k in keys}  # scorer setting -> row


def _state(ctx):
    """``(SessionState, its config)``: one store handle for both (each costs a query)."""
    state = wf.SessionState(ctx.dataset)
    return state, state.config or {}


def _config(ctx):
    """The session's config (``{}`` before a start): one store read, where
    ``get_session`` also counts labels and runs."""
    return _state(ctx)[1]


def _last_run_id(ctx):
    """The run ID of the session's last train (None before one)."""
    return (wf.last_train(_config(ctx)) or {}).get("run_id")


def _value(state, group, key):
    """An input's value: inputs inside a row are stored under the row's name."""
    v = state.get(group + "." + key)
    return state.get(key) if v is None else v


def _typed(memo, key, value):
    """Whether the user changed a setting's input from what it showed (the
    session's setting when Advanced was last shown). Only those are sent:
    the others follow the session, whoever set it last (a palette or Python
    train's settings were undone by the panel's next train)."""
    shown = (memo.get("shown_defaults") or {}).get(key)
    if shown is None:
        return False  # (never shown)
    return str(value).strip().lower() != shown.lower() and _number(value) != _number(shown)


def _number(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return v


def _truth_choice(s, cfg):
    """The quality readout's choice, ``[field, class]``: the last one made in
    this panel for this session (``truth_choice``, tagged with the session's
    ID: a reset from the operator browser leaves it in the panel's state;
    clearing the field is a choice too), else the last train's readout (none
    if it ran without one). ``cfg``: the session's config (or ``get_session``)."""
    mine = s.truth_choice
    if mine and len(mine) == 3 and mine[0] == cfg.get("session_id"):
        return [mine[1] or "", mine[2]]
    q = (wf.last_train(cfg) or {}).get("quality") or {}
    return [q.get("ground_truth_field") or "", q.get("positive_class")]


def _choose_truth(s, cfg, field, cls):
    if [field or "", cls] != _truth_choice(s, cfg):  # (a panel-state write drops the App's filters)
        _patch(s, truth_choice=[cfg.get("session_id"), field, cls])


def _readout_choice(ctx, s, sess, fields):
    """The readout's choice, ``(field, class)``, which its dropdowns take as
    their defaults, and the field's classes for the class dropdown.

    Their values are never written here. A page reload keeps the panel's
    state but resets its inputs to their defaults and reports each reset as
    a change (measured in FiftyOne 1.22: the field's ``on_change`` came with
    ``""``, and a Train clicked then ran without the readout); with the
    choice as the default, the reset restores it. A render that wrote the
    values raced the user's own change (the App renders on view events with
    the state it had: a cleared field came back)."""
    field, cls = _truth_choice(s, sess)
    if field not in fields:
        return "", None
    if field and s.classes_of != field:  # (once per field and panel load: a distinct over the field)
        s.class_choices, s.classes_of = wf.truth_classes(ctx.dataset, field), field
    return field, (cls if field and cls in (s.class_choices or []) else None)


def _patch(state, **values):
    render.patch_state(state, values)


def _show_error(ctx, msg):
    """Shows ``msg`` (settings named as the panel labels them) until the next
    panel action succeeds, a train finishes or the grid shows another view
    (a filter taken off left "The current view is empty" above its 13 samples)."""
    PanelMemo.of(ctx).set(error=[render.in_words(msg)] + _error_context(ctx, _last_run_id(ctx)))


def _error_context(ctx, run_id):
    """What a shown error belongs to: the last train's run ID and the grid's view."""
    return [run_id or "", wf.view_key(ctx.view)]


class FewShotPanel(foo.Panel):
    @property
    def config(self):
        return foo.PanelConfig(
            name="fewshot_panel",
            label="Few-Shot",
            icon="auto_awesome",
            surfaces="grid modal",
            help_markdown="Label a few samples positive/negative, then Train & Label.",
        )

    # -- events ----------------------------------------------------------------

    def on_load(self, ctx):
        # the class list is read again (classes may have been added); a new page showed the
        # last page's error as if it were now; grid_run: the run whose predictions the grid
        # shows (on_idle_poll)
        _patch(ctx.panel.state, classes_of=None)
        self.on_done(ctx)

    # These events only render again (the session is read from the execution store, the
    # selection from the request). They write no panel state: a tick that wrote the selection
    # count made the App save its spaces and re-query the grid, ~2 s per tick.
    def on_change_dataset(self, ctx):
        pass

    def on_change_view(self, ctx):
        pass

    def on_change_selected(self, ctx):
        pass

    def on_change_current_sample(self, ctx):
        pass

    def on_refresh(self, ctx):
        pass

    def on_poll(self, ctx):
        # re-renders (progress of a running operation); a delegated train that
        # finished on a worker: reload the grid (the worker cannot)
        memo = PanelMemo.of(ctx)
        since = memo.get("waiting_since")
        if since is None:
            return
        if wf.worker_ran_since(_config(ctx), since):  # (not a train clicked meanwhile)
            memo.set(waiting_since=None)
            memo.grid_loaded(*_state(ctx))
            grid.refresh(ctx)
        elif time.time() - since > WAIT_FOR_WORKER:
            memo.set(waiting_since=None)

    def on_idle_poll(self, ctx):
        """Every ``render.IDLE_POLL_MS``: the render shows what another tab,
        the palette or Python did (a Python train left the panel saying
        "Last train (iteration 4)" beside iteration 5's predictions), reusing
        the scope's count (:meth:`_scope`); a train finished elsewhere
        reloads the grid, whose tiles showed the old predictions (``grid_run``:
        the run the grid was last loaded after, not the last one rendered: a
        render between the train and the poll would hide it), and so do labels
        given elsewhere (the tiles showed neither them nor the predictions they
        removed)."""
        memo, (state, cfg) = PanelMemo.of(ctx), _state(ctx)
        before = memo.grid_loaded(state, cfg)
        now = memo.get("grid_run")
        if now != before:  # a field the App may not know yet: it learns it from a reload
            grid.refresh(ctx, reload=now[0] != before[0])
        if memo.colors_due(cfg):  # (a session started elsewhere: the App has its own colors)
            grid.send_colors(ctx)

    def on_model_change(self, ctx):
        # auto-fill the embedding field unless the user typed one
        s = ctx.panel.state
        if s.model and (not s.embedding_field or s.embedding_field == s.auto_field):
            s.embedding_field = s.auto_field = zoo.default_embedding_field(s.model)

    def on_truth_change(self, ctx):
        s = ctx.panel.state
        field = _value(s, "truth", "ground_truth_field") or ""
        cfg = _config(ctx)
        if field == _truth_choice(s, cfg)[0]:
            return  # the App reports its inputs' reset (to the choice) as a change
        s.set("truth.positive_class", None)
        s.class_choices = wf.truth_classes(ctx.dataset, field) if field else []
        s.classes_of = field or None
        _choose_truth(s, cfg, field, None)

    def on_class_change(self, ctx):
        s = ctx.panel.state
        field = _value(s, "truth", "ground_truth_field")
        if field:
            _choose_truth(s, _config(ctx), field, _value(s, "truth", "positive_class"))

    def on_start(self, ctx):
        s = ctx.panel.state
        params = {
            "model": s.model or None,
            "embedding_field": s.embedding_field or None,
            "prediction_field": s.prediction_field or wf.DEFAULT_PREDICTION_FIELD,
            "subset_size": s.subset_size or 0,
            "randomize_subset": bool(s.randomize_subset),
            "delegate": bool(s.delegate),
        }
        self._run(ctx, "start_session", params, on_success=self.on_started)

    def on_started(self, ctx):
        PanelMemo.of(ctx).colors_due(_config(ctx))  # (the start sent them)
        self.on_done(ctx)

    def on_train(self, ctx):
        s = ctx.panel.state
        params = {"base_view": True, "delegate": bool(s.delegate_train)}
        for group, keys in TRAIN_INPUTS.items():
            for k in keys:
                v = s.get(group + "." + k)
                if v not in (None, "") and (group == "truth" or _typed(PanelMemo.of(ctx), k, v)):
                    params[k] = v
        if not params.get("ground_truth_field"):  # (a class left in the state of a hidden dropdown)
            params.pop("positive_class", None)
        else:  # (an empty field may be one the App reset: recorded by on_truth_change only)
            _choose_truth(s, _config(ctx), params["ground_truth_field"], params.get("positive_class"))
        if not params["delegate"]:
            # the grid is redrawn by on_trained, with the filters the App has then (the train's
            # own are those of this click: a filter changed during a long train came back)
            params["redraw"] = False
        if self._run(ctx, "train_and_label", params, on_success=self.on_trained) and params["delegate"]:
            PanelMemo.of(ctx).set(waiting_since=time.time())  # poll until a worker has run it (on_poll)

    def on_trained(self, ctx):
        # (a delegated train's success is its queuing: on_poll redraws when a worker ran it)
        if not (ctx.params.get("original_params") or {}).get("delegate"):
            grid.refresh(ctx, reload=bool((ctx.params.get("result") or {}).get("new_fields")))
        self.on_done(ctx)

    def on_suggest(self, ctx):
        s = ctx.panel.state
        params = {"num_samples": _value(s, "suggest", "num_suggest") or 20, "base_view": True}
        rand = _value(s, "suggest", "random_fraction")
        if rand is not None:
            params["random_fraction"] = rand
        frac = _value(s, "suggest", "top_fraction")
        if frac is not None:
            params["top_fraction"] = frac
        self._run(ctx, "suggest_samples", params)

    def on_hist_click(self, ctx):
        x = ctx.params.get("x")
        sess = wf.get_session(ctx.dataset)
        if x is None or not sess.get("active"):
            return
        state = wf.SessionState(ctx.dataset)
        base, _ = wf.resolve_base(state, ctx.view)
        view = wf.histogram_bar_view(ctx.dataset, float(x), render.BIN)
        show_derived(ctx, state, "histogram bar", view, base)

    def on_done(self, ctx):
        # (a train or start run from here reloaded the grid; also what a panel load records)
        memo = PanelMemo.of(ctx)
        memo.set(error=None, busy=None)
        state, cfg = _state(ctx)
        memo.grid_loaded(state, cfg)
        if memo.colors_due(cfg):
            grid.send_colors(ctx)

    def on_error(self, ctx):
        # (waiting_since: the server refused it, nothing was queued)
        PanelMemo.of(ctx).set(waiting_since=None, busy=None)
        err = ctx.params.get("error_message") or ctx.params.get("error")
        _show_error(ctx, render.error_words(err))

    def on_reset(self, ctx):
        # the operator's form asks: it lists what is deleted and offers to keep the labels
        ctx.prompt(URI + "reset_session", on_success=self.on_reset_done, on_error=self.on_error)

    def on_reset_done(self, ctx):
        s = ctx.panel.state
        for k in ("truth.ground_truth_field", "truth.positive_class", "ground_truth_field", "positive_class"):
            s.set(k, None)
        s.class_choices = []
        s.truth_choice = s.classes_of = None
        self.on_done(ctx)

    def on_label_positive(self, ctx):
        self._label(ctx, "label_positive")

    def on_label_negative(self, ctx):
        self._label(ctx, "label_negative")

    def on_clear_labels(self, ctx):
        self._label(ctx, "clear_labels")

    def _label(self, ctx, name):
        """Labels what was open (or selected) when the button was clicked: the
        App runs a triggered operator with the selection it has by then, so a
        tile ticked meanwhile got the label (a new user's ankle boot, ticked
        ~300 ms after Label Positive to be labeled negative)."""
        ids = wf.clicked_ids(ctx.selected, ctx.current_sample)
        self._run(ctx, name, {"sample_ids": ids}, busy=False)

    def on_show_predictions(self, ctx):
        self._run(ctx, "show_predictions", {"base_view": True}, busy=False)

    def on_show_subset(self, ctx):
        self._run(ctx, "show_subset", busy=False)

    def on_show_mislabeled(self, ctx):
        self._run(ctx, "show_possibly_mislabeled", busy=False)

    # -- helpers -----------------------------------------------------------------

    def _run(self, ctx, name, params=None, on_success=None, busy=True):
        """Triggers operator ``name`` in the App (with its view and selection).

        The operator's own form check runs first: an invalid request would be
        refused by the server, so its reason is shown here instead. ``busy``:
        say "Running ..." meanwhile (not for a label or a quick view: each
        panel-state write makes the App query the grid again, and the label's
        tile showed 4.7 s after the click).
        """
        from fiftyone.operators.executor import ExecutionContext

        params = params or {}
        check_ctx = ExecutionContext(request_params=dict(ctx.request_params, params=params))
        inputs = foo.get_operator(URI + name).resolve_input(check_ctx)
        err = inputs.type.properties.get("error") if inputs is not None else None
        if err is not None:
            _show_error(ctx, err.error_message)
            return False
        PanelMemo.of(ctx).set(error=None, **({"busy": [name, time.time()]} if busy else {}))
        ctx.prompt(URI + name, params=params, on_success=on_success or self.on_done,
                   on_error=self.on_error, skip_prompt=True)
        return True

    # -- render ------------------------------------------------------------------

    def render(self, ctx):
        panel = types.Object()
        s = ctx.panel.state
        # (an idle poll's render writes no panel state: each write makes the App save its
        # spaces and re-query the grid, whose view events render again: 6 renders per poll)
        polled = ctx.params.get("__method__") in ("on_idle_poll", "on_poll")
        # always from the execution store: the panel shows what the palette,
        # Python or another tab did too, and survives reloads
        state = wf.SessionState(ctx.dataset)
        sess = wf.get_session(ctx.dataset)
        prog = wf.current_progress(state)
        memo = PanelMemo.of(ctx)
        clicked = memo.get("busy")
        if clicked and time.time() - clicked[1] > BUSY_SHOWN_FOR:
            clicked = None  # the App does not always deliver the success callback
            memo.set(busy=None)
        # buttons are disabled by what runs (recorded in the store, any tab), not by a click
        busy = (prog or {}).get("operation")
        error = memo.get("error")
        if error and error[1:] != _error_context(ctx, (sess.get("last_train") or {}).get("run_id")):
            error = None  # a train finished since (the error stayed up through palette and Python actions),
            # or the grid shows another view
            memo.set(error=None)
        if error:
            panel.view("error", types.Error(label="Error", description=error[0]))
        waiting = memo.get("waiting_since")
        render.progress(panel, prog, clicked and clicked[0], self.on_poll, poll=bool(prog or waiting or clicked),
                        on_idle=self.on_idle_poll, waiting=waiting)
        if not sess.get("active"):
            render.setup(panel, s, self.on_model_change, self.on_start, bool(busy))
        else:
            self._render_active(ctx, panel, s, state, sess, busy, polled)
        return types.Property(panel, view=types.GridView(orientation="vertical", gap=2, padding=2))

    def _scope(self, ctx, base, sess, derived, polled):
        """What Train scores. An idle poll's render reuses the count made for the
        same view, subset size and train (counting a filtered view of 1M samples
        takes seconds; any other event counts again: a view change is one). Kept
        in this process, not in panel state: a write there after each view change
        made the App save its spaces and query the grid once more."""
        key = (str(ctx.dataset._doc.id), wf.view_key(base), derived, sess.get("subset_size"),
               sess.get("iteration"), (sess.get("last_train") or {}).get("run_id"))
        with _SCOPES_LOCK:
            if polled and key in _SCOPES:
                return _SCOPES[key]
        now = wf.describe_scope(ctx.dataset, base, sess, derived)
        with _SCOPES_LOCK:
            _SCOPES[key] = now
            while len(_SCOPES) > MAX_SCOPES:
                _SCOPES.popitem(last=False)
        return now

    def _render_active(self, ctx, panel, s, state, sess, busy, polled):
        open_label = (wf.label_of(ctx.dataset, ctx.current_sample) or "") if ctx.current_sample else None
        render.status(panel, sess, len(ctx.selected or []), open_label)
        base, derived = wf.resolve_base(state, ctx.view)
        render.scope(panel, sess, self._scope(ctx, base, sess, derived, polled))
        render.actions(panel, self, busy, sess, background=bool(s.delegate_train))
        rec = wf.derived_record(state, ctx.view)  # shown while the App shows that view
        if rec and rec.get("note"):
            panel.md(rec["note"], name="suggest_info")
        fields = wf.truth_fields(ctx.dataset, sess["prediction_field"])
        choice = _readout_choice(ctx, s, sess, fields)
        render.readout_inputs(panel, s, fields, choice, self.on_truth_change, self.on_class_change)
        render.advanced(panel, s, PanelMemo.of(ctx), sess.get("scorer"), SETTING_ROWS)
        render.mislabeled(panel, sess.get("possibly_mislabeled"), self.on_show_mislabeled)
        render.last_train(panel, sess, sess.get("last_train"), self.on_hist_click)
        render.footer(panel, self)
