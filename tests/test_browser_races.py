"""The panel in the real App (Chromium) while the user keeps clicking: what a
click acts on is what the user saw when clicking. A panel click travels to the
server and back before the App runs the operator it triggers; the network is
held here to widen that window deterministically."""

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import ARTIFACTS
from test_browser import CHROMIUM, _open_at, _open_panel, _page, app, trouser_session  # noqa: F401  (app: the fixture)

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian chromium")


def _hold(page, method):
    """Holds the first panel request that calls ``method``; returns the list
    the held route lands in (release it with ``continue_()``)."""
    held = []

    def handler(route):
        if not held and method in (route.request.post_data or ""):
            held.append(route)
            return
        route.continue_()

    page.route("**/operators/**", handler)
    return held


def _open(page, url, heading="Iteration 0", background=False):
    """The App at ``url`` with the panel open (showing ``heading``); with
    ``background``, Train & Label set to run as a delegated operation."""
    _open_at(page, url, heading)
    if background:
        page.get_by_text("Advanced settings", exact=True).click()
        page.get_by_text("Run Train & Label in the background (delegated operation)").click()
        page.wait_for_timeout(1000)


def _wait_for(page, held, seconds=15):
    for _ in range(seconds * 10):
        if held:
            return
        page.wait_for_timeout(100)
    raise AssertionError("the panel's request was not seen")


def test_a_tile_ticked_while_a_label_click_travels_is_not_labeled(app, fo):
    """A new user ticked an ankle boot ~300 ms after clicking Label Positive
    (to label it negative next): it was labeled positive, and nothing said so."""
    from playwright.sync_api import expect

    ds, url = app
    with _page("label-race") as (page, shot):
        page.goto(url)
        page.locator("[data-cy=looker]").first.wait_for(timeout=60_000)
        _open_panel(page).click()
        expect(page.get_by_role("heading", name="Iteration 0")).to_be_visible(timeout=120_000)
        page.wait_for_timeout(2000)
        tiles = page.locator("[data-cy=looker]")
        trousers, other = [], None
        for i in range(tiles.count()):
            t = tiles.nth(i)
            if t.locator("[data-cy=tag-ground_truth]").inner_text() == "Trouser":
                trousers.append(t)
            elif other is None:
                other = t
            if len(trousers) == 2 and other is not None:
                break

        def tick(t):
            t.hover()
            t.locator("[data-cy=looker-checkbox-]").click()

        for t in trousers:
            tick(t)
        expect(page.get_by_text("2 selected")).to_be_visible()
        held = _hold(page, "on_label_positive")
        page.get_by_role("button", name="Label Positive").click()
        _wait_for(page, held)
        tick(other)  # while the click is on its way
        page.wait_for_timeout(1000)
        held[0].continue_()
        expect(page.get_by_text("2 positive")).to_be_visible()
        # the late tile is not labeled and stays selected, ready for Label Negative
        expect(page.get_by_text("1 selected")).to_be_visible()
        tiles.first.locator("[data-cy=tag-ground_truth]").wait_for()  # (the grid reloaded)
        page.wait_for_timeout(3000)  # (the tiles redraw after the reload)
        shot(page, "20-label-race")
        ds.reload()
        labeled = ds.match(fo.ViewField("fewshot_positive") == True)  # noqa: E712
        assert labeled.values("ground_truth.label") == ["Trouser", "Trouser"]
        page.get_by_role("button", name="Label Negative").click()
        expect(page.get_by_text("1 negative")).to_be_visible()
        expect(page.get_by_text("0 selected")).to_be_visible()
        page.wait_for_timeout(3000)
        shot(page, "21-label-race-negative")
        ds.reload()
        neg = ds.match(fo.ViewField("fewshot_negative") == True).values("ground_truth.label")  # noqa: E712
        assert len(neg) == 1 and neg[0] != "Trouser"
    assert os.path.exists(os.path.join(ARTIFACTS, "browser-20-label-race.png"))


def test_a_train_refused_because_another_runs_says_why_in_words(app, fo, plugin):
    """Two tabs clicked Train & Label together: the one refused showed the
    server's whole error payload (a traceback, "Network Error", the request)
    in a red box that stayed, covering the other tab's result."""
    from playwright.sync_api import expect

    from conftest import run

    ds, url = app
    trouser_session(ds)
    st = plugin.operators.state
    with _page("train-refused") as (page, shot):
        _open_at(page, url)
        # the panel's check passes; the train the App then runs meets the other tab's
        held = _hold(page, 'train_and_label"')
        page.get_by_role("button", name="Train & Label").click()
        _wait_for(page, held)
        with st.Lease(plugin.operators.workflow.SessionState(ds), "train"):  # another tab's train
            held[0].continue_()
            expect(page.get_by_text("A train is running since").first).to_be_visible()
            page.wait_for_timeout(1000)
            shot(page, "22-train-refused")
            text = page.locator("body").inner_text()
            for raw in ("Traceback", "stack", "Network Error", "ExecutionError", "Validation error"):
                assert raw not in text, raw
        page.unroute("**/operators/**")
        # (a train elsewhere finished: the refusal is old news; in a thread: Playwright's
        # event loop runs in this one, and execute_operator would only schedule the call here)
        with ThreadPoolExecutor(1) as ex:
            assert ex.submit(run, "train_and_label", ds).result()["iteration"] == 1
        page.get_by_role("button", name="Refresh panel").click()
        expect(page.get_by_role("heading", name="Iteration 1")).to_be_visible()
        expect(page.get_by_text("A train is running since")).to_have_count(0)
        page.get_by_role("button", name="Train & Label").click()
        expect(page.get_by_role("heading", name="Iteration 2")).to_be_visible(timeout=90_000)


