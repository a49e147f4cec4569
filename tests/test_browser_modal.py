"""The panel in the App's sample modal: the open sample is what the label
buttons act on, and what the modal shows of it follows the click."""

import os

import pytest

from test_browser import CHROMIUM, _open_panel, _page, app, trouser_session  # noqa: F401  (app: the fixture)

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian chromium")


def _unlabeled_trouser(page, tries=10):
    """The index of the first unlabeled Trouser tile (the grid may still be
    drawing its tiles' tags on a loaded machine: looked for again)."""
    tiles = page.locator("[data-cy=looker]")
    for _ in range(tries):
        for i in range(tiles.count()):
            t = tiles.nth(i)
            tag = t.locator("[data-cy=tag-ground_truth]")
            if (tag.count() and tag.first.inner_text() == "Trouser"
                    and not t.locator("[data-cy=tag-fewshot_positive]").count()):
                return i
        page.wait_for_timeout(1500)
    raise AssertionError("no unlabeled Trouser tile on the first page")


def _open(page, i):
    box = page.locator("[data-cy=looker]").nth(i).bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.5)
    page.locator("[data-cy=modal]").wait_for()


def test_labeling_the_open_sample_says_what_it_holds_and_when_the_modal_shows_it(app, fo, plugin):
    """A new user labeled a Trouser positive in the modal: the panel said
    "10 positive", but the modal kept its old "negative" prediction on the
    image and "fewshot_positive: None" in its sidebar, with no word. FiftyOne
    1.22's modal keeps a sample as the page loaded it (reload_samples,
    reload_dataset, close + open from the operator or the panel's callback:
    none refreshed it reliably), so the panel says what the sample holds now
    and where the label shows."""
    from playwright.sync_api import expect

    from conftest import run

    ds, url = app
    trouser_session(ds)
    run("train_and_label", ds)
    first = ds.match(fo.ViewField("fewshot_positive") == True).values("id")  # noqa: E712
    with _page("modal-label") as (page, shot):
        page.goto(url)
        page.locator("[data-cy=looker]").first.wait_for(timeout=60_000)
        _open_panel(page, page.get_by_role("heading", name="Iteration 1"))
        page.wait_for_timeout(2000)
        index = _unlabeled_trouser(page)
        ticked = [i for i in range(6) if i != index][:2]  # (a new user: ticked tiles, then opened another)
        for i in ticked:
            page.locator("[data-cy=looker]").nth(i).hover()
            page.locator("[data-cy=looker]").nth(i).locator("[data-cy=looker-checkbox-]").click()
        expect(page.get_by_text("2 selected")).to_be_visible()
        before = dict(zip(*ds.values(["id", "fewshot_positive"])))
        _open(page, index)
        modal = page.locator("[data-cy=modal]")
        page.wait_for_timeout(2000)
        tab = modal.get_by_text("Few-Shot", exact=True)
        if not tab.count():
            modal.locator("[data-cy=new-panel-btn]").first.click()
            page.get_by_text("Few-Shot", exact=True).last.click()
        else:
            tab.first.click()
        expect(modal.get_by_text("the open sample (not labeled)")).to_be_visible()
        modal.get_by_role("button", name="Label Positive").click()
        expect(modal.get_by_text("4 positive")).to_be_visible()
        ds.reload()
        changed = [i for i, v in zip(*ds.values(["id", "fewshot_positive"])) if v != before[i]]
        assert len(changed) == 1  # the open sample, not the 2 ticked tiles
        # the panel says what the open sample holds now, and that the Sample tab lags
        expect(modal.get_by_text("the open sample (labeled positive)")).to_be_visible()
        expect(modal.get_by_text("keep this sample as the page first loaded it", exact=False)).to_be_visible()
        shot(page, "26-modal-labeled-panel")
        page.mouse.click(8, 500)  # (outside the modal's content: closes it)
        modal.wait_for(state="detached")
        page.reload()
        page.locator("[data-cy=looker]").first.wait_for(timeout=60_000)
        page.wait_for_timeout(2000)
        _open(page, index)  # (the grid's order is the dataset's)
        labeled = ds.match(fo.ViewField("fewshot_positive") == True).values("id")  # noqa: E712
        expect(modal.get_by_text(sorted(set(labeled) - set(first))[0])).to_be_visible()
        side = modal.locator("xpath=//*[text()='fewshot_positive']/ancestor::*"
                             "[contains(., 'None') or contains(., 'True')][1]").last
        expect(side).to_contain_text("True")  # (what the note promises, after a reload)
        page.wait_for_timeout(1500)
        shot(page, "27-modal-reopened")
