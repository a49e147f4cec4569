"""Redrawing the App's grid after the plugin wrote labels or predictions,
keeping the user's sidebar filters. This leans on how the App handles its
filter state (below FiftyOne's public API), so it stays here alone.

Measured in Chromium with FiftyOne 1.22.1, on a grid filtered to 13 of 120 samples:

- ``ctx.ops.reload_dataset()`` reloads the dataset page, and that resets the
  App's filters. Every Label and Train & Label click showed all 120 again. A
  ``set_filters`` sent beside it ran first and was wiped by the reload.
- ``ctx.ops.reload_samples()`` keeps the filters, but it does not query the
  grid again, so the tiles kept their old labels.
- The App's ``set_filters`` queries the grid again when the filters it is
  given differ from its own. So the same filters are sent back, one of them
  with an extra key (``RELOAD_KEY``, a new value each time). The server's
  filter code reads only the keys it knows, so what matches does not change.

With no sidebar filter, the whole page is reloaded, as before.

Colors: the App keeps the color scheme it loaded, also through those reloads,
so a session started from Python while the App was open showed a positive
label's chip red and a negative's orange (measured the same way). The App's
``set_color_scheme`` (not in ``ctx.ops``) is sent the dataset's scheme, ours
included (:func:`send_colors`).
"""

import time

RELOAD_KEY = "_fewshot_reload"


def refresh(ctx, reload=False):
    """Makes the App query its grid again. Returns ``"filters"`` when the
    filters were sent back (they stay), or ``"reload"``: without filters, or
    with ``reload`` (fields were added: the App learns them from a reload).

    The filters are the request's: redraw from a request made after the
    write (a panel's success callback), not from a long operation's own,
    whose filters are those of its click."""
    filters = (ctx.request_params or {}).get("filters") or {}
    path = next((p for p in sorted(filters) if isinstance(filters[p], dict)), None)
    if reload or path is None:
        ctx.ops.reload_dataset()
        return "reload"
    again = dict(filters)
    again[path] = dict(filters[path], **{RELOAD_KEY: time.time_ns()})
    ctx.trigger("set_filters", params=again)
    return "filters"


def send_colors(ctx):
    """Sends the App the dataset's color scheme (the plugin's entries are in
    it from the session's start; after a reset, the App's defaults where the
    dataset has none)."""
    import fiftyone as fo

    scheme = ctx.dataset.app_config.color_scheme or fo.ColorScheme()
    ctx.trigger("set_color_scheme", params={
        "color_by": scheme.color_by or fo.app_config.color_by,
        "color_pool": list(scheme.color_pool or fo.app_config.color_pool),
        "fields": list(scheme.fields or []),
    })