def test_a_train_from_python_shows_in_an_open_panel_without_a_click(app, fo, plugin):
    """A new user trained from Python with the App open: 25 s later the panel
    still said "Iteration 4" and "Last train (iteration 4)" beside iteration
    5's predictions, until Refresh panel."""
    from playwright.sync_api import expect

    from conftest import run

    ds, url = app
    trouser_session(ds)
    with _page("python-train") as (page, shot):
        page.goto(url)
        tiles = page.locator("[data-cy=looker]")
        tiles.first.wait_for(timeout=60_000)
        _open_panel(page, page.get_by_role("heading", name="Iteration 0"))
        expect(tiles.first.locator("[data-cy=tag-fewshot_prediction]")).to_have_count(0)
        with ThreadPoolExecutor(1) as ex:  # (see test_a_train_refused_...)
            assert ex.submit(run, "train_and_label", ds).result()["iteration"] == 1
        expect(page.get_by_role("heading", name="Iteration 1")).to_be_visible(timeout=15_000)
        expect(page.get_by_text("Last train")).to_be_visible()
        # and the grid was reloaded: the tiles show the new predictions
        expect(tiles.first.locator("[data-cy=tag-fewshot_prediction]")).to_be_visible(timeout=30_000)
        page.wait_for_timeout(1000)
        shot(page, "23-python-train-shown")


def test_an_idle_panel_does_not_make_the_app_query_the_grid(app, fo, plugin):
    """A review: each 5 s poll wrote panel state, which the App saves and
    follows with a grid query and three view events, each a full render (6
    renders and 2 grid queries per poll, per open tab, for ever)."""
    from playwright.sync_api import expect

    ds, url = app
    trouser_session(ds)
    with _page("idle-poll") as (page, shot):
        _open_at(page, url)
        page.get_by_text("Advanced settings", exact=True).click()  # (its inputs' state too)
        expect(page.get_by_text("Pool neighbors' weight", exact=True)).to_be_visible()
        page.wait_for_timeout(6000)  # (settled)
        seen = []
        page.on("request", lambda r: seen.append(r.post_data or "") if r.method == "POST" else None)
        page.wait_for_timeout(16_000)  # three polls
        polls = sum("on_idle_poll" in b for b in seen)
        assert polls >= 2, polls
        assert sum("DatasetPageQuery" in b for b in seen) == 0
        assert sum("on_change_view" in b for b in seen) == 0


def test_a_refused_background_train_does_not_say_it_is_queued(app, fo, plugin):
    """A review: with no labels, a background Train showed the refusal and,
    under it, "queued ... waiting for a worker" for 10 minutes."""
    from playwright.sync_api import expect

    from conftest import EMB, run

    ds, url = app
    run("start_session", ds, embedding_field=EMB)
    with _page("refused-background") as (page, shot):
        _open(page, url, background=True)
        page.get_by_role("button", name="Train & Label").click()
        expect(page.get_by_text("at least one positive and one negative").first).to_be_visible()
        page.wait_for_timeout(2000)
        expect(page.get_by_text("waiting for a worker")).to_have_count(0)


def test_ticking_tiles_does_not_make_the_app_query_the_grid(app, fo, plugin):
    """Each tick wrote the panel's selection count into its state, which the
    App saves and follows with a grid query and view events: ~2 s per tick,
    and ticks landing during the re-query were at risk."""
    from playwright.sync_api import expect

    ds, url = app
    trouser_session(ds)
    with _page("tick-queries") as (page, shot):
        _open(page, url, "Iteration 0")
        page.wait_for_timeout(6000)  # (settled)
        seen = []
        page.on("request", lambda r: seen.append(r.post_data or "") if r.method == "POST" else None)
        tiles = page.locator("[data-cy=looker]")
        for i in range(3):
            tiles.nth(i).hover()
            tiles.nth(i).locator("[data-cy=looker-checkbox-]").click()
            expect(page.get_by_text("%d selected" % (i + 1))).to_be_visible()
        page.wait_for_timeout(3000)
        shot(page, "24-ticked")
        assert sum("on_change_selected" in b for b in seen) >= 1
        assert sum("DatasetPageQuery" in b for b in seen) == 0
        assert sum("on_change_view" in b for b in seen) == 0


