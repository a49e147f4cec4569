"""The whole loop by clicking, in a real browser (Debian chromium via Playwright)
against the App served on 127.0.0.1 with the plugin."""

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import ARTIFACTS, URI

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian chromium")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def app(base_dataset):
    """A persistent copy of the base dataset served by the App in a subprocess."""
    import fiftyone as fo

    name = "fewshot-browser-%d" % os.getpid()
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    ds = base_dataset.clone(name, persistent=True)
    port = _free_port()
    here = os.path.dirname(os.path.abspath(__file__))
    os.makedirs(ARTIFACTS, exist_ok=True)
    log = open(os.path.join(ARTIFACTS, "app-server.log"), "w")
    proc = subprocess.Popen(
        [sys.executable, os.path.join(here, "app_server.py"), name, str(port)],
        env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT,
    )
    url = "http://127.0.0.1:%d/datasets/%s" % (port, name)
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=2)
            break
        except Exception:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                raise RuntimeError("the App server did not start")
            time.sleep(1)
    try:
        yield ds, url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        fo.delete_dataset(name)


def _open_panel(page, start=None):
    """Opens the Few-Shot panel; returns ``start`` (a locator it shows, by
    default the Start Session button)."""
    for t in ("Dismiss", "Disable"):  # the App's popovers
        if page.get_by_text(t, exact=True).count():
            page.get_by_text(t, exact=True).first.click()
    start = start or page.get_by_role("button", name="Start Session")
    for attempt in range(3):  # on a loaded machine the + menu can open before the panels are listed
        page.locator("[data-cy=new-panel-btn]").first.click()
        page.get_by_text("Few-Shot", exact=True).last.click()
        try:
            start.wait_for(timeout=30_000)
            return start
        except Exception:
            if attempt == 2:
                raise
            page.keyboard.press("Escape")


def _open_at(page, url, heading="Iteration 0"):
    """The App at ``url``, the panel open on the session (``heading`` shown)."""
    page.goto(url)
    page.locator("[data-cy=looker]").first.wait_for(timeout=60_000)
    return _open_panel(page, page.get_by_role("heading", name=heading))


def _click_bar(page, p, then):
    """Clicks the histogram's bar at P(positive) ``p`` (Plotly listens on its drag
    layer, and clicks what it hovers) until ``then`` (a locator) shows."""
    page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
    area = page.locator(".js-plotly-plot .nsewdrag").first.bounding_box()
    x, y = area["x"] + p * area["width"], area["y"] + area["height"] - 3
    for attempt in range(4):
        page.mouse.move(x - 3, y)
        page.mouse.move(x, y)
        page.wait_for_timeout(700)
        page.mouse.click(x, y)
        try:
            then.wait_for(timeout=8_000)
            return
        except Exception:
            if attempt == 3:
                raise


def trouser_session(ds, npos=3, nneg=3):
    """A session started from Python with ``npos`` Trousers labeled positive
    and ``nneg`` other samples negative (the browser tests' usual start)."""
    from conftest import EMB, class_ids, run

    run("start_session", ds, embedding_field=EMB)
    run("label_positive", ds, selected=class_ids(ds, "Trouser", npos))
    run("label_negative", ds, selected=class_ids(ds, "Trouser", nneg, exclude=True))


def _combo(page, label):
    return page.locator("xpath=//*[text()='%s']/following::*[@role='combobox'][1]" % label)


