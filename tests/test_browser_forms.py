"""Operator forms in the real App (Debian chromium via Playwright): the Train &
Label form renders from the operator browser, a bad setting is shown on its
own input, and the form runs the train."""

import os

import pytest

from test_browser import CHROMIUM, _page, app, trouser_session  # noqa: F401  (app: the fixture)

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian chromium")


def _open_operator(page, label):
    """Opens an operator's form from the App's operator browser (the ` key)."""
    page.locator("body").click(position={"x": 5, "y": 500})
    page.keyboard.press("`")
    page.keyboard.type(label)
    page.get_by_text(label, exact=True).last.click()


def _input(page, label_start):
    """The text input that follows the label starting with ``label_start``."""
    return page.locator("xpath=//*[starts-with(normalize-space(text()), \"%s\")]/following::input[1]" % label_start)


def test_train_and_label_from_the_operator_browser(app, fo, plugin):  # noqa: F811
    from playwright.sync_api import expect

    ds, url = app
    trouser_session(ds)
    with _page("failure-form") as (page, shot):
        page.goto(url)
        page.locator("[data-cy=looker]").first.wait_for(timeout=60_000)
        _open_operator(page, "Few-shot: train & label")
        expect(page.get_by_text("Pool neighbors' weight", exact=False)).to_be_visible()  # (the form rendered)
        temperature = _input(page, "Temperature (only without calibration)")
        temperature.fill("0")
        expect(page.get_by_text("temperature must be > 0").first).to_be_visible()
        shot(page, "15-form-input-error")
        temperature.fill("1")
        weight = _input(page, "Pool neighbors' weight")
        weight.fill("2")
        expect(page.get_by_text("neighbor_weight must be auto or a number from 0 to 1").first).to_be_visible()
        page.wait_for_timeout(3000)
        weight.scroll_into_view_if_needed()
        shot(page, "16-form-setting-error")
        _input(page, "k for precision@k").scroll_into_view_if_needed()
        shot(page, "16b-form-bottom")
        weight.fill("0.3")
        expect(page.get_by_text("neighbor_weight must be auto")).to_have_count(0)
        page.get_by_role("button", name="Execute").click()
        deadline = 120
        while deadline and not plugin.operators.state.SessionState(ds).config.get("iteration"):
            page.wait_for_timeout(1000)
            deadline -= 1
        shot(page, "17-form-executed")
    last = plugin.operators.workflow.get_session(ds)["last_train"]
    assert last["settings"]["neighbor_weight"] == 0.3 and last["settings"]["temperature"] == 1.0, last["settings"]
    assert ds.exists("fewshot_prediction").count() == len(ds)


FORMS = ["Few-shot: start session", "Few-shot: label positive", "Few-shot: label negative",
         "Few-shot: clear labels of", "Few-shot: train & label", "Few-shot: reset session",
         "Few-shot: show predictions", "Few-shot: suggest samples to label next", "Few-shot: get session",
         "Few-shot: show possibly mislabeled", "Few-shot: show working subset"]


def test_every_operator_form_renders(app, fo, plugin):  # noqa: F811
    """Each of the plugin's operators opens from the operator browser without a
    React error (a one-of typed input once broke the Train & Label form)."""
    from conftest import EMB, run
    from playwright.sync_api import expect

    ds, url = app
    trouser_session(ds)
    run("train_and_label", ds)
    with _page("failure-forms") as (page, shot):
        page.goto(url)
        page.locator("[data-cy=looker]").first.wait_for(timeout=60_000)
        opened = []
        for label in FORMS:
            _open_operator(page, label)
            page.wait_for_timeout(2000)  # (the form resolves its inputs; one without inputs just runs)
            assert page.get_by_text("Minified React error").count() == 0, label
            if label == "Few-shot: get session":  # runs at once and shows what the session is
                expect(page.get_by_text("3 positive, 3 negative labels", exact=False)).to_be_visible()
                shot(page, "19-get-session-output")
                page.keyboard.press("Escape")
                expect(page.get_by_text("3 positive, 3 negative labels", exact=False)).to_have_count(0)
            cancel = page.get_by_role("button", name="Cancel")
            if cancel.count():
                opened.append(label)
                if label == "Few-shot: start session":  # (starting again reconfigures: it says so)
                    expect(page.get_by_text("A session is active on this dataset (iteration 1;",
                                            exact=False)).to_be_visible()
                    expect(_input(page, "Embedding field")).to_have_value(EMB)  # (the session's, filled in)
                    shot(page, "18-start-session-form")
                cancel.click()
                expect(cancel).to_have_count(0)
        assert "Few-shot: train & label" in opened and "Few-shot: start session" in opened, opened
