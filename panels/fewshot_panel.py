"""The Few-Shot panel: renders the session (read from the execution store) and
triggers the plugin's operators. No workflow logic lives here."""

import fiftyone.operators as foo
import fiftyone.operators.types as types

from ..embeddings import zoo
from ..operators import workflow as wf
from ..operators.ops import PLUGIN

URI = PLUGIN + "/"


def _histogram(last):
    """Plotly traces of the last train's P(positive) histogram."""
    if not last or not last.get("histogram"):
        return []
    bins, counts = last["histogram"]["bins"], last["histogram"]["counts"]
    centers = [round((a + b) / 2, 3) for a, b in zip(bins[:-1], bins[1:])]
    return [
        {
            "type": "bar",
            "x": centers,
            "y": counts,
            "name": "P(positive)",
            "marker": {"color": ["#d62728" if c < 0.5 else "#2ca02c" for c in centers]},
        }
    ]


# the inputs Train & Label sends, by the row (h_stack) that holds them
TRAIN_INPUTS = {
    "settings": ("mode", "beta", "gamma", "temperature"),
    "options": ("calibrate", "whiten"),
    "truth": ("ground_truth_field", "positive_class"),
}


def _value(state, group, key):
    """An input's value: inputs inside a row are stored under the row's name."""
    v = state.get(group + "." + key)
    return state.get(key) if v is None else v


