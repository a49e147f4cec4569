"""What the panel's inputs show after a page reload is what its buttons use.

FiftyOne 1.22's App keeps a panel's state over a reload but shows its inputs
at their defaults: a new user's "Run Train & Label in the background" showed
unticked after a reload, a Reset and a new session, yet the next Train was
queued for a worker, and ran long after on a view they had left."""

import os

import pytest

from test_browser import CHROMIUM, _open_at, _page, app, trouser_session  # noqa: F401  (app: the fixture)

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian chromium")

BACKGROUND = "Run Train & Label in the background (delegated operation)"


def test_ticked_inputs_show_ticked_after_a_reload(app, fo):
    from playwright.sync_api import expect

    ds, url = app
    trouser_session(ds)
    with _page("reload-inputs") as (page, shot):
        _open_at(page, url)
        page.get_by_role("checkbox", name="Advanced settings").check()
        page.get_by_role("checkbox", name=BACKGROUND).check()
        page.get_by_text("Suggest how many", exact=True).locator("xpath=following::input[1]").fill("7")
        page.wait_for_timeout(2000)  # (the App saves the panel's state)
        page.reload()
        page.locator("[data-cy=looker]").first.wait_for(timeout=60_000)
        page.get_by_role("heading", name="Iteration 0").wait_for()
        page.wait_for_timeout(1500)
        shot(page, "39-inputs-after-reload")
        expect(page.get_by_role("checkbox", name="Advanced settings")).to_be_checked()
        expect(page.get_by_role("checkbox", name=BACKGROUND)).to_be_checked()
        expect(page.get_by_text("Suggest how many", exact=True).locator("xpath=following::input[1]")).to_have_value("7")
        expect(page.get_by_text("Train & Label runs in the background")).to_be_visible()
