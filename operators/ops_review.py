"""Review operators: show predictions, suggest samples, show the working
subset, get the session."""

import fiftyone.operators as foo
import fiftyone.operators.types as types

from . import workflow as wf
from .ops_base import FewShotOperator, show_derived


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
        state = wf.SessionState(ctx.dataset)
        base = wf.view_to_score(state, ctx.view, ctx.params)[0]
        view = wf.predictions_view(ctx.dataset, base)
        show_derived(ctx, state, "predictions", view, base)
        cfg = wf.require_session(state)
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
        inputs.float("top_fraction", label="Fraction that are top-scored (likely positives)",
                     default=wf.DEFAULT_TOP_FRACTION)
        inputs.float("random_fraction", label="Fraction drawn at random (keeps the labels a fair "
                     "sample; rest: most uncertain)", default=wf.DEFAULT_RANDOM_FRACTION)

        def check():
            cfg = wf.require_session(wf.SessionState(ctx.dataset))
            wf.suggest_params(ctx.params)
            if not cfg.get("iteration"):
                raise wf.FewShotError("No predictions yet; run Train & Label first")

        self._check(ctx, inputs, check)
        return types.Property(inputs, view=types.View(label="Suggest samples to label"))

    def run(self, ctx):
        state = wf.SessionState(ctx.dataset)
        base = wf.view_to_score(state, ctx.view, ctx.params)[0]
        view, result = wf.suggest_samples(ctx.dataset, base, ctx.params)
        show_derived(ctx, state, "suggestions", view, base, note=suggest_note(result))
        return result


def suggest_note(result):
    """What the suggestions in the grid are, with the range of the "uncertain"
    ones' P (a new user read "the most uncertain" over P 0.97-1.0 and 0-0.06)."""
    note = "Suggestions in the grid (after iteration %d): the first %d are likely positive (confirm them)" % (
        result["iteration"], result["num_top_scored"])
    if result["num_boundary"]:
        lo, hi = result["boundary_range"]
        note += ", the next %d have P(positive) closest to 0.5 (%.2f to %.2f)" % (result["num_boundary"], lo, hi)
    note += (", the last %d are random." % result["num_random"]) if result["num_random"] else "."
    return note


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

    def resolve_output(self, ctx):
        # from the operator browser: what the session is, not an empty "done"
        outputs = types.Object()
        outputs.md(session_summary(ctx.results or {}), name="summary")
        return types.Property(outputs, view=types.View(label="Few-shot session"))


def session_summary(sess):
    """``get_session``'s result in a few lines of markdown."""
    if not sess.get("active"):
        return "No few-shot session on this dataset: start one with **Few-shot: start session**."
    lines = ["**Iteration %d**: %d positive, %d negative labels" % (
        sess.get("iteration") or 0, sess.get("num_positive") or 0, sess.get("num_negative") or 0),
        "model `%s`, embeddings `%s`, predictions `%s`" % (
        sess.get("model") or "precomputed", sess.get("embedding_field"), sess.get("prediction_field"))]
    last, run = sess.get("last_train"), sess.get("run")
    if last:
        lines.append("Last train: %s scored, %s predicted positive" % (
            format(last.get("num_scored") or 0, ","), format(last.get("num_predicted_positive") or 0, ",")))
    if run and run.get("message"):
        lines.append(("" if run.get("status") == "complete" else "**Predictions are not all current**: ")
                     + run["message"])
    n_suspect = (sess.get("possibly_mislabeled") or {}).get("count")
    if n_suspect:
        lines.append("%d labeled samples possibly mislabeled (Few-shot: show possibly mislabeled)" % n_suspect)
    return "  \n".join(lines)


class ShowMislabeled(FewShotOperator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="show_possibly_mislabeled",
            label="Few-shot: show possibly mislabeled",
            description="Show the labeled samples whose leave-one-out score strongly disagrees with their label",
            dynamic=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        self._check(ctx, inputs, lambda: wf.mislabeled_view(ctx.dataset))
        return types.Property(inputs)

    def run(self, ctx):
        view = wf.mislabeled_view(ctx.dataset)
        state = wf.SessionState(ctx.dataset)
        show_derived(ctx, state, "possibly mislabeled", view, wf.resolve_base(state, ctx.view)[0])
        return {"num_samples": len(view), "ids": view.values("id")}


class ShowSubset(FewShotOperator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="show_subset",
            label="Few-shot: show working subset",
            description="Show the working subset Train & Label scores (labeled samples and the random fill)",
            dynamic=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        self._check(ctx, inputs, lambda: wf.subset_view(ctx.dataset, wf.resolve_base(wf.SessionState(ctx.dataset), ctx.view)[0]))
        return types.Property(inputs)

    def run(self, ctx):
        state = wf.SessionState(ctx.dataset)
        base = wf.resolve_base(state, ctx.view)[0]
        view = wf.subset_view(ctx.dataset, base)
        show_derived(ctx, state, "working subset", view, base)
        return {"num_samples": len(view)}
