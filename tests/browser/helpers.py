"""Driving the console in Debian's Chromium: sign-in, keyboard walks, layout checks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.support.server import ADMIN_TOKEN, ServerProcess

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
LOCALES = {"en": "en-GB", "de": "de-DE"}
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def debian_chromium() -> Iterator[Browser]:
    """Debian's Chromium under Playwright, for a fixture to yield from (never a downloaded one)."""
    if not CHROMIUM.exists():
        raise RuntimeError("Debian's chromium is not installed: run make test (it installs it)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def new_context(
    browser: Browser,
    lang: str = "en",
    viewport: dict[str, int] | None = None,
    bypass_csp: bool = False,
    locale: str | None = None,
) -> BrowserContext:
    """`bypass_csp`: let a test inject a script (axe-core); `locale`: the browser's own,
    other than the console language's usual one (en-US, say)."""
    context = browser.new_context(
        locale=locale or LOCALES[lang],
        viewport=viewport or DESKTOP,  # type: ignore[arg-type]
        timezone_id="Europe/Berlin",
        bypass_csp=bypass_csp,
    )
    context.set_default_timeout(10_000)
    return context


_SESSIONS: dict[str, list[Any]] = {}


def sign_in(context: BrowserContext, server: ServerProcess) -> Page:
    """A page of `context`, signed in, showing the board.

    The first sign-in per server goes through the login form; later contexts reuse that
    session cookie (one session may be open in many browsers), which keeps the suite fast.
    """
    page = context.new_page()
    cookies = _SESSIONS.get(server.url)
    if cookies is None:
        page.goto(server.url + "/console/login")
        page.locator("#token").fill(ADMIN_TOKEN)
        page.locator("#login-form button[type=submit]").click()
        expect(page.locator("#board")).to_be_visible()
        _SESSIONS[server.url] = [c for c in context.cookies() if c["name"] == "pb_console"]
        return page
    context.add_cookies(cookies)
    page.goto(server.url + "/")
    expect(page.locator("#board")).to_be_visible()
    return page


def csrf_of(page: Page) -> str:
    value = page.locator('input[name="csrf_token"]').first.get_attribute("value")
    assert value
    return value


# -- keyboard --------------------------------------------------------------------------------

_MARK_FOCUSABLE = """() => {
  const selector = 'a[href], button, input, select, textarea, summary, [tabindex]';
  const items = [...document.querySelectorAll(selector)].filter((el) => {
    if (el.disabled || el.type === 'hidden' || el.getAttribute('tabindex') === '-1') return false;
    if (el.closest('[hidden], template, [inert]')) return false;
    const style = getComputedStyle(el);
    if (style.visibility === 'hidden' || style.display === 'none') return false;
    return el.getClientRects().length > 0;
  });
  const keys = [];
  items.forEach((el, i) => {
    el.dataset.kbd = el.type === 'radio' ? 'radio:' + el.name : String(i);
    keys.push(el.dataset.kbd + ' ' + (el.id || el.name || el.textContent.trim().slice(0, 30)));
  });
  return keys;
}"""

