"""The grid shows a label in the plugin's colors (positive green, negative
red) also when the session was started from Python while the App was open:
the App keeps the colors it loaded, so a positive label's chip was orange and
a negative's some other color, both reading "True"."""

import os
import re

import pytest

from test_browser import CHROMIUM, _open_panel, _page, app  # noqa: F401  (app: the fixture)
from test_browser_filters import _py

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian chromium")


def _rgb(hex_color):
    h = hex_color.lstrip("#")
    return "rgb(%d, %d, %d)" % tuple(int(h[i:i + 2], 16) for i in (0, 2, 4))


def _chip_color(page, path):
    return page.locator("[data-cy=tag-%s]" % path).first.evaluate("e => getComputedStyle(e).backgroundColor")


def _chip_colors(page, path):
    """The distinct colors of the chips of a field on the tiles shown."""
    page.locator("[data-cy=tag-%s]" % path).first.wait_for()
    return set(page.locator("[data-cy=tag-%s]" % path).evaluate_all(
        "es => es.map(e => getComputedStyle(e).backgroundColor)"))


def _label(page, tile, button, count_text):
    from playwright.sync_api import expect

    tile.hover()
    tile.locator("[data-cy=looker-checkbox-]").click()
    page.get_by_role("button", name=button).click()
    expect(page.get_by_text(count_text)).to_be_visible()


def test_labels_from_a_python_start_show_in_the_plugins_colors(app, fo):
    from playwright.sync_api import expect

    from conftest import EMB, run
    from few_shot_learning.operators.appconfig import GREEN, RED

    ds, url = app
    if run("get_session", ds).get("active"):
        run("reset_session", ds)  # (the module's dataset: no session, none of our colors)
    with _page("colors-python-start") as (page, shot):
        page.goto(url)
        page.locator("[data-cy=looker]").first.wait_for(timeout=60_000)
        _open_panel(page)
        assert len(_chip_colors(page, "ground_truth")) == 1  # (the App colors by field)
        _py("start_session", ds, embedding_field=EMB)
        expect(page.get_by_role("heading", name=re.compile("Iteration 0"))).to_be_visible(timeout=30_000)
        page.locator("[data-cy=sidebar-field-arrow-enabled-fewshot_positive]").first.wait_for()
        page.wait_for_timeout(2000)
        tiles = page.locator("[data-cy=looker]")
        _label(page, tiles.nth(1), "Label Positive", "1 positive")
        _label(page, tiles.nth(2), "Label Negative", "1 negative")
        expect(page.locator("[data-cy=tag-fewshot_positive]")).to_have_count(1)
        expect(page.locator("[data-cy=tag-fewshot_negative]")).to_have_count(1)
        page.wait_for_timeout(1000)
        shot(page, "35-python-start-colors")
        assert _chip_color(page, "fewshot_positive") == _rgb(GREEN)
        assert _chip_color(page, "fewshot_negative") == _rgb(RED)
        assert len(_chip_colors(page, "ground_truth")) > 1  # (by value: a color per class)
        # a reset gives the App its colors back (the user's labels stayed colored by class)
        page.get_by_role("button", name="Reset Session…").click()
        page.get_by_role("button", name="Execute").click()
        expect(page.get_by_role("button", name="Start Session")).to_be_visible(timeout=60_000)
        page.wait_for_timeout(2000)
        shot(page, "40-colors-after-reset")
        assert len(_chip_colors(page, "ground_truth")) == 1


def test_labels_given_from_python_show_on_the_open_apps_tiles(app, fo):
    """Labels given from Python (or another tab) while the App is open show on
    their tiles at the panel's next poll, and the predictions they removed go:
    a new user saw the panel count them while the tiles kept "positive" /
    "negative" predictions that no longer existed, until the next train."""
    from playwright.sync_api import expect

    from conftest import class_ids
    from test_browser import trouser_session

    ds, url = app
    trouser_session(ds)  # (3 + 3 labels)
    _py("train_and_label", ds)
    more = class_ids(ds, "Trouser")[3:5]
    with _page("python-labels") as (page, shot):
        page.goto(url)
        page.locator("[data-cy=looker]").first.wait_for(timeout=60_000)
        _open_panel(page, page.get_by_role("heading", name=re.compile("Iteration")))
        page.wait_for_timeout(2000)
        expect(page.locator("[data-cy=tag-fewshot_positive]")).to_have_count(3)
        _py("label_positive", ds, selected=more)
        _py("label_negative", ds, selected=class_ids(ds, "Bag", 1))
        expect(page.get_by_text("5 positive")).to_be_visible(timeout=15_000)
        expect(page.locator("[data-cy=tag-fewshot_positive]")).to_have_count(5, timeout=15_000)
        expect(page.locator("[data-cy=tag-fewshot_negative]")).to_have_count(4)
        shot(page, "38-python-labels-shown")
