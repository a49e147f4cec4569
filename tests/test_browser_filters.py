"""The App's sidebar filters survive the plugin's clicks: a new user reviewing
through a filter (``ground_truth`` = Bag, or the plugin's own prediction
label) lost it at every Label Positive / Negative and Train & Label (the
operators reloaded the whole dataset, which resets the App's filters)."""

import os
import re
import threading

import pytest

from test_browser import CHROMIUM, _open_panel, _page, app, trouser_session  # noqa: F401  (app: the fixture)

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian chromium")


def _py(op, ds, **params):
    """``conftest.run`` from a thread: inside a Playwright page, FiftyOne's
    execute_operator sees Playwright's event loop and returns a pending task."""
    from conftest import run

    out = []
    t = threading.Thread(target=lambda: out.append(run(op, ds, **params)))
    t.start()
    t.join()
    return out[0]


def _open_filtered(page, url):
    """The App with the panel on an active session, the grid filtered to Trousers."""
    page.goto(url)
    page.locator("[data-cy=looker]").first.wait_for(timeout=60_000)
    _open_panel(page, page.get_by_role("heading", name=re.compile("Iteration")))
    page.wait_for_timeout(1500)
    _filter(page, "ground_truth", "ground_truth.label", "Trouser")


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
        _py("start_session", ds, embedding_field=EMB)
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


def test_a_filter_changed_during_a_train_is_not_put_back(app, fo):
    """The grid is redrawn with the filters the App has when the train ends,
    not those of its click (the train's own request): a filter cleared
    during a long train came back at its end."""
    from playwright.sync_api import expect

    from conftest import class_ids

    ds, url = app
    trouser_session(ds)  # (3 + 3 labels, on whatever session the module's tests left)
    n = len(class_ids(ds, "Trouser"))
    held = []

    def hold(route):  # the train's request waits while the filter changes (a long train)
        if not held and 'operator_uri":"@fewshot/few_shot_learning/train_and_label"' in (route.request.post_data or ""):
            held.append(route)
        else:
            route.continue_()

    with _page("filters-changed-during-train") as (page, shot):
        _open_filtered(page, url)
        expect(page.get_by_text("%d samples" % n, exact=True)).to_be_visible()
        page.route("**/operators/execute**", hold)
        done = _py("get_session", ds)["iteration"]
        page.get_by_role("button", name="Train & Label").click()
        for _ in range(100):
            if held:
                break
            page.wait_for_timeout(100)
        assert held, "the train's request was not seen"
        page.locator("[data-cy='categorical-filter-ground_truth.label']").get_by_text("Reset").click()
        expect(page.get_by_text("%d samples" % len(ds), exact=True)).to_be_visible()
        held[0].continue_()
        for _ in range(60):  # the train ends
            if _py("get_session", ds)["iteration"] > done:
                break
            page.wait_for_timeout(500)
        page.wait_for_timeout(3000)  # (its redraw)
        shot(page, "33-filter-cleared-during-train")
        expect(page.get_by_text("%d samples" % len(ds), exact=True)).to_be_visible()
        expect(page.locator("[data-cy=tag-fewshot_prediction]").first).to_be_visible()


def test_predictions_in_a_new_field_from_python_show_in_the_open_app(app, fo):
    """A session moved to another prediction field and trained from Python
    while the App shows a filter: the panel's poll reloads the page (the App
    learns the new field) instead of sending the filters back."""
    from playwright.sync_api import expect

    from conftest import EMB

    ds, url = app
    trouser_session(ds)
    with _page("filters-new-field") as (page, shot):
        _open_filtered(page, url)
        page.wait_for_timeout(1500)
        _py("start_session", ds, embedding_field=EMB, prediction_field="other_prediction")
        _py("train_and_label", ds)
        expect(page.locator("[data-cy=tag-other_prediction]").first).to_be_visible(timeout=30_000)
        shot(page, "34-new-field-from-python")


def test_the_filter_stays_after_a_train_that_changed_the_scope(app, fo):
    """After a train of the whole dataset, a train of a filtered view kept
    the filter for a second, then the App dropped it: the grid showed every
    sample and the panel "whole dataset" again, so the next Train scored all
    of them (a new user's report). The render wrote the new histogram as panel
    data, which the App saves with its spaces, reloading the page. A train
    from Python, which the panel's poll shows, did the same."""
    from playwright.sync_api import expect

    from conftest import class_ids

    ds, url = app
    trouser_session(ds)
    _py("train_and_label", ds)  # (the whole dataset)
    n = len(class_ids(ds, "Trouser"))
    with _page("filters-scope-changed") as (page, shot):
        _open_filtered(page, url)
        expect(page.get_by_text("%d samples" % n, exact=True)).to_be_visible()
        done = _py("get_session", ds)["iteration"]
        page.get_by_role("button", name="Train & Label").click()
        expect(page.get_by_role("heading", name="Iteration %d" % (done + 1))).to_be_visible()
        page.wait_for_timeout(6000)
        shot(page, "36-filter-after-scope-change")
        expect(page.get_by_text("%d samples" % n, exact=True)).to_be_visible()
        expect(page.get_by_text(re.compile("current view - %d" % n))).to_be_visible()
        _py("train_and_label", ds)  # (from Python, the whole dataset: the panel's poll redraws)
        expect(page.get_by_role("heading", name="Iteration %d" % (done + 2))).to_be_visible()
        page.wait_for_timeout(6000)
        shot(page, "37-filter-after-a-python-train")
        expect(page.get_by_text("%d samples" % n, exact=True)).to_be_visible()


def test_an_error_goes_when_the_grid_shows_another_view(app, fo):
    """A new user filtered the grid to nothing and clicked Train & Label:
    "The current view is empty" stayed up after the filter was taken off,
    above "current view - 13", until the next click."""
    from playwright.sync_api import expect

    from conftest import class_ids

    ds, url = app
    trouser_session(ds)
    n = len(class_ids(ds, "Trouser"))
    with _page("filters-stale-error") as (page, shot):
        _open_filtered(page, url)
        expect(page.get_by_text("%d samples" % n, exact=True)).to_be_visible()
        negatives = page.locator("[data-cy=categorical-filter-fewshot_negative] [data-cy=checkbox-True]")
        arrow = page.locator("[data-cy=sidebar-field-arrow-enabled-fewshot_negative]").first
        arrow.wait_for()
        if not negatives.count():  # (the field is folded)
            arrow.click()
        negatives.click()  # (the negatives are not Trousers: nothing left)
        expect(page.get_by_text("0 samples", exact=True)).to_be_visible()
        page.get_by_role("button", name="Train & Label").click()
        expect(page.get_by_text("The current view is empty")).to_be_visible()
        shot(page, "41-error-on-an-empty-view")
        negatives.click()
        expect(page.get_by_text("%d samples" % n, exact=True)).to_be_visible()
        expect(page.get_by_text(re.compile("current view - %d" % n))).to_be_visible()
        expect(page.get_by_text("The current view is empty")).to_have_count(0)
        shot(page, "42-error-gone-with-the-view")
        assert len(ds.exists("fewshot_prediction")) == 0  # (nothing was scored)
