"""Screenshots of pages of a running Fleetdesk, as a person would see them (developer tool).

usage: .venv/bin/python scripts/screenshot.py http://localhost:8501 OUT_DIR [path ...]
"""

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic", "--no-first-run",
        "--disable-component-update", "--disable-sync"]


def main() -> None:
    base, out, *paths = sys.argv[1:]
    Path(out).mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        for path in paths or ["/"]:
            page.goto(base.rstrip("/") + path, wait_until="domcontentloaded")
            page.locator("h1").first.wait_for(timeout=60_000)
            page.wait_for_timeout(2500)
            name = path.strip("/").replace("/", "_").replace("?", "_").replace("=", "_") or "home"
            page.screenshot(path=f"{out}/{name}.png", full_page=True)
            print(f"{out}/{name}.png")
        browser.close()


if __name__ == "__main__":
    main()
