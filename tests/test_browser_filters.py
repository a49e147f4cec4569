"""The App's sidebar filters survive the plugin's clicks: a new user reviewing
through a filter (``ground_truth`` = Bag, or the plugin's own prediction
label) lost it at every Label Positive / Negative and Train & Label (the
operators reloaded the whole dataset, which resets the App's filters)."""

import os

import pytest

from test_browser import CHROMIUM, _open_panel, _page, app, trouser_session  # noqa: F401  (app: the fixture)

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian chromium")


def _filter(page, field, path, value):
    box = page.locator("[data-cy='categorical-filter-%s']" % path)
    if not box.count():  # (the field is folded)
        page.locator("[data-cy=sidebar-field-arrow-enabled-%s]" % field).first.click()
    box.locator("input").first.fill(value)
    page.wait_for_timeout(1000)  # (the App lists the matching values)
    box.locator("input").first.press("Enter")


def test_label_and_train_keep_the_sidebar_filter(app, fo):
    from playwright.sync_api import expect

    from conftest import class_ids

    ds, url = app
    trouser_session(ds)
    n = len(class_ids(ds, "Trouser"))
    with _page("filters") as (page, shot):
        page.goto(url)
        page.locator("[data-cy=looker]").first.wait_for(timeout=60_000)
        _open_panel(page, page.get_by_role("heading", name="Iteration 0"))
        page.wait_for_timeout(1500)
        _filter(page, "ground_truth", "ground_truth.label", "Trouser")
        expect(page.get_by_text("%d samples" % n, exact=True)).to_be_visible()
        shot(page, "30-filtered")
        tiles = page.locator("[data-cy=looker]")
        target = None
        for i in range(tiles.count()):
            if not tiles.nth(i).locator("[data-cy=tag-fewshot_positive]").count():
                target = tiles.nth(i)
                break
        target.hover()
        target.locator("[data-cy=looker-checkbox-]").click()
        page.get_by_role("button", name="Label Positive").click()
        expect(page.get_by_text("4 positive")).to_be_visible()
        page.wait_for_timeout(2500)
        expect(page.get_by_text("%d samples" % n, exact=True)).to_be_visible()
        expect(page.locator("[data-cy=tag-fewshot_positive]")).to_have_count(4)  # (on the tiles at once)
        page.get_by_role("button", name="Train & Label").click()
        expect(page.get_by_role("heading", name="Iteration 1")).to_be_visible()
        page.wait_for_timeout(2500)
        expect(page.get_by_text("%d samples" % n, exact=True)).to_be_visible()
        expect(page.locator("[data-cy=tag-fewshot_prediction]").first).to_be_visible()
        shot(page, "31-filter-kept")


def test_a_session_started_from_python_shows_its_labels_under_a_filter(app, fo):
    """A label given with a filter on is drawn on its tile also when the
    session was started from Python while the App was open (the App must
    know the new label fields: the grid is redrawn with the filters sent
    back, not reloaded)."""
    from playwright.sync_api import expect

    from conftest import EMB, class_ids, run

    ds, url = app
    if run("get_session", ds).get("active"):
        run("reset_session", ds)  # (the module's dataset: no session)
    n = len(class_ids(ds, "Trouser"))
    with _page("filters-python-start") as (page, shot):
        page.goto(url)
        page.locator("[data-cy=looker]").first.wait_for(timeout=60_000)
        _open_panel(page)
        _filter(page, "ground_truth", "ground_truth.label", "Trouser")
        expect(page.get_by_text("%d samples" % n, exact=True)).to_be_visible()
        run("start_session", ds, embedding_field=EMB)
        expect(page.get_by_role("heading", name="Iteration 0")).to_be_visible(timeout=30_000)
        # the App reloaded the page once the panel showed the session (the sidebar lists the
        # label fields), and the filter went: FiftyOne 1.22.1 does so
        expect(page.get_by_text("%d samples" % len(ds), exact=True)).to_be_visible(timeout=30_000)
        page.locator("[data-cy=sidebar-field-arrow-enabled-fewshot_positive]").first.wait_for()
        page.wait_for_timeout(1500)
        _filter(page, "ground_truth", "ground_truth.label", "Trouser")
        expect(page.get_by_text("%d samples" % n, exact=True)).to_be_visible()
        page.wait_for_timeout(1000)
        tile = page.locator("[data-cy=looker]").nth(2)
        tile.hover()
        tile.locator("[data-cy=looker-checkbox-]").click()
        page.get_by_role("button", name="Label Positive").click()
        expect(page.get_by_text("1 positive")).to_be_visible()
        expect(page.locator("[data-cy=tag-fewshot_positive]")).to_have_count(1)
        expect(page.get_by_text("%d samples" % n, exact=True)).to_be_visible()
        shot(page, "32-python-start-labeled")
