"""What the Few-Shot panel draws: pure layout from the session and panel state.

No workflow logic: every button triggers an operator (see ``fewshot_panel``)."""

import re
import time

import fiftyone.operators.types as types

from ..embeddings import zoo
from ..operators import workflow as wf
from .quality import quality_markdown, rate_line

BIN = 0.05  # histogram bin width (the train summary's 20 bins)
BACKGROUND_LABEL = "Run Train & Label in the background (delegated operation)"


def histogram_traces(last):
    """Plotly bars of the last train's P(positive) histogram (log y: the bar at 0
    would dwarf the rest)."""
    if not last or not last.get("histogram"):
        return []
    bins, counts = last["histogram"]["bins"], last["histogram"]["counts"]
    centers = [round((a + b) / 2, 3) for a, b in zip(bins[:-1], bins[1:])]
    return [{
        "type": "bar", "x": centers, "y": counts, "name": "P(positive)",
        "marker": {"color": ["#d62728" if c < 0.5 else "#2ca02c" for c in centers]},
        "hovertemplate": "P %{x:.3f} \u00b1 0.025, samples: %{y}<br>click: show them<extra></extra>",
    }]


def patch_state(state, values):
    """Writes the panel-state ``values`` (keys may be dotted paths) that changed,
    in one patch: the App saves each write with its spaces and then queries the
    grid again (a tick that wrote the selection count: ~2 s per tick)."""
    changed = {k: v for k, v in values.items() if state.get(k) != v}
    if changed:
        state.set(changed)


def kept(s, path, default):
    """An input's default: its value in the panel's state, when it has one.
    The buttons read the state, and FiftyOne 1.22.1's App can show an input
    at its default over it: a new user's ticked "Run Train & Label in the
    background" showed unticked after a Reset, a reload and a new session,
    and the next Train was queued for a worker all the same; a Suggest count
    of 7 showed 20 after a reload (tests/test_browser_reload.py)."""
    v = s.get(path)
    return default if v is None or v == "" else v


def setup(panel, s, on_model_change, on_start, busy):
    panel.md("#### Few-shot session\nPick an embedding model, then start.", name="title")
    panel.enum("model", zoo.SUGGESTED_MODELS, label="Embedding model", default=kept(s, "model", zoo.OFFLINE_MODEL),
               description="Any FiftyOne zoo model; only %s works without internet" % zoo.OFFLINE_MODEL,
               view=types.AutocompleteView(), on_change=on_model_change)
    panel.str("embedding_field", label="Embedding field",
              default=kept(s, "embedding_field", zoo.default_embedding_field(s.model or zoo.OFFLINE_MODEL)))
    panel.str("prediction_field", label="Prediction field",
              default=kept(s, "prediction_field", wf.DEFAULT_PREDICTION_FIELD))
    panel.int("subset_size", label="Working subset size (0 = the whole view)", default=kept(s, "subset_size", 0))
    panel.bool("randomize_subset", label="Draw a new working subset at every Train",
               default=bool(s.randomize_subset))
    panel.bool("delegate", label="Compute embeddings in the background (a delegated operation)",
               default=bool(s.delegate))
    panel.btn("start", label="Start Session", variant="contained", on_click=on_start, disabled=busy)


MODAL_NOTE = ("The grid shows the label at once. The Sample tab and its sidebar keep this sample as the "
              "page first loaded it (FiftyOne's modal does not reload a sample): the new label, and its "
              "old prediction gone, show there after the page is reloaded")


