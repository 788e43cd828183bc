"""Opens a `runbook runs RUN_ID --html` page in headless Chromium (Playwright) and checks
it: no console or page errors, one step bar per step attempt expected, the write marks, and
none of the given secret values anywhere in the rendered page.

usage: timeline.py PAGE.html BARS [SECRET ...]   (exit 0: all hold; 1: the failures printed)
"""
import os
import sys

from playwright.sync_api import sync_playwright


def main() -> int:
    page_path, bars, secrets = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    chromium = os.environ.get("RUNBOOK_TEST_CHROMIUM", "/usr/bin/chromium")
    problems = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page()
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on(
            "console",
            lambda m: problems.append(f"console {m.type}: {m.text}")
            if m.type in ("error", "warning")
            else None,
        )
        # No network: any request but the file itself is a failure.
        page.route(
            "**/*",
            lambda route: route.continue_()
            if route.request.url.startswith("file://")
            else (problems.append(f"network: {route.request.url}"), route.abort()),
        )
        page.goto("file://" + os.path.abspath(page_path))
        found = page.locator("svg.timeline rect.step-bar").count()
        if found != bars:
            problems.append(f"{found} step bars, expected {bars}")
        if page.locator("svg.timeline circle.write").count() == 0:
            problems.append("no write marks")
        box = page.locator("svg.timeline").bounding_box()
        if not box or box["width"] < 100:
            problems.append(f"the timeline is not drawn: {box}")
        text = page.content() + page.inner_text("body")
        for s in secrets:
            if s and s in text:
                problems.append(f"a secret value is in the page: {s[:4]}…")
        browser.close()
    for p_ in problems:
        print(p_)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
