"""The committed book, built from this checkout and opened in headless Chromium.

Fails on a broken image, a chapter without its figures, a page that shows a traceback, a page
that scrolls sideways at 1280 px or on a 400 px phone screen outside a table's own box, a
visible code cell, a figure narrower than 600 px, an unresolved reference, or a landing page
without its reproduction summary.
Skipped where Chromium is absent, except in CI (CI=true), where `.ci/run` installs it.
"""

import os
import shutil
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from jmvae_core.study import pipeline

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
# images at least, per page
FIGURE_PAGES = {
    "notebooks/latent": 1, "notebooks/alpha": 1, "notebooks/generation": 5,
    "notebooks/table1": 1, "notebooks/celeba": 6,
}  # fmt: skip
MIN_FIGURE_PX = 600
# what an unresolved role, citation, glue or cross-reference leaves in the rendered text
UNRESOLVED = ("{cite", "{glue", "{numref", "{ref}", "{doc}", "??", "[suzuki2016", "[burda2016")
VERDICTS = ("supported", "partly supported", "not supported", "not resolved", "not tested")

if not (CHROMIUM and DRIVER):
    if os.environ.get("CI") == "true":
        pytest.fail("CI needs Debian's chromium and chromium-driver", pytrace=False)
    pytest.skip("chromium / chromedriver not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    book = pipeline._prepare_book_dir(tmp_path_factory.mktemp("book"))
    pipeline.build_book(book)
    html = book / "_build" / "html"
    handler = partial(SimpleHTTPRequestHandler, directory=str(html))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", html
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
    ):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.set_window_size(1280, 900)
    yield driver
    driver.quit()


def _pages(html: Path):
    return sorted(
        str(p.relative_to(html))
        for p in html.rglob("*.html")
        if p.parent.name in ("book", "notebooks")
    )


def test_every_page_renders_without_broken_images_or_tracebacks(site, browser):
    url, html = site
    pages = _pages(html)
    assert len(pages) >= 10
    for page in pages:
        browser.get(f"{url}/{page}")
        text = browser.find_element("tag name", "body").text
        assert "Traceback (most recent call last)" not in text, page
        assert "Error" not in browser.title, page
        broken = browser.execute_script(
            "return Array.from(document.images)"
            ".filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)"
        )
        assert broken == [], (page, broken)
        name = str(Path(page).with_suffix(""))
        if name in FIGURE_PAGES:
            count = browser.execute_script(
                "return document.querySelectorAll('article img, .output img').length"
            )
            assert count >= FIGURE_PAGES[name], (page, count)
        if page.startswith("notebooks/celeba") or page.startswith("book/celeba"):
            # the face chapter must say, on the page, that its data are not CelebA
            assert "STAND-IN DATA" in text or "not from CelebA" in text, page


def _visible(browser, selector: str) -> int:
    return browser.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0]))"
        ".filter(e => e.checkVisibility({visibilityProperty: true, opacityProperty: true}))"
        ".length",
        selector,
    )


def test_pages_read_as_a_report_at_1280_px(site, browser):
    """No sideways page scroll (tables scroll in their own box), no visible code, figures at
    least 600 px wide on the chapters that show them, every reference resolved."""
    url, html = site
    for page in _pages(html):
        browser.get(f"{url}/{page}")
        width = browser.execute_script("return window.innerWidth")
        scroll = browser.execute_script("return document.documentElement.scrollWidth")
        assert scroll <= width, (page, scroll, width)
        assert _visible(browser, ".cell_input") == 0, page
        text = browser.find_element("tag name", "body").text
        for mark in UNRESOLVED:
            assert mark not in text, (page, mark)
        name = str(Path(page).with_suffix(""))
        if name in FIGURE_PAGES:
            widths = browser.execute_script(
                "return Array.from(document.querySelectorAll('article img'))"
                ".map(i => i.getBoundingClientRect().width)"
            )
            assert widths and min(widths) >= MIN_FIGURE_PX, (page, widths)


def test_pages_fit_a_400_px_phone_screen(site, browser):
    """On a phone, too, only a table's own box scrolls sideways, never the page."""
    url, html = site
    browser.set_window_size(400, 900)
    try:
        for page in _pages(html):
            browser.get(f"{url}/{page}")
            width = browser.execute_script("return window.innerWidth")
            scroll = browser.execute_script("return document.documentElement.scrollWidth")
            assert scroll <= width, (page, scroll, width)
    finally:
        browser.set_window_size(1280, 900)


def test_the_landing_page_carries_the_reproduction_summary(site, browser):
    url, html = site
    browser.get(f"{url}/book/intro.html")
    text = browser.find_element("tag name", "body").text
    for part in ("Reproduction summary", "Scope.", "Methodology.", "Results.",
                 "What was easy.", "What was difficult.", "Departures."):  # fmt: skip
        assert part in text, part
    items = browser.execute_script(
        "return Array.from(document.querySelectorAll('article ol > li')).map(r => r.innerText)"
    )
    claims = [i for i in items if any(v in i for v in VERDICTS)]
    assert len(claims) == 4, items