def _choose(page, label, option, tries=3):
    """Picks ``option`` in the dropdown under ``label``. Choosing a readout
    field reloads the App's page (the panel writes the field's classes to its
    state; see the README), and under load that reload landed while the next
    dropdown's menu was open: its option detached from the page and the click
    timed out (a full-suite run with benchmarks alongside). The menu is then
    opened again."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for i in range(tries):
        _combo(page, label).click()
        try:
            page.get_by_role("option", name=option, exact=True).click(timeout=10_000)
            return
        except PlaywrightTimeout:
            if i == tries - 1:
                raise
            page.keyboard.press("Escape")


@contextlib.contextmanager
def _page(failure_name):
    """A headless Chromium page with the tests' timeouts, and a screenshot
    helper; on a failure the page is saved as ``browser-<failure_name>.png``."""
    from playwright.sync_api import expect, sync_playwright

    os.makedirs(ARTIFACTS, exist_ok=True)
    shot = lambda page, name: page.screenshot(path=os.path.join(ARTIFACTS, "browser-%s.png" % name))  # noqa: E731
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(30_000)
        expect.set_options(timeout=30_000)
        try:
            yield page, shot
        except Exception:
            shot(page, failure_name)
            raise
        finally:
            browser.close()


def test_whole_loop_by_clicking(app, fo, plugin):
    from playwright.sync_api import expect

    ds, url = app
    with _page("failure") as (page, shot):
        # no vectors yet: starting computes them, and the panel shows the progress
        ds.set_values("efficientnet_lite0_imagenet_embeddings", [None] * len(ds))
        page.goto(url)
        page.locator("[data-cy=looker]").first.wait_for(timeout=60_000)
        start = _open_panel(page)
        page.wait_for_timeout(1000)
        start.click()
        expect(page.get_by_text("Computed").first).to_be_visible(timeout=90_000)
        expect(page.get_by_text("left").first).to_be_visible()  # the ETA
        shot(page, "1-progress")
        expect(page.get_by_role("heading", name="Iteration 0")).to_be_visible(timeout=120_000)
        expect(page.get_by_text("whole dataset - 120")).to_be_visible()

        tiles = page.locator("[data-cy=looker]")

        def pick(cls, n, other=False):
            out = []
            for i in range(tiles.count()):
                t = tiles.nth(i)
                if (t.locator("[data-cy=tag-ground_truth]").inner_text() == cls) != other:
                    out.append(t)
                if len(out) == n:
                    return out
            raise AssertionError("not enough %s tiles" % cls)

        def toggle(ts):
            for t in ts:
                t.hover()
                t.locator("[data-cy=looker-checkbox-]").click()

        page.wait_for_timeout(2000)
        pos = pick("Trouser", 3)
        toggle(pos)
        expect(page.get_by_text("3 selected")).to_be_visible()
        page.get_by_role("button", name="Label Positive").click()
        expect(page.get_by_text("3 positive")).to_be_visible()
        expect(page.get_by_text("0 selected")).to_be_visible()  # the selection is cleared
        # the label shows on the tiles at once (the label fields are active)
        expect(pos[0].get_by_text("True")).to_be_visible()
        shot(page, "2-labeled")
        neg = pick("Trouser", 3, other=True)
        toggle(neg)
        page.get_by_role("button", name="Label Negative").click()
        expect(page.get_by_text("3 negative")).to_be_visible()

        # nothing to show or suggest before a train (a click only answered with an error)
        for name in ("Show Predictions", "Suggest Samples"):
            expect(page.get_by_role("button", name=name)).to_be_disabled()
        page.get_by_role("button", name="Train & Label").click()
        expect(page.get_by_role("heading", name="Iteration 1")).to_be_visible(timeout=90_000)
        expect(page.get_by_text("Last train")).to_be_visible()
        for name in ("Show Predictions", "Suggest Samples"):
            expect(page.get_by_role("button", name=name)).to_be_enabled()
        expect(page.locator(".js-plotly-plot").first).to_be_visible()
        expect(page.get_by_text("rough with fewer than 10 labels per side")).to_be_visible()  # (3 + 3 labels)
        shot(page, "3-after-train")

        # the dataset holds what the panel shows
        ds.reload()
        gt = dict(zip(*ds.values(["id", "ground_truth.label"])))
        pos_ids = ds.match(fo.ViewField("fewshot_positive") == True).values("id")
        neg_ids = ds.match(fo.ViewField("fewshot_negative") == True).values("id")
        assert len(pos_ids) == 3 and all(gt[i] == "Trouser" for i in pos_ids)
        assert len(neg_ids) == 3 and all(gt[i] != "Trouser" for i in neg_ids)
        assert ds.exists("fewshot_prediction").count() == len(ds)
        # (execute_operator cannot run inside Playwright's event loop)
        sess = plugin.operators.workflow.get_session(ds)
        assert sess["iteration"] == 1 and sess["num_positive"] == 3 and sess["num_negative"] == 3
        n_pred_pos = sess["last_train"]["num_predicted_positive"]
        assert ds.match(fo.ViewField("fewshot_prediction.label") == "positive").count() == n_pred_pos + 3
        expect(page.get_by_text("%d predicted positive" % n_pred_pos)).to_be_visible()

        # a run killed mid write-back (its record says running, its lease is
        # gone: what a SIGKILL leaves) shows as interrupted, in the panel too
        plugin.operators.state.SessionState(ds).update(
            lambda c: dict(c, run=dict(c["run"], status="running", lease="gone")))
        page.reload()
        expect(page.get_by_text("Predictions are not all current")).to_be_visible(timeout=60_000)
        expect(page.get_by_text("Iteration 1 interrupted after 120 of 120")).to_be_visible()
        shot(page, "4-interrupted")

        # review: unlabeled samples first, most likely positive first
        page.get_by_role("button", name="Show Predictions").click()
        expect(tiles.first.locator("[data-cy=tag-ground_truth]")).to_have_text("Trouser")
        expect(page.get_by_text("the view behind the predictions")).to_be_visible()

        # the histogram (over the predictions view the plugin set): click the bar at P 0.8-0.85
        # -> the grid shows those samples only, and Train still scores the whole dataset
        _click_bar(page, 0.825, page.get_by_text("the view behind the histogram bar"))
        expect(page.get_by_text("120 samples", exact=True)).to_have_count(0)
        assert tiles.count() < 20
        shot(page, "5-histogram-bar")

        # the readout from dropdowns; Train scores the base view, not the grid's
        _choose(page, "Ground truth (optional quality readout)", "ground_truth")
        _choose(page, "Positive class", "Trouser")
        page.wait_for_timeout(1000)
        page.get_by_role("button", name="Train & Label").click()
        expect(page.get_by_role("heading", name="Iteration 2")).to_be_visible(timeout=90_000)
        expect(page.get_by_text("Quality vs")).to_be_visible()
        expect(page.get_by_text("Predictions are not all current")).to_have_count(0)
        last = plugin.operators.workflow.get_session(ds)["last_train"]
        assert last["quality"]["positive_class"] == "Trouser" and last["num_in_scope"] == len(ds)
        expect(page.get_by_text("%.3f" % last["quality"]["average_precision"]).first).to_be_visible()
        shot(page, "6-readout")

        # suggestions -> label one -> Train still scores the whole dataset
        page.get_by_role("button", name="Suggest Samples").click()
        expect(tiles).to_have_count(20, timeout=30_000)
        expect(page.get_by_text("likely positive")).to_be_visible()
        expect(page.get_by_text("the view behind the suggestions")).to_be_visible()
        toggle([tiles.first])
        page.get_by_role("button", name="Label Positive").click()
        expect(page.get_by_text("4 positive")).to_be_visible()
        page.get_by_role("button", name="Train & Label").click()
        expect(page.get_by_role("heading", name="Iteration 3")).to_be_visible(timeout=90_000)
        assert plugin.operators.workflow.get_session(ds)["last_train"]["num_in_scope"] == len(ds)
        shot(page, "7-suggest-label-train")

        # the panel survives a reload (state lives in the execution store), the
        # quality readout's choice too (a new user's next train had lost it)
        # (the App reports each input it resets as a change: two reloads, each
        # left time for that report, and the dropdowns still show the choice)
        for _ in range(2):
            page.reload()
            expect(page.get_by_role("heading", name="Iteration 3")).to_be_visible(timeout=60_000)
            expect(page.get_by_text("4 positive")).to_be_visible()
            page.wait_for_timeout(3000)
            expect(_combo(page, "Ground truth (optional quality readout)")).to_have_text("ground_truth")
            expect(_combo(page, "Positive class")).to_have_text("Trouser")
        page.get_by_role("button", name="Train & Label").click()
        expect(page.get_by_role("heading", name="Iteration 4")).to_be_visible(timeout=90_000)
        last = plugin.operators.workflow.get_session(ds)["last_train"]
        assert (last.get("quality") or {}).get("positive_class") == "Trouser", last.get("quality")

        # clearing the readout is a choice too: it stays cleared over the App's
        # re-renders and a reload, and the next train measures nothing (a
        # review's repro: the panel wrote the old choice back)
        _combo(page, "Ground truth (optional quality readout)").click()
        page.get_by_role("option").first.click()
        expect(_combo(page, "Positive class")).to_have_count(0)
        page.wait_for_timeout(3000)
        page.reload()
        expect(page.get_by_role("heading", name="Iteration 4")).to_be_visible(timeout=60_000)
        page.wait_for_timeout(3000)
        expect(_combo(page, "Ground truth (optional quality readout)")).not_to_have_text("ground_truth")
        expect(_combo(page, "Positive class")).to_have_count(0)
        page.get_by_role("button", name="Train & Label").click()
        expect(page.get_by_role("heading", name="Iteration 5")).to_be_visible(timeout=90_000)
        assert plugin.operators.workflow.get_session(ds)["last_train"].get("quality") is None

        # an error shows the operator's message, not a traceback
        page.get_by_role("button", name="Label Positive").click()
        expect(page.get_by_text("No samples selected")).to_be_visible()

        # reset asks first, lists what it deletes, and keeps the labels as tags
        page.get_by_role("button", name="Reset Session…").click()
        expect(page.get_by_text("Keep my labels as sample tags")).to_be_visible()
        expect(page.get_by_text("fewshot_positive").first).to_be_visible()
        shot(page, "8-reset-form")
        page.get_by_role("button", name="Execute").click()
        expect(page.get_by_role("button", name="Start Session")).to_be_visible(timeout=60_000)
        shot(page, "9-after-reset")
        ds.reload()
        assert not ds.has_field("fewshot_prediction") and not ds.has_field("fewshot_positive")
        assert ds.exists("efficientnet_lite0_imagenet_embeddings").count() == len(ds)
        assert ds.count_sample_tags() == {"fewshot:positive": 4, "fewshot:negative": 3}


def test_a_possibly_mislabeled_label_is_shown_and_reviewable(app, fo, plugin):
    """A sandal labeled positive among trousers: the panel warns and its button
    shows just that sample in the grid."""
    import re

    from conftest import EMB, class_ids, run
    from playwright.sync_api import expect

    ds, url = app
    run("start_session", ds, embedding_field=EMB)
    wrong = class_ids(ds, "Sandal", 1)[0]
    run("label_positive", ds, selected=class_ids(ds, "Trouser", 6) + [wrong])
    run("label_negative", ds, selected=[i for i in class_ids(ds, "Trouser", exclude=True) if i != wrong][:8])
    assert run("train_and_label", ds)["possibly_mislabeled"]["positive"] == [wrong]
    with _page("failure-mislabeled") as (page, shot):
        page.goto(url)
        page.locator("[data-cy=looker]").first.wait_for(timeout=60_000)
        _open_panel(page, page.get_by_role("heading", name="Iteration 1"))
        expect(page.get_by_text("1 label(s) look wrong")).to_be_visible()
        shot(page, "10-possibly-mislabeled")
        page.get_by_role("button", name="Show Possibly Mislabeled").click()
        expect(page.get_by_text(re.compile(r"^1 samples?$"))).to_be_visible(timeout=60_000)
        shot(page, "11-possibly-mislabeled-view")


def test_a_train_run_by_a_worker_shows_in_the_grid_without_a_reload(app, fo, plugin):
    """Train & Label ticked "in the background": the App queues it, a worker
    (here this process, not the App's) runs it, and the open panel notices and
    reloads the grid: the tiles show the predictions (a user had to reload)."""
    from fiftyone.operators.delegated import DelegatedOperationService
    from playwright.sync_api import expect

    ds, url = app
    trouser_session(ds)
    service = DelegatedOperationService()
    with _page("failure-delegated") as (page, shot):
        page.goto(url)
        tiles = page.locator("[data-cy=looker]")
        tiles.first.wait_for(timeout=60_000)
        _open_panel(page, page.get_by_role("heading", name="Iteration 0"))
        page.get_by_text("Advanced settings", exact=True).click()
        power = page.get_by_text("Power transform", exact=True).locator("xpath=following::input[1]")
        expect(power).to_have_value("auto")  # the session's setting (the default)
        power.fill("1")  # embeddings as they are (README: for raw pixels)
        page.get_by_text("Pool neighbors' weight", exact=True).locator("xpath=following::input[1]").fill("0.3")
        page.get_by_text("Run Train & Label in the background (delegated operation)").click()
        page.get_by_text("Advanced settings", exact=True).click()  # folded: what was typed still applies
        expect(power).to_have_count(0)
        page.wait_for_timeout(1000)
        page.get_by_role("button", name="Train & Label").click()
        deadline = time.time() + 60
        while not service.get_queued_operations(dataset_name=ds.name):
            assert time.time() < deadline, "the App did not queue the train"
            time.sleep(0.5)
        expect(tiles.first.locator("[data-cy=tag-fewshot_prediction]")).to_have_count(0)
        # (a new user saw nothing at all while no worker ran it)
        expect(page.get_by_text("waiting for a worker")).to_be_visible()
        shot(page, "12a-delegated-train-queued")
        # the worker: another process (operators cannot run inside Playwright's event loop)
        subprocess.run([sys.executable, "-c", "from fiftyone.operators.delegated import "
                        "DelegatedOperationService as D; D().execute_queued_operations(dataset_name=%r)"
                        % ds.name], env=dict(os.environ), check=True, timeout=300)
        assert plugin.operators.state.SessionState(ds).config["iteration"] == 1
        last = plugin.operators.workflow.get_session(ds)["last_train"]
        assert last["settings"]["power"] == 1.0 and last["scorer"]["power"] == 1.0  # what the panel sent
        assert last["settings"]["neighbor_weight"] == 0.3, last["settings"]  # (from the second row)
        expect(page.get_by_role("heading", name="Iteration 1")).to_be_visible(timeout=60_000)
        expect(tiles.first.locator("[data-cy=tag-fewshot_prediction]")).to_be_visible(timeout=30_000)
        shot(page, "12-delegated-train-shown")
        # a reload: the settings shown are the session's, not 1 / auto (the App
        # resets a panel's inputs to their defaults then; a new user's were undone)
        page.reload()
        expect(page.get_by_role("heading", name="Iteration 1")).to_be_visible(timeout=60_000)
        if not page.get_by_text("Power transform", exact=True).count():
            page.get_by_text("Advanced settings", exact=True).click()
        expect(power).to_have_value("1.0")
        expect(page.get_by_text("Pool neighbors' weight", exact=True).locator("xpath=following::input[1]")) \
            .to_have_value("0.3")
        shot(page, "12b-settings-after-reload")
        # "in the background" is kept over the reload, and shown (a new user's showed unticked
        # while the next Train was queued all the same); unticked, Train runs here
        background = page.get_by_role("checkbox", name="Run Train & Label in the background (delegated operation)")
        expect(background).to_be_checked()
        background.uncheck()
        page.wait_for_timeout(1000)
        # closed, the settings are the session's, whoever set them last: a
        # Python train's beta 2 is not undone by the panel's next train
        page.get_by_text("Advanced settings", exact=True).click()
        expect(power).to_have_count(0)
        code = ("import fiftyone as fo, fiftyone.operators as foo; foo.execute_operator(%r, ctx=dict("
                "dataset=fo.load_dataset(%r), params=dict(beta=2.0)))" % (URI + "train_and_label", ds.name))
        subprocess.run([sys.executable, "-c", code], env=dict(os.environ), check=True, timeout=300)
        page.get_by_role("button", name="Train & Label").click()
        expect(page.get_by_role("heading", name="Iteration 3")).to_be_visible(timeout=90_000)
        last = plugin.operators.workflow.get_session(ds)["last_train"]
        assert last["iteration"] == 3 and last["settings"]["beta"] == 2.0, last["settings"]
        assert last["settings"]["power"] == 1.0 and last["settings"]["neighbor_weight"] == 0.3
        # unfolded again, the inputs show the session's settings, the Python train's beta 2
        # (the App keeps an input's old value over a new default: a review saw beta 1 stay)
        page.get_by_text("Advanced settings", exact=True).click()
        expect(page.get_by_text("beta (positives)", exact=True).locator("xpath=following::input[1]")) \
            .to_have_value("2")
        shot(page, "12c-settings-after-a-python-train")


def test_the_panel_says_how_much_of_the_term_is_pool_rows(app, fo, plugin):
    """Once suggested negatives are labeled, the pool rows are less than half of
    the nearest-labels term's negative side, and the panel's scorer line says so."""
    from conftest import run
    from playwright.sync_api import expect

    ds, url = app
    trouser_session(ds, 6, 20)
    run("train_and_label", ds)
    ids = run("suggest_samples", ds, num_samples=10)["ids"]
    truth = dict(zip(*ds.select(ids).values(["id", "ground_truth.label"])))
    for name, keep in (("label_positive", True), ("label_negative", False)):
        chosen = [i for i in ids if (truth[i] == "Trouser") == keep]
        if chosen:
            run(name, ds, selected=chosen)
    sc = run("train_and_label", ds)["scorer"]
    share = sc["kernel_pool_share"]
    assert 0 < share < 0.5 and sc["neighbor_weight"] == 0.5, sc
    with _page("failure-pool-share") as (page, shot):
        page.goto(url)
        page.locator("[data-cy=looker]").first.wait_for(timeout=60_000)
        _open_panel(page, page.get_by_role("heading", name="Iteration 2"))
        expect(page.get_by_text("(and pool rows: %.2g of its negative side)" % share, exact=False)).to_be_visible()
        # the pool neighbors' smoothing, and its setting under Advanced settings (the session's: auto)
        neighbors = "pool neighbors 0.5 (top %.0f%%)" % (100 * sc["neighbor_share"])
        expect(page.get_by_text(neighbors, exact=False)).to_be_visible()
        shot(page, "13-pool-rows-share")
        page.get_by_text("Advanced settings", exact=True).click()
        weight = page.get_by_text("Pool neighbors' weight", exact=True).locator("xpath=following::input[1]")
        expect(weight).to_have_value("auto")
        weight.scroll_into_view_if_needed()
        shot(page, "14-pool-neighbors-setting")
        # a bad value: the error names the input as the panel labels it (it said "neighbor_weight")
        weight.fill("5")
        page.get_by_role("button", name="Train & Label").click()
        expect(page.get_by_text("\"Pool neighbors' weight\" must be auto or a number from 0 to 1")).to_be_visible()
        page.wait_for_timeout(3000)  # (renders of events sent before the click come back meanwhile)
        expect(page.get_by_text("\"Pool neighbors' weight\" must be auto or a number from 0 to 1")).to_be_visible()
        shot(page, "14b-panel-setting-error")
