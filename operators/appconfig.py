"""The dataset's App settings the session changes (sidebar fields shown by
default, colors), and giving them back at reset as they were."""

from .. import fastdb
from . import params as P

GREEN, RED = "#2ca02c", "#d62728"
# the per-class colors other label fields get once the session colors by value: FiftyOne's
# default pool less its reds, greens, orange and red-brown (a new user read a red "Pullover"
# beside a red negative "True", and a green "Trouser" beside a positive); set only when the
# dataset has no pool of its own, taken back at reset
POOL = ["#996633", "#999900", "#009999", "#000099", "#0066ff", "#6600ff", "#cc33cc", "#777799"]


def show(dataset, pred):
    """Colors and shows the session's fields by default (:func:`apply_colors`,
    :func:`show_by_default`); returns the paths set. Verified on the stored
    config and retried: another operator thread reloading the shared dataset
    between a change and its save lost it (2-3 of 40 starts racing label calls)."""
    paths = set()
    for _ in range(5):
        paths |= set(apply_colors(dataset, pred)) | set(show_by_default(dataset, pred))
        cfg = fastdb.stored_app_config(dataset)
        colored = {f.get("path") for f in (cfg.get("color_scheme") or {}).get("fields") or []}
        active = cfg.get("active_fields") or {}
        shown = active.get("exclude") or pred in (active.get("paths") or [])
        if pred in colored and shown:
            break
        dataset.reload()
    return sorted(paths)


def snapshot(dataset):
    """What the session will change, before it does (kept with its first start)."""
    scheme = dataset.app_config.color_scheme
    return {"active_unset": dataset.app_config.active_fields is None, "scheme_unset": scheme is None,
            "color_by": None if scheme is None else scheme.color_by,
            "color_paths": [f.get("path") for f in (scheme.fields or [])] if scheme is not None else []}


def restore(dataset, paths, before):
    """Removes the session's ``paths`` from the sidebar and colors; settings
    that were unset before the session (``before``: :func:`snapshot`, with the
    ``active_paths`` the session set) are unset again unless changed since."""
    remove_colors(dataset, paths)
    if not before:
        return
    app, ours = dataset.app_config, set(paths)
    active = app.active_fields
    if (before.get("active_unset") and active is not None and not active.exclude
            and set(active.paths) - ours == set(before.get("active_paths") or []) - ours):
        app.active_fields = None
    scheme = app.color_scheme
    added = [f for f in (scheme.fields or []) if f.get("path") not in set(before.get("color_paths") or [])] \
        if scheme is not None else []
    if scheme is not None and list(scheme.color_pool or []) == POOL:  # (ours: a user's own pool stays)
        scheme.color_pool = None
    if scheme is not None and before.get("color_by") is None and scheme.color_by == "value" and not added:
        scheme.color_by = None  # (per-value colors the user added since need it: then it stays)
    if scheme is not None and before.get("scheme_unset") and not scheme.fields:
        d = {k: v for k, v in scheme.to_dict().items() if k != "_id" and k != "fields"}
        if not any(v is not None for v in d.values()):
            app.color_scheme = None
    dataset.save()


def color_entries(pred):
    """FiftyOne color-scheme entries: positive green, negative red."""
    values = [{"value": "positive", "color": GREEN}, {"value": "negative", "color": RED}]

    def flag(color):  # a label field shows "True" on its tiles
        return {"fieldColor": color, "valueColors": [{"value": v, "color": color} for v in ("True", "true")]}

    return [
        {"path": pred, "fieldColor": GREEN, "colorByAttribute": "label", "valueColors": values},
        dict(flag(GREEN), path=P.LABEL_FIELDS["positive"]),
        dict(flag(RED), path=P.LABEL_FIELDS["negative"]),
    ]


def apply_colors(dataset, pred):
    """Adds our entries to the dataset's App color scheme (kept across reloads),
    leaving the user's other entries as they are; returns the paths set."""
    import fiftyone as fo

    ours = color_entries(pred)
    paths = {e["path"] for e in ours}
    scheme = dataset.app_config.color_scheme or fo.ColorScheme()
    kept = [f for f in (scheme.fields or []) if f.get("path") not in paths]
    scheme.fields = kept + ours
    if scheme.color_by is None:  # the App applies per-value colors only when coloring by value
        scheme.color_by = "value"
    if not scheme.color_pool:
        scheme.color_pool = list(POOL)
    dataset.app_config.color_scheme = scheme
    dataset.save()
    return sorted(paths)


def remove_colors(dataset, paths):
    scheme = dataset.app_config.color_scheme
    if scheme is not None and scheme.fields:
        scheme.fields = [f for f in scheme.fields if f.get("path") not in set(paths)]
    active = dataset.app_config.active_fields
    if active is not None and not active.exclude:
        active.paths = [p for p in active.paths if p not in set(paths)]
    dataset.save()


def show_by_default(dataset, pred):
    """Makes the label and prediction fields active in the dataset's default
    App sidebar (so tiles show them after every reload); returns the paths added."""
    import fiftyone as fo

    ours = [pred] + list(P.LABEL_FIELDS.values())
    active = dataset.app_config.active_fields
    if active is None:
        active = fo.DatasetAppConfig.default_active_fields(dataset)
    if active.exclude:
        active.paths = [p for p in active.paths if p not in ours]
        added = []
    else:
        added = [p for p in ours if p not in active.paths]
        active.paths = list(active.paths) + added
    dataset.app_config.active_fields = active
    dataset.save()
    return added


def visible_fields(dataset, pred):
    """The fields to show on grid tiles: the dataset's label fields, ours first."""
    import fiftyone as fo

    labels = [n for n, f in dataset.get_field_schema(embedded_doc_type=fo.Label).items() if n != pred]
    return [pred] + list(P.LABEL_FIELDS.values()) + labels
