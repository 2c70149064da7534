"""The dashboard in a real browser: `streamlit run` + Playwright + Debian's chromium.

A clinician's path through the page: fill in the patient form, upload a photo, wait for the
overlay and the score table, download the CSV and check it, save the visit and find it in the
History tab; a full-page screenshot is kept. Every wait is on an element, never a sleep.

DERMSEV_SCREENSHOT=docs/screenshot.png also writes the README's screenshot (1400 px wide,
quantized PNG); run it with the demo model in model/assets/demo:
    DERMSEV_SCREENSHOT=docs/screenshot.png .venv/bin/python -m pytest tests/e2e -q
"""

from __future__ import annotations

import csv
import io
import os
import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

SIGNS = ["erythema", "papulation", "excoriation", "lichenification"]
LABELS = {"none", "mild", "moderate", "severe"}
PSEUDONYM = "PT-E2E-0042"
VISIT_DATE = "2026-03-14"
LOAD = 120_000  # ms: first page load on 2 busy cores (torch import, model load, plotly.js)
SCORE = 180_000  # ms: scoring with test-time augmentation, then plotly's first render


def choose(page: Page, key: str, option: str) -> None:
    """Pick `option` in the selectbox with widget key `key`."""
    combo = page.locator(f".st-key-{key} input[role=combobox]")
    combo.click()
    page.get_by_role("option", name=option, exact=True).click()
    expect(combo).to_have_value(option)


def fill_patient_form(page: Page, photo: Path) -> None:
    page.locator(".st-key-pseudonym input").fill(PSEUDONYM)
    page.locator(".st-key-age input").fill("34")
    choose(page, "sex", "female")
    date = page.locator(".st-key-visit_date")
    for part, text in zip(("year", "month", "day"), VISIT_DATE.split("-"), strict=True):
        date.locator(f'[role=spinbutton][data-type="{part}"]').click()
        page.keyboard.type(text)
    page.keyboard.press("Tab")
    expect(date.locator("input[type=date]")).to_have_value(VISIT_DATE)
    choose(page, "region", "Trunk")
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(photo))
    expect(page.get_by_test_id("stFileChipName")).to_have_text(photo.name)


def score_table(page: Page) -> dict[str, list[str]]:
    """The first photo's score table as {sign: [score, label, area %, uncertainty]}."""
    table = page.get_by_test_id("stDataFrame").filter(has_text=SIGNS[-1]).first
    cells = table.locator('td[role="gridcell"]')
    expect(cells).to_have_count(5 * len(SIGNS), timeout=SCORE)
    texts = [t.strip() for t in cells.all_inner_texts()]
    rows = [texts[i : i + 5] for i in range(0, len(texts), 5)]
    return {row[0]: row[1:] for row in rows}


def full_page_screenshot(page: Page, path: Path) -> None:
    """The whole page: Streamlit scrolls inside stMain, so grow the viewport to its height."""
    height = page.evaluate("() => document.querySelector('[data-testid=stMain]').scrollHeight")
    height = min(max(int(height), 1000), 12_000)
    page.set_viewport_size({"width": 1400, "height": height})
    page.wait_for_function(
        "h => document.querySelector('[data-testid=stMain]').clientHeight >= h - 2", arg=height
    )
    page.screenshot(path=str(path), full_page=True)


def readme_screenshot(page: Page, path: Path) -> None:
    """Title, demo banner, form, overlay and score table: 1400 px wide, cut below the overlay."""
    from PIL import Image

    overlay = page.locator(".st-key-overlay_0")
    page.evaluate("() => document.querySelector('[data-testid=stMain]').scrollTo(0, 0)")
    bottom = page.evaluate(
        "() => document.querySelector('.st-key-overlay_0').getBoundingClientRect().bottom"
    )
    height = min(int(bottom) + 24, 1600)
    page.set_viewport_size({"width": 1400, "height": height})
    page.wait_for_function(
        "h => document.querySelector('[data-testid=stMain]').clientHeight >= h - 2", arg=height
    )
    expect(overlay.locator(".main-svg").first).to_be_visible()
    # Plotly's mode bar shows while the mouse is over a chart: not in the picture.
    page.add_style_tag(content=".modebar-container { display: none !important; }")
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = path.with_suffix(".raw.png")
    page.screenshot(path=str(raw))
    with Image.open(raw) as img:
        small = img.convert("RGB").quantize(
            colors=192, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
        )
        small.save(path, optimize=True)
    raw.unlink()