def status(panel, sess, num_selected, open_label):
    """``open_label``: in the modal, the open sample's label now ("" for none), else None."""
    if open_label is None:
        target = "%d selected" % num_selected
    else:
        target = "the open sample (%s)" % ("labeled " + open_label if open_label else "not labeled")
    panel.md(
        "#### Iteration %d\n**%d** positive · **%d** negative labels · %s  \n"
        "model `%s` · embeddings `%s` · predictions `%s`"
        % (sess.get("iteration") or 0, sess.get("num_positive") or 0, sess.get("num_negative") or 0,
           target, sess.get("model") or "precomputed", sess.get("embedding_field"),
           sess.get("prediction_field")),
        name="status",
    )
    if open_label:
        panel.md(MODAL_NOTE, name="modal_note")
    run = sess.get("run")
    if run and run.get("status") == "running":
        panel.view("run_status", types.Notice(label=run["message"]))
    elif run and run.get("status") != "complete":
        panel.view("run_status", types.Warning(label="Predictions are not all current",
                                               description=run["message"]))


def scope(panel, sess, now):
    """What Train will score, and a warning when it differs from the last train."""
    panel.md("**Train & Label scores:** %s" % now["text"], name="scope")
    last = (sess.get("last_train") or {}).get("scope")
    if last and (last.get("kind"), last.get("count")) != (now["kind"], now["count"]):
        panel.view("scope_changed", types.Warning(
            label="The scope changed",
            description="The last train (iteration %d) scored %s. Samples outside the new scope "
            "keep their predictions from earlier iterations." % (sess.get("iteration") or 0, last["text"])))


# Advanced settings' labels by the operators' names, which their errors use
LABELS = {
    "beta": "beta (positives)", "gamma": "gamma (negatives)", "power": "Power transform",
    "background_weight": "Pool mean weight", "kernel_weight": "Nearest-labels weight",
    "neighbor_weight": "Pool neighbors' weight", "num_suggest": "Suggest how many",
    "top_fraction": "top-scored fraction", "random_fraction": "random fraction (rest: uncertain)",
}
ERROR_NAMES = dict(LABELS, num_samples=LABELS["num_suggest"])  # (suggest_samples' name for it)


def in_words(msg):
    """An operator's error with the settings named as the panel labels them
    ("neighbor_weight must be ..." beside an input called "Pool neighbors' weight").
    Only a subject made of setting names is renamed ("beta and gamma must be
    ..."): names in other messages may be the user's fields or classes."""
    subject, sep, rest = str(msg).partition(" must ")
    words = re.split(r"(, | and )", subject)
    if not sep or not all(w in ERROR_NAMES or w in (", ", " and ") or w in wf.SCORER_DEFAULTS for w in words):
        return msg
    return "".join('"%s"' % ERROR_NAMES[w] if w in ERROR_NAMES else w for w in words) + sep + rest


def error_words(err):
    """The message of a triggered operator's failure. The App passes a
    traceback, or, when the server refused the request (its form check
    failed by the time it ran: another tab's train had started), the whole
    response as a dict or its text: the stack, "Network Error", the request
    with the panel's state, which the panel showed as it was. The check's
    reason, else the last exception's message."""
    if isinstance(err, dict):
        err = err.get("stack") or err.get("message") or ""
    text = str(err or "").replace("\\n", "\n")
    found = re.findall(r"Reason: (.+)", text) or re.findall(r"^\s*[\w.]*(?:Error|Exception): (.+)$", text, re.M)
    if found:
        return found[-1].strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "Failed"


IDLE_POLL_MS = 5000  # how often an idle panel looks for what other tabs, the palette or Python did


def progress(panel, prog, busy, on_poll, poll=False, on_idle=None, waiting=None):
    if prog:
        f = prog.get("fraction") or 0.0
        eta = prog.get("eta_seconds")
        bar = "\u2588" * int(round(20 * f)) + "\u2591" * (20 - int(round(20 * f)))
        panel.md("**%s** %s %d%%%s  \n%s" % (
            prog["operation"].replace("_", " ").capitalize(), bar, int(100 * f),
            " · about %d s left" % eta if eta is not None else "", prog.get("label") or ""), name="progress")
    elif waiting:
        panel.md("_Train & Label queued %s as a delegated operation, waiting for a worker "
                 "(`fiftyone delegated launch`); the panel shows its result when it has run._"
                 % time.strftime("at %H:%M:%S UTC", time.gmtime(waiting)), name="waiting")
    elif busy:
        panel.md("_Running %s…_" % busy.replace("_", " "), name="busy")
    if prog or poll:  # re-render every second while a long operation runs (or a worker may)
        panel.view("poll", types.TimerView(interval=1000, on_interval=on_poll))
    elif on_idle is not None:
        panel.view("idle_poll", types.TimerView(interval=IDLE_POLL_MS, on_interval=on_idle))


