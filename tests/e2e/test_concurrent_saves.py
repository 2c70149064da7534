"""Ten clinicians at once on one server: each in its own browser context scores a photo of its
own patient, then all press "Save to history" together. No save may be lost or mixed up: each
patient ends with exactly its own visit, holding its own photo, under the id its page showed.
"""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect

from dashboard import audit
from dashboard.history import HistoryStore

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]

SESSIONS = 10
LOAD = 180_000  # ms: ten pages opening on 2 busy cores
SCORE = 600_000  # ms: ten photos through the server's one inference queue


def _photo(seed: int, side: int = 160) -> bytes:
    rng = np.random.default_rng(seed)
    img = np.full((side, side, 3), (214, 166, 140), np.float32)
    img[side // 4 : 3 * side // 4, side // 4 : 3 * side // 4, 1:] -= 50 + seed  # a red lesion
    img += rng.normal(0, 5, img.shape)
    buf = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def test_ten_sessions_save_at_once(browser, streamlit_server, e2e_work):
    contexts, pages = [], []
    try:
        for _ in range(SESSIONS):
            ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = ctx.new_page()
            page.set_default_timeout(LOAD)
            page.goto(streamlit_server)
            contexts.append(ctx)
            pages.append(page)
        for k, page in enumerate(pages):
            expect(page.locator(".st-key-pseudonym input")).to_be_visible(timeout=LOAD)
            page.locator(".st-key-pseudonym input").fill(f"LOAD-{k:02d}")
            page.locator(".st-key-tta input[type=checkbox]").uncheck(force=True)  # quicker scoring
            page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
                [{"name": f"p{k:02d}.jpg", "mimeType": "image/jpeg", "buffer": _photo(k)}])  # fmt: skip
            expect(page.get_by_test_id("stFileChipName")).to_have_text(f"p{k:02d}.jpg")
        for page in pages:  # all at once: the server queues the photos
            page.locator(".st-key-score button").click()
        for page in pages:
            expect(page.locator(".st-key-save button")).to_be_enabled(timeout=SCORE)
        for page in pages:  # all saves together
            page.locator(".st-key-save button").click()
        shown = {}
        for k, page in enumerate(pages):
            note = page.get_by_text(re.compile(rf"Saved as visit #\d+ of LOAD-{k:02d}\."))
            expect(note).to_be_visible(timeout=SCORE)
            shown[f"LOAD-{k:02d}"] = int(re.search(r"#(\d+)", note.inner_text()).group(1))
            expect(page.get_by_test_id("stException")).to_have_count(0)
    finally:
        for ctx in contexts:
            ctx.close()
    store = HistoryStore(e2e_work / "data")
    assert len(set(shown.values())) == SESSIONS  # ten different visits
    for k in range(SESSIONS):
        name = f"LOAD-{k:02d}"
        [visit] = store.visits(name)  # exactly one visit, its own
        assert visit.id == shown[name] and visit.n_photos == 1 and visit.assessor == "local"
        stored = store.load(visit.id)
        assert stored.pseudonym == name and [p.name for p in stored.photos] == [f"p{k:02d}.jpg"]
    saves = audit.entries(store.engine, action="save")
    assert {(r.visit_id, r.pseudonym) for r in saves.itertuples()} >= {(v, n) for n, v in shown.items()}
