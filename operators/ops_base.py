"""The operators' common base: Python calls, the form checks and the one
user-error boundary, progress that the panel can see."""

import fiftyone.operators as foo
import fiftyone.operators.types as types

from . import workflow as wf

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


def _mark_input(inputs, error):
    """Marks the input at fault (``error.param``, when the form has it; a tuple
    when two are, together) invalid with the error's message, so the form
    shows it on that input too."""
    params = getattr(error, "param", None) or ()
    for name in (params,) if isinstance(params, str) else params:
        prop = inputs.properties.get(name)
        if prop is not None:
            prop.invalid = True
            prop.error_message = str(error)


def show_derived(ctx, state, kind, view, base, note=None):
    """Sets the App's view to ``view``, remembered as ``kind`` derived from
    ``base`` (the panel's Train then scores ``base``); nothing when delegated."""
    if ctx.delegated:
        return
    wf.remember_derived(state, kind, view, base, note=note)
    ctx.ops.set_view(view=view)


def _auto_or_number(inputs, params, prev, name, label):
    """A setting that takes "auto" or a number, shown as the session's last
    value, else the default the click uses. A text input for the App, which
    sends what was typed as text (a one-of type there broke the whole form:
    React error #130 in FiftyOne 1.22's operator browser); a value that is not
    text (background_weight=3 from Python, which a text input's type check
    refuses) gets a one-of type, which FiftyOne does not check: the scorer's
    settings check it."""
    default = str(prev.get(name, wf.SCORER_DEFAULTS[name]))
    v = params.get(name)
    if v is None or type(v) is str:  # (FiftyOne's check refuses str subclasses such as numpy.str_)
        inputs.str(name, label=label, default=default)
    else:
        inputs.define_property(name, types.OneOf([types.String(), types.Number()]), label=label, default=default)


def _on_off(v):
    return {True: "on", False: "off"}.get(v, v)


def _tracked(ctx, operation):
    """A progress callback shown by the operator and recorded for the panel
    (call ``.done()`` when finished)."""

    def cb(frac, label):
        ctx.set_progress(progress=float(frac), label=label)

    return wf.Progress(wf.SessionState(ctx.dataset), operation, cb)


def _with_progress(ctx, operation, fn):
    prog = _tracked(ctx, operation)
    try:
        return fn(prog)
    finally:
        prog.done()


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
            _mark_input(inputs, e)
            _error_prop(inputs, str(e))
            return False
        return True

    def execute(self, ctx):
        # the one error boundary: any user error reaches the user as its message
        with wf.user_errors():
            return self.run(ctx)

    def run(self, ctx):
        raise NotImplementedError