def test_upload_score_download_save(page: Page, streamlit_server, skin_photo, tmp_path):
    page.goto(streamlit_server)
    expect(page.locator(".st-key-pseudonym input")).to_be_visible(timeout=LOAD)
    # The sidebar's colour legend is a plotly chart: plotly.js has loaded once it shows.
    expect(page.locator(".st-key-legend .main-svg").first).to_be_visible(timeout=LOAD)
    fill_patient_form(page, skin_photo)

    started = time.monotonic()
    page.locator(".st-key-score button").click()

    # The overlay: a plotly figure whose title gives the selected sign, its score and label.
    overlay = page.locator(".st-key-overlay_0")
    expect(overlay.locator(".main-svg").first).to_be_visible(timeout=SCORE)
    expect(overlay.locator(".gtitle")).to_have_text(
        re.compile(r"erythema: \d\.\d\d \((none|mild|moderate|severe)\)"), timeout=SCORE
    )
    table = score_table(page)
    upload_to_overlay = time.monotonic() - started
    assert sorted(table) == sorted(SIGNS), table
    for sign, (score, label, area, _band) in table.items():
        assert 0.0 <= float(score) <= 3.0, (sign, score)
        assert label in LABELS, (sign, label)
        assert 0.0 <= float(area) <= 100.0, (sign, area)
    expect(page.locator(".st-key-multiples_0 .main-svg").first).to_be_visible(timeout=SCORE)
    expect(page.get_by_test_id("stException")).to_have_count(0)

    # The CSV summary, downloaded as the browser does it.
    button = page.get_by_test_id("stDownloadButton").filter(has_text="CSV summary")
    with page.expect_download(timeout=SCORE) as info:
        button.locator("button").click()
    download = info.value
    assert download.suggested_filename == f"dermsev_{PSEUDONYM}_{VISIT_DATE}.csv"
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
    assert rows and {r["pseudonym"] for r in rows} == {PSEUDONYM}
    assert {r["visit_date"] for r in rows} == {VISIT_DATE}
    assert {(r["age"], r["sex"]) for r in rows} == {("34", "F")}
    signs = [r for r in rows if r["record"] == "sign"]
    assert [r["sign"] for r in signs] == SIGNS
    for r in signs:
        assert r["photo"] == skin_photo.name and r["region"] == "trunk"
        assert 0.0 <= float(r["score"]) <= 3.0 and r["label"] in LABELS
        # The same numbers as on the page.
        assert abs(float(r["score"]) - float(table[r["sign"]][0])) < 0.006, (r, table[r["sign"]])
        assert r["label"] == table[r["sign"]][1]
    total = [r for r in rows if r["record"] == "easi_total"]
    assert len(total) == 1 and 0.0 <= float(total[0]["score"]) <= 72.0
    assert any(r["record"] == "notice" for r in rows)

    shot = tmp_path / "dashboard.png"
    full_page_screenshot(page, shot)
    assert shot.stat().st_size > 20_000
    target = os.environ.get("DERMSEV_SCREENSHOT")
    if target:
        readme_screenshot(page, Path(target))

    # Save the visit; the History tab then lists it with its trend chart.
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.locator(".st-key-save button").click()
    expect(page.get_by_text(f"Saved as visit #1 of {PSEUDONYM}.")).to_be_visible(timeout=SCORE)
    page.get_by_role("tab", name="History").click()
    expect(page.locator(".st-key-history_patient input[role=combobox]")).to_have_value(
        PSEUDONYM, timeout=SCORE
    )
    expect(page.locator(".st-key-trend .main-svg").first).to_be_visible(timeout=SCORE)
    print(f"upload to overlay and table: {upload_to_overlay:.1f} s")


def test_the_legend_comes_after_the_form_without_a_click(page: Page, streamlit_server):
    """The first page's form comes without the chart library; a timed rerun then draws the
    colour legend (a plotly chart) on a page nobody touched."""
    page.goto(streamlit_server)
    expect(page.locator('[data-testid="stFileUploaderDropzoneInput"]')).to_be_attached(timeout=LOAD)
    expect(page.locator(".st-key-legend .main-svg").first).to_be_visible(timeout=LOAD)


def test_lasso_on_the_photo_corrects_the_skin_mask(page: Page, streamlit_server, skin_photo):
    """A lasso drawn with the mouse over the mask editor's photo excludes that region from the
    skin: plotly's selection reaches the page and the score table is recomputed."""
    page.goto(streamlit_server)
    expect(page.locator(".st-key-legend .main-svg").first).to_be_visible(timeout=LOAD)
    fill_patient_form(page, skin_photo)
    page.locator(".st-key-score button").click()
    before = score_table(page)
    cells = page.get_by_test_id("stDataFrame").filter(has_text=SIGNS[-1]).first.locator('td[role="gridcell"]')
    old = [t.strip() for t in cells.all_inner_texts()]
    page.get_by_text("Correct the skin mask").first.click()
    drag = page.locator("[class*='st-key-mask_'] .nsewdrag").first
    expect(drag).to_be_visible(timeout=SCORE)
    drag.scroll_into_view_if_needed()

    def lasso() -> None:  # round the left half of the photo, once the chart has stopped moving
        box = drag.bounding_box()
        for _ in range(50):
            page.wait_for_timeout(200)
            if (now := drag.bounding_box()) == box:
                break
            box = now
        corners = [(0.02, 0.02), (0.5, 0.02), (0.5, 0.98), (0.02, 0.98), (0.02, 0.04)]
        points = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in corners]
        page.mouse.move(*points[0])
        page.mouse.down()
        for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
            for t in (0.25, 0.5, 0.75, 1.0):
                page.mouse.move(x0 + t * (x1 - x0), y0 + t * (y1 - y0))
        page.mouse.up()

    lasso()
    corrected = page.get_by_text("corrected by you")
    try:
        corrected.wait_for(timeout=30_000)
    except PlaywrightTimeout:
        # Once in CI (of many runs) the first lasso left no selection: the chart was still being
        # laid out under the mouse. A clinician draws again; so does the test, once.
        lasso()
    expect(corrected).to_be_visible(timeout=SCORE)
    expect(cells).not_to_have_text(old, timeout=SCORE)  # the table redrawn over the new mask
    after = score_table(page)
    assert after != before, (before, after)
    expect(page.get_by_test_id("stException")).to_have_count(0)