class FewShotPanel(foo.Panel):
    @property
    def config(self):
        return foo.PanelConfig(
            name="fewshot_panel",
            label="Few-Shot",
            icon="auto_awesome",
            surfaces="grid",
            help_markdown="Label a few samples positive/negative, then Train & Label.",
        )

    # -- events ----------------------------------------------------------------

    def on_load(self, ctx):
        self._sync(ctx)

    def on_change_dataset(self, ctx):
        self._sync(ctx)

    def on_change_view(self, ctx):
        self._sync(ctx)

    def on_change_selected(self, ctx):
        ctx.panel.state.num_selected = len(ctx.selected or [])

    def on_refresh(self, ctx):
        self._sync(ctx)

    def on_model_change(self, ctx):
        # auto-fill the embedding field unless the user typed one
        model = ctx.panel.state.model
        typed = ctx.panel.state.embedding_field
        auto = ctx.panel.state.auto_field
        if model and (not typed or typed == auto):
            field = zoo.default_embedding_field(model)
            ctx.panel.state.embedding_field = field
            ctx.panel.state.auto_field = field

    def on_start(self, ctx):
        s = ctx.panel.state
        params = {
            "model": s.model or None,
            "embedding_field": s.embedding_field or None,
            "prediction_field": s.prediction_field or wf.DEFAULT_PREDICTION_FIELD,
            "subset_size": int(s.subset_size or 0),
            "randomize_subset": bool(s.randomize_subset),
        }
        self._run(ctx, "start_session", params)

    def on_train(self, ctx):
        s = ctx.panel.state
        params = {}
        for group, keys in TRAIN_INPUTS.items():
            for k in keys:
                v = _value(s, group, k)
                if v not in (None, ""):
                    params[k] = v
        self._run(ctx, "train_and_label", params)

    def on_suggest(self, ctx):
        s = ctx.panel.state
        params = {"num_samples": int(_value(s, "suggest", "num_suggest") or 20)}
        frac = _value(s, "suggest", "top_fraction")
        if frac is not None:
            params["top_fraction"] = float(frac)
        self._run(ctx, "suggest_samples", params)

    def on_done(self, ctx):
        ctx.panel.state.error = None
        ctx.panel.state.busy = None
        self._sync(ctx)

    def on_error(self, ctx):
        msg = ctx.params.get("error_message") or ctx.params.get("error") or "Failed"
        # a traceback's last line is the message our operators raise
        msg = str(msg).strip().splitlines()[-1]
        if ": " in msg and msg.split(": ", 1)[0].endswith("Error"):
            msg = msg.split(": ", 1)[1]
        ctx.panel.state.error = msg
        ctx.panel.state.busy = None
        self._sync(ctx)

    # -- helpers -----------------------------------------------------------------

    def _run(self, ctx, name, params=None):
        """Triggers operator ``name`` in the App (with its view and selection).

        The operator's own form check runs first: an invalid request would be
        refused by the server, so its reason is shown here instead.
        """
        from fiftyone.operators.executor import ExecutionContext

        params = params or {}
        check_ctx = ExecutionContext(request_params=dict(ctx.request_params, params=params))
        inputs = foo.get_operator(URI + name).resolve_input(check_ctx)
        err = inputs.type.properties.get("error") if inputs is not None else None
        if err is not None:
            ctx.panel.state.error = err.error_message
            return
        ctx.panel.state.error = None
        ctx.panel.state.busy = name
        ctx.prompt(
            URI + name,
            params=params,
            on_success=self.on_done,
            on_error=self.on_error,
            skip_prompt=True,
        )

    def on_label_positive(self, ctx):
        self._run(ctx, "label_positive")

    def on_label_negative(self, ctx):
        self._run(ctx, "label_negative")

    def on_clear_labels(self, ctx):
        self._run(ctx, "clear_labels")

    def on_show_predictions(self, ctx):
        self._run(ctx, "show_predictions")

    def on_reset(self, ctx):
        self._run(ctx, "reset_session")

    def _sync(self, ctx):
        # the session itself is read from the execution store at each render
        ctx.panel.state.num_selected = len(ctx.selected or [])

    # -- render ------------------------------------------------------------------

    def render(self, ctx):
        panel = types.Object()
        s = ctx.panel.state
        # always from the execution store: the panel shows what the palette,
        # Python or another tab did too, and survives reloads
        sess = wf.get_session(ctx.dataset)
        last = sess.get("last_train")
        for k, v in (sess.get("scorer") or wf.SCORER_DEFAULTS).items():
            if s.get(k) is None:
                s.set(k, v)
        ctx.panel.data.histogram = _histogram(last)
        if s.error:
            panel.view("error", types.Error(label="Error", description=s.error))
        if s.busy:
            panel.md("_Running %s…_" % s.busy.replace("_", " "), name="busy")
        if not sess.get("active"):
            self._render_setup(panel, s)
        else:
            self._render_active(panel, s, sess, last)
        return types.Property(panel, view=types.GridView(orientation="vertical", gap=2, padding=2))

    def _render_setup(self, panel, s):
        panel.md("#### Few-shot session\nPick an embedding model, then start.", name="title")
        panel.enum(
            "model",
            zoo.SUGGESTED_MODELS,
            label="Embedding model",
            default=zoo.OFFLINE_MODEL,
            view=types.AutocompleteView(),
            on_change=self.on_model_change,
        )
        panel.str(
            "embedding_field",
            label="Embedding field",
            default=zoo.default_embedding_field(s.model or zoo.OFFLINE_MODEL),
        )
        panel.str("prediction_field", label="Prediction field", default=wf.DEFAULT_PREDICTION_FIELD)
        panel.int("subset_size", label="Working subset size (0 = whole view)", default=0)
        panel.bool("randomize_subset", label="Randomize subset every run", default=False)
        panel.btn("start", label="Start Session", variant="contained", on_click=self.on_start)

    def _render_active(self, panel, s, sess, last):
        panel.md(
            "#### Iteration %d\n**%d** positive · **%d** negative labels · %d selected  \n"
            "model `%s` · embeddings `%s` · predictions `%s`"
            % (
                sess.get("iteration") or 0, sess.get("num_positive") or 0,
                sess.get("num_negative") or 0, s.num_selected or 0,
                sess.get("model") or "precomputed", sess.get("embedding_field"),
                sess.get("prediction_field"),
            ),
            name="status",
        )
        run = sess.get("run")
        if run and run.get("status") == "running":
            panel.view("run_status", types.Notice(label=run["message"]))
        elif run and run.get("status") != "complete":
            panel.view("run_status", types.Warning(label="Predictions are not all current",
                                                   description=run["message"]))
        labels = panel.h_stack("labels", gap=1)
        for name, label in (
            ("label_positive", "Label Positive"),
            ("label_negative", "Label Negative"),
            ("clear_labels", "Clear Labels"),
        ):
            labels.btn(name, label=label, variant="outlined", on_click=getattr(self, "on_" + name))

        settings = panel.h_stack("settings", gap=1)
        settings.enum("mode", ["distance", "query"], label="Mode", default=s.mode or "distance")
        settings.float("beta", label="beta", default=s.beta if s.beta is not None else 1.0)
        settings.float("gamma", label="gamma", default=s.gamma if s.gamma is not None else 1.0)
        settings.float("temperature", label="temperature",
                       default=s.temperature if s.temperature is not None else 1.0)
        options = panel.h_stack("options", gap=1)
        options.bool("calibrate", label="Calibrated P (off: sigmoid(s/T))",
                     default=s.calibrate if s.calibrate is not None else True)
        options.enum("whiten", ["auto", "on", "off"], label="Whiten by pool covariance",
                     default={True: "on", False: "off"}.get(s.whiten, s.whiten or "auto"))
        truth = panel.h_stack("truth", gap=1)
        truth.str("ground_truth_field", label="Ground truth field (optional readout)")
        truth.str("positive_class", label="Positive class")

        actions = panel.h_stack("actions", gap=1)
        actions.btn("train", label="Train & Label", variant="contained", on_click=self.on_train)
        actions.btn("show_predictions", label="Show Predictions", variant="outlined",
                    on_click=self.on_show_predictions)
        actions.btn("refresh", label="Refresh", variant="outlined", on_click=self.on_refresh)
        suggest = panel.h_stack("suggest", gap=1)
        suggest.btn("suggest_samples", label="Suggest Samples", variant="outlined",
                    on_click=self.on_suggest)
        suggest.int("num_suggest", label="how many", default=20)
        suggest.float("top_fraction", label="top-scored fraction (rest: uncertain)",
                      default=wf.DEFAULT_TOP_FRACTION)
        actions.btn("reset_session", label="Reset Session", variant="outlined", on_click=self.on_reset)

        if last:
            panel.md(
                "**Last train** (iteration %d): %d scored, **%d predicted positive**, %d negative; "
                "%d skipped; %.2fs"
                % (
                    last.get("iteration", 0), last.get("num_scored", 0),
                    last.get("num_predicted_positive", 0), last.get("num_predicted_negative", 0),
                    (last.get("num_skipped_missing_embedding") or 0)
                    + (last.get("num_skipped_invalid_embedding") or 0),
                    last.get("seconds") or 0,
                ),
                name="last_train_md",
            )
            if last.get("estimated_pool_positive_rate") is not None:
                panel.md("Estimated positive rate of the scored pool: %.1f%%"
                         % (100 * last["estimated_pool_positive_rate"]), name="prior_md")
            rows = [h for h in (sess.get("history") or []) if h.get("quality")]
            if rows:
                q0 = rows[-1]["quality"]
                lines = ["**Quality vs `%s` = `%s`** (scored, unlabeled samples)"
                         % (q0["ground_truth_field"], q0["positive_class"]), "",
                         "| iteration | labels +/- | AP | precision@k | F1 | predicted / true positives |",
                         "|---|---|---|---|---|---|"]
                for h in rows[-10:]:
                    q = h["quality"]
                    lines.append("| %d | %d / %d | %.3f | %.3f (k=%d) | %.3f | %d / %d |" % (
                        h["iteration"], h["num_positive_labels"], h["num_negative_labels"],
                        q["average_precision"], q["precision_at_k"], q["k"], q["f1"],
                        q["num_predicted_positive"], q["num_true_positive"]))
                panel.md("\n".join(lines), name="quality_md")
            panel.plot(
                "histogram",
                layout={
                    "title": {"text": "P(positive) over the inference set"},
                    "xaxis": {"title": {"text": "P(positive)"}, "range": [0, 1]},
                    "yaxis": {"title": {"text": "samples"}},
                    "height": 260,
                    "margin": {"l": 50, "r": 10, "t": 40, "b": 40},
                    "bargap": 0.05,
                },
                config={"displayModeBar": False},
            )
