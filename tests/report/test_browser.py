"""The report of a small demo-style run, opened in a real headless chromium (Playwright):
no console errors, every image loads and has alt text, the sections are there, a unit
dossier opens from the index, and the page fits a 1400 px wide window. A full-page
screenshot is left in the run as ``report/screenshot.png``.

Offline by design: the browser is the system's ``/usr/bin/chromium`` (``apt-get install -y
chromium`` when it is missing; Playwright's own browser download is never used), started
with background networking, component updates and sync off, on ``file://`` pages.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
WIDTH_PX = 1400
SECTIONS = {"Model", "Stimuli", "Overview", "Units", "Provenance", "Summary"}


def _chromium() -> Path:
    """The system chromium, installed with apt-get when it is missing."""
    if CHROMIUM.exists():
        return CHROMIUM
    if shutil.which("apt-get") is None:
        pytest.fail(f"{CHROMIUM} is missing and there is no apt-get to install it; install "
                    "chromium (the browser test never downloads Playwright's browsers)")
    done = subprocess.run(["apt-get", "install", "-y", "chromium"], capture_output=True,
                          text=True)
    if done.returncode != 0 or not CHROMIUM.exists():
        pytest.fail(f"`apt-get install -y chromium` failed (exit {done.returncode}): "
                    f"{(done.stderr or done.stdout).strip()[-500:]}; install chromium by "
                    f"hand so that {CHROMIUM} exists")
    return CHROMIUM


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Python Playwright is missing: pip install -e '.[dev]' (or pip install "
                    "playwright); its browser download is not needed")
    executable = _chromium()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(executable), args=ARGS)
        try:
            yield b
        finally:
            b.close()


def _images_folder(folder: Path, n: int = 64) -> Path:
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        noise = (rng.random((16, 16, 3)) * 255).astype(np.uint8)
        Image.fromarray(noise).resize((72, 72)).save(folder / f"im{i:02d}.png")
    return folder


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """``index.html`` of a small characterize run of the built-in Neuromatch model: two
    layers, both controls, natural images, example units with short optimisations."""
    from artiphys.experiments.base import ExecutionConfig, ModelConfig
    from artiphys.experiments.characterize import CharacterizeConfig, run
    from artiphys.progress import Progress
    from artiphys.report import build_report

    root = tmp_path_factory.mktemp("browser")
    cfg = CharacterizeConfig(
        model=ModelConfig(name="neuromatch_conv"), layers=("conv", "relu"),
        tests=("apc", "ti", "sparsity", "natural"), controls=("shuffle", "untrained"),
        control_seeds=1, images_dir=str(_images_folder(root / "images")), n_images=8,
        ti_extent_px=8, ti_step_px=4, synthesis="examples", n_examples=2,
        synthesis_steps=8, rescue_steps=0, diverse_steps=4,
        execution=ExecutionConfig(batch_size=16))
    run(cfg, root / "run", progress=Progress(quiet=True))
    return build_report(root / "run")


def _open(browser, url: str):
    """``(page, console errors)`` of ``url`` loaded in a fresh 1400 px wide page."""
    page = browser.new_page(viewport={"width": WIDTH_PX, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: errors.append(f"failed to load {r.url}"))
    page.goto(url)
    page.wait_for_load_state("load")
    return page, errors


def _check_images(page) -> int:
    images = page.evaluate("""() => Array.from(document.images).map(i => (
        {src: i.getAttribute('src'), w: i.naturalWidth, alt: (i.getAttribute('alt') || '').trim()}))""")
    broken = [i["src"] for i in images if i["w"] <= 0]
    assert not broken, f"images that did not load: {broken}"
    no_alt = [i["src"] for i in images if not i["alt"]]
    assert not no_alt, f"images without alt text: {no_alt}"
    return len(images)


@pytest.mark.slow
def test_report_in_headless_chromium(browser, report):
    page, errors = _open(browser, report.as_uri())
    try:
        assert not errors, errors
        assert _check_images(page) >= 5
        headings = set(page.eval_on_selector_all("h2", "hs => hs.map(h => h.textContent)"))
        assert SECTIONS <= headings, SECTIONS - headings
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= WIDTH_PX, f"the page is {width} px wide at a {WIDTH_PX} px window"
        page.screenshot(path=str(report.parent / "screenshot.png"), full_page=True)
        links = page.eval_on_selector_all("a[href^='units/']",
                                          "as => as.map(a => a.getAttribute('href'))")
    finally:
        page.close()
    assert (report.parent / "screenshot.png").stat().st_size > 10_000
    assert links, "the index links no unit dossier"
    assert all((report.parent / href).is_file() for href in links), "a dossier link is dead"
    unit, errors = _open(browser, (report.parent / links[0]).as_uri())
    try:
        assert not errors, errors
        _check_images(unit)
        assert unit.locator("h1").inner_text().startswith("Unit ")
        assert unit.locator("a[href='../index.html']").count() >= 1
        assert unit.evaluate("document.documentElement.scrollWidth") <= WIDTH_PX
    finally:
        unit.close()