def actions(panel, h, busy, sess, background=False):
    """The buttons; ``sess``: the session (Show Predictions needs a train that
    wrote, Suggest a finished one: before, a click only answered with an error)."""
    labels = panel.h_stack("labels", gap=1)
    for name, label in (("label_positive", "Label Positive"), ("label_negative", "Label Negative"),
                        ("clear_labels", "Clear Labels")):
        # labeling stays possible while a train runs (the train re-reads labels changed meanwhile)
        labels.btn(name, label=label, variant="outlined", on_click=getattr(h, "on_" + name))
    row = panel.h_stack("actions", gap=1)
    row.btn("train", label="Train & Label", variant="contained", on_click=h.on_train, disabled=bool(busy))
    row.btn("show_predictions", label="Show Predictions", variant="outlined", on_click=h.on_show_predictions,
            disabled=not (sess.get("iteration") or sess.get("run")))
    row.btn("suggest_samples", label="Suggest Samples", variant="outlined", on_click=h.on_suggest,
            disabled=bool(busy) or not sess.get("iteration"))
    if sess.get("subset_size"):
        row.btn("show_subset", label="Show Working Subset", variant="outlined", on_click=h.on_show_subset)
    if background:  # (its box is in Advanced settings, which may be folded)
        panel.md("_Train & Label runs in the background: a worker must run it (`fiftyone delegated "
                 "launch`). To run it here, untick \"%s\" in Advanced settings._" % BACKGROUND_LABEL,
                 name="background_note")


def readout_inputs(panel, s, truth_fields, choice, on_truth_change, on_class_change):
    """The quality readout's dropdowns; ``choice`` (field, class) is their
    default: what the App puts back on a page reload."""
    row = panel.h_stack("truth", gap=1)
    row.enum("ground_truth_field", [""] + truth_fields, label="Ground truth (optional quality readout)",
             default=choice[0], view=types.DropdownView(), on_change=on_truth_change)
    classes = (s.class_choices or []) if choice[0] and s.classes_of == choice[0] else []
    if classes:
        row.enum("positive_class", classes, label="Positive class", default=choice[1],
                 view=types.DropdownView(), on_change=on_class_change)
        panel.md("_Measured at every Train & Label from this panel, on the scored unlabeled samples (a train "
                 "from Python or the palette measures only when given `ground_truth_field` and "
                 "`positive_class`)._", name="truth_hint")


