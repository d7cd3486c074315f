"""Regenerate docs/images/report.png, the README's picture of `numbre report`.

    python scripts/screenshot_report.py              # on runs/numbre-best, else the shipped model
    python scripts/screenshot_report.py --html runs/other/report/report.html   # a report already built

Builds the report on the MNIST test set (unless --html names one already built), opens it in
Debian's headless Chromium through Playwright and saves what a 1200x900 window shows on opening it, so the
picture stays a real page and not a mock-up.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1200, "height": 900}


def build(source: Path, out_dir: Path) -> Path:
    from numbre.data import load_dataset
    from numbre.insight.report import build_report

    started = time.perf_counter()
    report = build_report(source, load_dataset(None, quiet=True), out_dir)
    print(f"built {report.html_path} in {time.perf_counter() - started:.1f} s")
    return report.html_path


def screenshot(html: Path, out: Path) -> None:
    import playwright.sync_api as playwright_api

    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(html.resolve().as_uri())
        page.wait_for_function("[...document.images].every(image => image.naturalWidth > 0)")
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out))
        browser.close()
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KB)")


def main() -> None:
    default = ROOT / "runs" / "numbre-best"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", type=Path, default=None,
                        help="Run folder or model file (default: runs/numbre-best if present, "
                             "else the shipped model).")
    parser.add_argument("--html", type=Path, default=None,
                        help="A report.html already built; skips building (default: build one).")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "report.png",
                        help="Where to save the picture (default: docs/images/report.png).")
    arguments = parser.parse_args()
    arguments.out = arguments.out.resolve()  # before any change of folder
    if arguments.html is not None:
        screenshot(arguments.html, arguments.out)
        return
    if arguments.source is None:
        from numbre.model.file import DEFAULT_MODEL

        os.chdir(ROOT)  # the page shows the path it was given: keep it short, runs/numbre-best
        arguments.source = default.relative_to(ROOT) if default.is_dir() else DEFAULT_MODEL
    with tempfile.TemporaryDirectory() as folder:
        screenshot(build(arguments.source, Path(folder)), arguments.out)


if __name__ == "__main__":
    main()