def test_a_reset_leaves_no_view_the_plugin_set_in_the_grid(app, fo, plugin):
    """A new user: after Reset the grid kept the plugin's Select of the working
    subset's 1,000 IDs, and the next Start scored "current view - 1,000"."""
    from playwright.sync_api import expect

    from conftest import run

    ds, url = app
    trouser_session(ds)
    run("train_and_label", ds)
    with _page("reset-view") as (page, shot):
        _open(page, url, "Iteration 1")
        page.get_by_role("button", name="Show Predictions").click()
        expect(page.get_by_text("the view behind the predictions")).to_be_visible()
        sort = page.locator("input[data-cy=input-view-stage][value=SortBy]")  # (the view bar)
        expect(sort).to_have_count(1)
        page.get_by_role("button", name="Reset Session…").click()
        page.get_by_role("button", name="Execute").click()
        expect(page.get_by_role("button", name="Start Session")).to_be_visible(timeout=60_000)
        expect(sort).to_have_count(0)
        expect(page.get_by_text("120 samples")).to_be_visible()
        page.wait_for_timeout(1500)
        shot(page, "28-after-reset-view")


def test_a_queued_background_train_stays_shown_through_a_train_clicked_meanwhile(app, fo, plugin):
    """A new user queued a background train, then clicked Train & Label in the
    foreground: the "queued" line went with the foreground train's result, and
    the queued one ran later, when a worker came, as an unexplained iteration."""
    from fiftyone.operators.delegated import DelegatedOperationService
    from playwright.sync_api import expect

    from conftest import run

    ds, url = app
    trouser_session(ds)
    with _page("queued-meanwhile") as (page, shot):
        _open(page, url, background=True)
        page.get_by_role("button", name="Train & Label").click()
        deadline = time.time() + 60
        while not DelegatedOperationService().get_queued_operations(dataset_name=ds.name):
            assert time.time() < deadline, "the App did not queue the train"
            page.wait_for_timeout(500)
        expect(page.get_by_text("waiting for a worker")).to_be_visible()
        with ThreadPoolExecutor(1) as pool:  # (a train in the foreground meanwhile)
            pool.submit(run, "train_and_label", ds).result()
        expect(page.get_by_role("heading", name="Iteration 1")).to_be_visible(timeout=30_000)
        page.wait_for_timeout(3000)  # (polls)
        expect(page.get_by_text("waiting for a worker")).to_be_visible()
        shot(page, "29-queued-through-a-foreground-train")
        subprocess.run([sys.executable, "-c", "from fiftyone.operators.delegated import "
                        "DelegatedOperationService as D; D().execute_queued_operations(dataset_name=%r)"
                        % ds.name], env=dict(os.environ), check=True, timeout=300)
        expect(page.get_by_role("heading", name="Iteration 2")).to_be_visible(timeout=60_000)
        expect(page.get_by_text("waiting for a worker")).to_have_count(0)


def test_a_label_click_makes_one_grid_query(app, fo, plugin):
    """A new user: the "True" tag showed on the tile 4.7 s after Label Positive.
    Each panel-state write around the click (busy, then done) made the App save
    its spaces and query the grid, besides the label's own reload: 3 queries."""
    from playwright.sync_api import expect

    ds, url = app
    trouser_session(ds)
    with _page("label-queries") as (page, shot):
        _open(page, url, "Iteration 0")
        tiles = page.locator("[data-cy=looker]")
        t = tiles.nth(10)
        t.hover()
        t.locator("[data-cy=looker-checkbox-]").click()
        expect(page.get_by_text("1 selected")).to_be_visible()
        page.wait_for_timeout(6000)  # (settled)
        seen = []
        page.on("request", lambda r: seen.append(r.post_data or "") if r.method == "POST" else None)
        page.get_by_role("button", name="Label Positive").click()
        expect(page.get_by_text("4 positive")).to_be_visible()
        expect(tiles.nth(10).locator("[data-cy=tag-fewshot_positive]")).to_be_visible()
        page.wait_for_timeout(4000)
        assert sum("DatasetPageQuery" in b for b in seen) == 1


def test_show_predictions_makes_one_grid_query(app, fo, plugin):
    """A review: Show Predictions made 4 grid queries, one per panel-state write
    around it ("Running ...", done, the scope's new count) besides the view's."""
    from playwright.sync_api import expect

    from conftest import run

    ds, url = app
    trouser_session(ds)
    run("train_and_label", ds)
    with _page("view-queries") as (page, shot):
        _open(page, url, "Iteration 1")
        page.wait_for_timeout(6000)  # (settled)
        seen = []
        page.on("request", lambda r: seen.append(r.post_data or "") if r.method == "POST" else None)
        page.get_by_role("button", name="Show Predictions").click()
        expect(page.get_by_text("the view behind the predictions")).to_be_visible(timeout=30_000)
        page.wait_for_timeout(7000)  # (an idle poll too)
        assert sum("DatasetPageQuery" in b for b in seen) == 1