def advanced(panel, s, memo, saved, inputs):
    """The scorer's settings (``memo``: the panel's :class:`.memo.PanelMemo`,
    which keeps what each input showed). ``saved``: the session's (what the last train
    used; a Python or palette train changes them too), their inputs'
    defaults: the App resets a panel's inputs to their defaults on a reload,
    so defaults from anything else sent them back to 1 / auto then (a new
    user's beta 2 and pool mean weight 0 were undone by the next panel train).
    ``inputs``: each setting's row."""
    panel.bool("advanced", label="Advanced settings", default=bool(s.advanced))
    if not s.advanced:
        return
    d = dict(wf.SCORER_DEFAULTS, **(saved or {}))
    # each input's value as the input takes it (the weights and power are text: "auto" or a number)
    v = dict(d, calibrate=bool(d["calibrate"]), whiten={True: "on", False: "off"}.get(d["whiten"], d["whiten"]),
             **{k: str(d[k]) for k in ("power", "background_weight", "kernel_weight", "neighbor_weight")})
    before = memo.get("shown_defaults") or {}
    # a train elsewhere (palette, Python, another tab) changed a setting: its input shows the
    # session's now (the App keeps an input's value over a new default: a review's beta 2
    # stayed shown after beta 3); shown_defaults: what each input showed before the user
    # typed (Train sends only the ones they changed)
    changed = {row + "." + k: v[k] for k, row in inputs.items() if k in before and before[k] != str(v[k])}
    patch_state(s, changed)
    # (in the panel's memo, not its state: a state write reloads the App's page, dropping its filters)
    memo.set(shown_defaults={k: str(v[k]) for k in inputs})
    shown = s.get("options.calibrate")
    row = panel.h_stack("settings", gap=1)
    row.enum("mode", ["distance", "query"], label="Mode", default=v["mode"])
    row.float("beta", label=LABELS["beta"], default=v["beta"],
              description="weight of the distance to the positive prototype")
    row.float("gamma", label=LABELS["gamma"], default=v["gamma"],
              description="weight of the distance to the negative prototype")
    if not (v["calibrate"] if shown is None else shown):
        row.float("temperature", label="temperature", default=v["temperature"])
    opts = panel.h_stack("options", gap=1)
    opts.bool("calibrate", label="Calibrated P (off: sigmoid(s/T))", default=v["calibrate"])
    opts.enum("whiten", ["auto", "on", "off"], label="Whiten by pool covariance", default=v["whiten"])
    opts.str("power", label=LABELS["power"], default=v["power"],
             description="each embedding value ^ power (auto: 0.75 for nonnegative, CNN-like "
                         "embeddings; 1: as they are, e.g. raw pixels)")
    # (three to a row: six columns at 1600 px wrapped their help text word by word)
    opts = panel.h_stack("weights", gap=1)
    opts.str("background_weight", label=LABELS["background_weight"], default=v["background_weight"],
             description="how much the unlabeled pool's mean counts in the negative prototype "
                         "(0: labels only; auto: 3 for a rare concept, 0 for a common one)")
    opts.str("kernel_weight", label=LABELS["kernel_weight"], default=v["kernel_weight"],
             description="weight of the similarity to the nearest labeled examples next to the prototypes "
                         "(0: prototypes only; auto: 1 for a common concept, up to 2 from 10 to 20 labels per side; "
                         "0.5 for a rare one from 5 positives, "
                         "or from 10 while positives outnumber negatives)")
    opts.str("neighbor_weight", label=LABELS["neighbor_weight"], default=v["neighbor_weight"],
             description="how much the top-scored samples' scores move toward their nearest pool samples' "
                         "(0: off; auto: 0.5 for a rare concept unless positive labels outnumber negative ones, else 0)")
    sug = panel.h_stack("suggest", gap=1)
    sug.int("num_suggest", label=LABELS["num_suggest"], default=kept(s, "suggest.num_suggest", 20))
    sug.float("top_fraction", label=LABELS["top_fraction"],
              default=kept(s, "suggest.top_fraction", wf.DEFAULT_TOP_FRACTION))
    sug.float("random_fraction", label=LABELS["random_fraction"],
              default=kept(s, "suggest.random_fraction", wf.DEFAULT_RANDOM_FRACTION))
    # (its own key: the start form's "delegate" box made every later train delegated)
    panel.bool("delegate_train", label=BACKGROUND_LABEL, default=bool(s.delegate_train))


def mislabeled(panel, found, on_show):
    """A warning when the last train flagged labels as possibly wrong."""
    if not found or not found.get("count"):
        return
    panel.md("**%d label(s) look wrong**: %d positive, %d negative whose leave-one-out score strongly "
             "disagrees with the label (one wrong example misleads the scorer most). Check them; "
             "re-label or clear the wrong ones and train again."
             % (found["count"], len(found["positive"]), len(found["negative"])), name="mislabeled_md")
    panel.btn("show_mislabeled", label="Show Possibly Mislabeled", variant="outlined", on_click=on_show)