_FOCUSED = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const style = getComputedStyle(el);
  const width = parseFloat(style.outlineWidth) || 0;
  return {
    key: el.dataset.kbd || null,
    label: el.id || el.name || el.textContent.trim().slice(0, 30),
    visible: (style.outlineStyle !== 'none' && width >= 2) || style.boxShadow !== 'none',
  };
}"""


def tab_walk(page: Page) -> None:
    """Tab from the top of the page: every control is reached, each with a visible focus ring."""
    expected = {entry.split(" ", 1)[0]: entry for entry in page.evaluate(_MARK_FOCUSABLE)}
    assert expected, "no interactive elements found"
    page.evaluate("() => { document.activeElement && document.activeElement.blur(); }")
    page.locator("body").focus()
    reached: list[str] = []
    invisible: list[str] = []
    # Date and time inputs take several Tab stops (one per part), hence the spare presses.
    for _ in range(3 * len(expected) + 20):
        page.keyboard.press("Tab")
        focused: dict[str, Any] | None = page.evaluate(_FOCUSED)
        if focused is None or focused["key"] is None:
            continue
        if reached and focused["key"] == reached[-1]:
            continue  # still inside the same control
        if reached and focused["key"] == reached[0]:
            break  # wrapped around
        reached.append(focused["key"])
        if not focused["visible"]:
            invisible.append(focused["label"])
    missing = [expected[k] for k in expected if k not in reached]
    assert not missing, f"Tab never reaches: {missing}"
    assert not invisible, f"focus not visible on: {invisible}"
    order = [int(k) for k in reached if not k.startswith("radio:")]
    start = order.index(min(order))  # the walk may begin mid-page (autofocus); it is a cycle
    order = order[start:] + order[:start]
    assert order == sorted(order), f"Tab order does not follow the page order: {order}"


# -- layout ------------------------------------------------------------------------------------

_LAYOUT_PROBLEMS = """() => {
  const problems = [];
  const describe = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
    ' "' + (el.textContent || el.value || '').trim().slice(0, 40) + '"';
  const shown = (el) => el.getClientRects().length > 0 &&
    !el.closest('[hidden], .visually-hidden, .skip-link, template');
  const text = document.body.innerText;
  if (/[{\\[]\\s*"[a-z_]+"\\s*:/.test(text)) problems.push('raw JSON on the page');
  if (document.documentElement.scrollWidth > window.innerWidth + 1)
    problems.push('page wider than the window: ' + document.documentElement.scrollWidth);
  const boxes = [...document.querySelectorAll(
    'a[href], button, input:not([type=hidden]), select, textarea, label, h1, h2, h3, p, ' +
    'dt, dd, legend, th, td, li, [role=cell], [role=rowheader], [role=columnheader]'
  )].filter(shown);
  for (const el of boxes) {
    const style = getComputedStyle(el);
    const clips = ['hidden', 'clip'].includes(style.overflowX);
    if (clips && el.scrollWidth > el.clientWidth + 1 && !el.classList.contains('ellipsis'))
      problems.push('cut off: ' + describe(el));
    const card = el.closest('.card, .filters, .stat, .board-row');
    if (card && !el.closest('.table-wrap')) {
      const r = el.getBoundingClientRect();
      const c = card.getBoundingClientRect();
      if (r.right > c.right + 1 || r.left < c.left - 1) {
        problems.push('sticks out of its card: ' + describe(el));
      }
    }
  }
  for (const wrap of document.querySelectorAll('.table-wrap')) {
    // A table may scroll inside its card only as a last resort: what it hides is cut off.
    if (shown(wrap) && wrap.scrollWidth > wrap.clientWidth + 1)
      problems.push('table wider than its card (' + wrap.scrollWidth + ' > ' + wrap.clientWidth +
        '): ' + describe(wrap.closest('section, .card') || wrap).slice(0, 60));
  }
  const controls = boxes.filter((el) => el.matches('a[href], button, input, select, textarea'));
  for (let i = 0; i < controls.length; i++) {
    const a = controls[i].getBoundingClientRect();
    for (let j = i + 1; j < controls.length; j++) {
      if (controls[i].contains(controls[j]) || controls[j].contains(controls[i])) continue;
      const b = controls[j].getBoundingClientRect();
      const w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
      const h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
      if (w > 2 && h > 2) {
        problems.push('overlap: ' + describe(controls[i]) + ' / ' + describe(controls[j]));
      }
    }
  }
  return problems;
}"""


def layout_problems(page: Page) -> list[str]:
    problems: list[str] = page.evaluate(_LAYOUT_PROBLEMS)
    return problems


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


# -- accessibility -------------------------------------------------------------------------------

AXE = Path(__file__).resolve().parents[1] / "support" / "axe"
AXE_SCRIPT = AXE / "node_modules" / "axe-core" / "axe.min.js"

_AXE_RUN = """async () => {
  const result = await axe.run(document, { resultTypes: ['violations'] });
  return result.violations.map((v) => ({
    id: v.id,
    impact: v.impact,
    help: v.help,
    nodes: v.nodes.slice(0, 5).map((n) => n.target.join(' ') + ': ' + n.failureSummary),
  }));
}"""


def axe_violations(page: Page, impacts: tuple[str, ...] = ("serious", "critical")) -> list[Any]:
    """axe-core's violations of the page as it is now, those of the given impacts."""
    if not AXE_SCRIPT.exists():
        raise RuntimeError(
            f"axe-core is not installed in {AXE}: run make pytest (it runs npm ci there)"
        )
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(path=str(AXE_SCRIPT))
    violations: list[Any] = page.evaluate(_AXE_RUN)
    return [v for v in violations if v["impact"] in impacts]