def scorer_line(sc):
    """What the last train's scorer chose, in words (None without a summary)."""
    if not sc:
        return None
    parts = []
    if sc.get("concept"):
        parts.append("a %s concept" % sc["concept"])
    if sc.get("power") not in (None, 1.0):
        parts.append("embeddings ^%g" % sc["power"])
    if sc.get("whitened") or sc.get("background_weight"):
        whitened = ""
        if sc.get("whitened"):
            whitened = ", whitened" + (" (shrinkage %.3g)" % sc["shrinkage"] if sc.get("shrinkage") else "")
        parts.append("pool mean weight %g%s" % (sc.get("background_weight") or 0, whitened))
    if sc.get("kernel_weight"):
        pool_rows, share = "", sc.get("kernel_pool_share")
        if sc.get("kernel_pool_rows"):  # (a summary from before the share was recorded has none)
            shrunk = share not in (None, 0.5)  # (suggestions picked some of the negatives)
            pool_rows = " (and pool rows: %.2g of its negative side)" % share if shrunk else " (and pool rows)"
        parts.append("nearest labels %g%s" % (sc["kernel_weight"], pool_rows))
    if sc.get("neighbor_weight"):
        parts.append("pool neighbors %g (top %.0f%%)" % (sc["neighbor_weight"], 100 * (sc.get("neighbor_share") or 0)))
    if sc.get("recalibrated_on"):
        parts.append("calibrated on %d labels from suggestions" % sc["recalibrated_on"])
    return ("Scorer: " + "; ".join(parts)) if parts else None


def last_train(panel, sess, last, on_hist_click):
    if not last:
        return
    panel.md(
        "**Last train** (iteration %d): %s scored, **%s predicted positive**, %s negative; %s skipped; %.2fs"
        % (last.get("iteration", 0), *(format(last.get(k) or 0, ",") for k in (
            "num_scored", "num_predicted_positive", "num_predicted_negative")),
           format((last.get("num_skipped_missing_embedding") or 0) + (last.get("num_skipped_invalid_embedding") or 0), ","),
           last.get("seconds") or 0),
        name="last_train_md",
    )
    rate = rate_line(last)
    if rate:
        panel.md(rate, name="prior_md")
    line = scorer_line(last.get("scorer"))
    if line:
        panel.md(line, name="scorer_md")
    quality_table(panel, sess)
    # the bars go in the plot's view, not in panel data: a panel-data write is saved with the
    # App's spaces like a state write, and that reload dropped the sidebar's filters after
    # each train that changed the histogram ("p_histogram": spaces saved by older versions
    # hold panel data under "histogram", which would be drawn instead of the view's)
    panel.plot(
        "p_histogram", on_click=on_hist_click, data=histogram_traces(last),
        layout={
            "title": {"text": "P(positive) over the inference set (click a bar: show those samples)"},
            "xaxis": {"title": {"text": "P(positive)"}, "range": [0, 1]},
            "yaxis": {"title": {"text": "samples (log)"}, "type": "log"},
            "shapes": [{"type": "line", "x0": 0.5, "x1": 0.5, "y0": 0, "y1": 1, "yref": "paper",
                        "line": {"dash": "dash", "color": "#888"}}],
            "annotations": [{"x": 0.5, "y": 1, "yref": "paper", "text": "decision: 0.5", "showarrow": False,
                             "yanchor": "bottom"}],
            "height": 280, "margin": {"l": 50, "r": 10, "t": 40, "b": 40}, "bargap": 0.05,
        },
        config={"displayModeBar": False},
    )


def quality_table(panel, sess):
    text = quality_markdown(sess.get("history") or [])
    if text:
        panel.md(text, name="quality_md")


def footer(panel, h):
    row = panel.h_stack("footer", gap=1)
    row.btn("refresh", label="Refresh panel", variant="outlined", on_click=h.on_refresh)
    row.btn("reset_session", label="Reset Session…", variant="outlined", on_click=h.on_reset)
