#!/usr/bin/env python3
"""The operations console (/console on the admin listener) in a real browser.

Run by scripts/browser-test.sh, which starts the container (chat,
guestbook, hello and the probe fixture deployed, and the probe again as "evil", whose init fails with an error
made of HTML) and ChromeDriver, and cleans up after. One headless Chromium
session: a wrong token shows an error and no data; the right one shows the
apps, the HTML error as literal text, and charts of real traffic; a module
is uploaded through the file picker, reloaded, stopped from outside (the
page follows without being reloaded), started again and undeployed with
the keyboard through the confirmation dialog; the phone-width layout has no
horizontal scrolling. Screenshots (1280x800, and 390x844) go to the
--screenshots directory.

Only the Python standard library; the WebDriver helpers are chat_test.py's.
"""

import argparse
import base64
import os
import struct
import sys
import threading
import time

from chat_test import Failure, Session, check, http, wait_for

ENTER, ESCAPE, TAB = "\ue007", "\ue00c", "\ue004"
PHONE = (390, 844)
EVIL = "<img src=x onerror=alert(1)>"  # the failing app's init error ends with this
UPLOADED = "uploaded"


class Console(Session):
    """The console's page in one browser window."""

    def __init__(self, args):
        super().__init__(args.webdriver, "console", f"{args.profiles}/console")
        self.args = args

    def rows(self):
        """{app name: state} of the table's rows."""
        return self.script(
            "return Object.fromEntries([...document.querySelectorAll('#apps tr.app')]"
            ".map(tr => [tr.dataset.app, tr.dataset.state]))")

    def cell(self, app, css):
        return self.script(
            "const tr = document.querySelector(`#apps tr.app[data-app='${arguments[0]}']`);"
            "const td = tr && tr.querySelector(arguments[1]); return td ? td.textContent : null;", app, css)

    def button(self, app, action):
        return f"#apps tr.app[data-app='{app}'] button[data-action='{action}']"

    def notice(self):
        return self.script("const n = document.getElementById('notice'); return n.hidden ? '' : n.textContent;")

    def keys(self, *keys):
        """Presses and releases each key, as a person at the keyboard would."""
        actions = []
        for key in keys:
            actions += [{"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}]
        self.call("POST", "/actions", {"actions": [{"type": "key", "id": "keyboard", "actions": actions}]})

    def focused(self):
        return self.script("const e = document.activeElement; return e ? (e.id || e.dataset.action || e.tagName) : null;")

    def sized_screenshot(self, path, size):
        png = base64.b64decode(self.call("GET", "/screenshot"))
        width, height = struct.unpack(">II", png[16:24])
        if png[:8] != b"\x89PNG\r\n\x1a\n" or (width, height) != size:
            raise Failure(f"the screenshot is not a {size[0]}x{size[1]} PNG")
        with open(path, "wb") as file:
            file.write(png)
        print(f"    screenshot {path} ({width}x{height})")


def admin(args, method, path):
    return http(method, f"{args.admin_url}{path}", headers={"Authorization": f"Bearer {args.admin_token}"})


def sign_in(page, token):
    page.clear("#token")
    page.type("#token", token + ENTER)


def a_wrong_token_shows_an_error_and_no_data(args, page):
    page.open(f"{args.admin_url}/console")
    wait_for("the sign-in form", lambda: page.find_all("#login:not([hidden]) #token"))
    page.script("window.consoleMarker = 'still the same page';")
    if page.focused() != "token":
        raise Failure(f"the token field does not have the focus: {page.focused()}")
    sign_in(page, "not-the-token")
    wait_for("the error", lambda: "refused" in page.text("#login-error"))
    if page.rows() or page.find_all("#console:not([hidden])"):
        raise Failure("data is shown after a wrong token")
    if page.script("return sessionStorage.length") != 0:
        raise Failure("a refused token was kept")
    check(f"a wrong token: {page.text('#login-error')!r}, no data, nothing kept")
    page.screenshot(f"{args.screenshots}/console-0-wrong-token.png")


def the_right_token_shows_the_apps(args, page):
    sign_in(page, args.admin_token)
    wait_for("the apps", lambda: page.rows() == {"chat": "running", "evil": "failed", "guestbook": "running", "hello": "running", "probe": "running"})
    stored = page.script("return [sessionStorage.getItem('crabcat.console.token'), localStorage.length, document.cookie]")
    if stored != [args.admin_token, 0, ""]:
        raise Failure(f"the token is not (only) in sessionStorage: {stored}")
    check("the right token shows chat, guestbook, hello, probe (running) and evil (failed); the token is in sessionStorage only")

    error = page.script("return document.querySelector(\"tr.app-error[data-app='evil']\").textContent")
    if not error.endswith(EVIL) or "probe was told to fail its init" not in error:
        raise Failure(f"the failed app's error is not shown as text: {error!r}")
    if page.find_all("#apps img") or page.open_alert() is not None:
        raise Failure("the error made of HTML became an element")
    check(f"the failing app's error {EVIL!r} is shown as literal text; no element, no alert")


def the_charts_show_real_traffic(args, page):
    """Requests to the probe fixture (one in four to its /panic), faster and slower by turns, until its charts have
    four points (20 s or so)."""
    stop = threading.Event()

    def traffic():
        started = time.monotonic()
        while not stop.is_set():
            for path in ("/probe/", "/probe/", "/probe/", "/probe/panic"):
                http("GET", f"{args.base_url}{path}")
            time.sleep(0.01 if int(time.monotonic() - started) % 10 < 5 else 0.06)

    worker = threading.Thread(target=traffic, daemon=True)
    worker.start()
    try:
        wait_for("probe's request rate", lambda: "– req/s" not in page.cell("probe", ".chart"), timeout=30)
        wait_for("four points", lambda: page.script(
            "return document.querySelectorAll(\"tr[data-app='probe'] .spark polyline.rate\")[0]"
            ".getAttribute('points').split(' ').length") >= 4, timeout=45)
    finally:
        stop.set()
        worker.join()
    errors = int(page.cell("probe", ".errors").replace(",", ""))
    requests = int(page.cell("probe", ".requests").replace(",", ""))
    if not 0 < errors < requests:
        raise Failure(f"probe shows {requests} requests and {errors} errors")
    check(f"probe's charts: {page.cell('probe', '.chart')!r}; {requests} requests, {errors} errors (its /panic)")
    sideways = page.script("const s = document.querySelector('.table-scroll'); return s.scrollWidth - s.clientWidth")
    if sideways > 0:
        raise Failure(f"the table is {sideways} px too wide for {page.script('return window.innerWidth')} px")
    check("the table fits 1280 px")
    page.screenshot(f"{args.screenshots}/console-1-apps.png")


def a_module_is_uploaded_through_the_file_picker(args, page):
    page.type("#module-file", os.path.abspath(args.module))
    wait_for("the name from the file", lambda: page.property("#module-name", "value") == "versioned_a")
    page.clear("#module-name")
    page.type("#module-name", UPLOADED)
    page.screenshot(f"{args.screenshots}/console-2-upload.png")
    page.click("#deploy-button")
    wait_for("the upload to deploy", lambda: page.notice().startswith(f"{UPLOADED}: deployed"))
    wait_for("its row", lambda: page.rows().get(UPLOADED) == "running")
    status, app = admin(args, "GET", f"/apps/{UPLOADED}")
    if status != 200 or app["state"] != "running":
        raise Failure(f"the admin API does not have the upload: {status} {app}")
    check(f"uploaded {os.path.basename(args.module)} as {UPLOADED!r} through the file picker: {page.notice()!r}")


def it_is_reloaded_stopped_and_started(args, page):
    page.click(page.button(UPLOADED, "reload"))
    wait_for("the reload", lambda: page.notice().startswith(f"{UPLOADED}: reloaded"))
    wait_for("an image kept", lambda: page.cell(UPLOADED, ".images") == "1")
    check(f"reloaded with its button: {page.notice()!r}, one image kept")

    # Stopped behind the page's back: the page follows on its own.
    status, reply = admin(args, "POST", f"/apps/{UPLOADED}/stop")
    if status != 200:
        raise Failure(f"stopping through the API failed: {status} {reply}")
    wait_for("the page to show it stopped", lambda: page.rows().get(UPLOADED) == "stopped", timeout=10)
    if not page.find_attribute(page.button(UPLOADED, "reload"), "disabled"):
        raise Failure("reload is offered for a stopped app")
    check("stopped through the admin API: the page shows 'stopped' by itself")

    page.click(page.button(UPLOADED, "start"))
    wait_for("it to run again", lambda: page.rows().get(UPLOADED) == "running")
    check("started again with its button")


def it_is_undeployed_with_the_keyboard(args, page):
    undeploy = page.find(page.button(UPLOADED, "undeploy"))
    page.call("POST", f"/element/{undeploy}/value", {"text": ENTER})  # focus it, press Enter
    wait_for("the confirmation", lambda: page.script("return document.getElementById('confirm').open"))
    if page.focused() != "confirm-cancel":
        raise Failure(f"the dialog does not focus Cancel first: {page.focused()}")
    page.screenshot(f"{args.screenshots}/console-3-confirm.png")
    page.keys(ESCAPE)
    wait_for("the dialog to close", lambda: not page.script("return document.getElementById('confirm').open"))
    if page.rows().get(UPLOADED) != "running":
        raise Failure("Escape undeployed the app")
    check("Enter on Undeploy asks first (focus on Cancel); Escape keeps the app")

    page.call("POST", f"/element/{undeploy}/value", {"text": ENTER})
    wait_for("the confirmation", lambda: page.script("return document.getElementById('confirm').open"))
    page.keys(TAB)
    if page.focused() != "confirm-ok":
        raise Failure(f"Tab does not reach Confirm: {page.focused()}")
    page.keys(ENTER)
    wait_for("the row to go", lambda: UPLOADED not in page.rows())
    status, _ = admin(args, "GET", f"/apps/{UPLOADED}")
    if status != 404:
        raise Failure(f"the app is still there after the undeploy: {status}")
    check(f"Tab, Enter confirms: {page.notice()!r}; the app is gone from the page and the API")


def it_fits_a_phone(args, page):
    width, height = PHONE
    page.cdp("Emulation.setDeviceMetricsOverride",
             {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": True})
    page.script("window.scrollTo(0, 0)")
    try:
        wait_for("the narrow layout", lambda: page.script(
            "return getComputedStyle(document.querySelector('#apps thead')).display") == "none")
        overflow = page.script("return [document.documentElement.scrollWidth, window.scrollX]")
        if overflow[0] > width or overflow[1] != 0:
            raise Failure(f"the page is {overflow[0]} px wide on a {width} px screen (scrolled by {overflow[1]})")
        page.sized_screenshot(f"{args.screenshots}/console-4-phone.png", PHONE)
        page.script("document.querySelector(\"tr.app[data-app='hello']\").scrollIntoView()")
        page.sized_screenshot(f"{args.screenshots}/console-5-phone-probe.png", PHONE)
    finally:
        page.cdp("Emulation.setDeviceMetricsOverride",
                 {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False})
    check(f"at {width}x{height} each app is a card and nothing scrolls sideways")


def it_never_reloaded_and_signs_out(page):
    if page.script("return window.consoleMarker") != "still the same page":
        raise Failure("the page was reloaded along the way")
    check("all of it on one page load (updates by polling)")
    page.click("#sign-out")
    wait_for("the sign-in form", lambda: page.find_all("#login:not([hidden])"))
    if page.rows() or page.script("return sessionStorage.length") != 0:
        raise Failure("signing out left data or the token")
    check("signing out forgets the token and the data")


def run(args):
    page = Console(args)
    try:
        check("a headless Chromium session started")
        a_wrong_token_shows_an_error_and_no_data(args, page)
        the_right_token_shows_the_apps(args, page)
        the_charts_show_real_traffic(args, page)
        a_module_is_uploaded_through_the_file_picker(args, page)
        it_is_reloaded_stopped_and_started(args, page)
        it_is_undeployed_with_the_keyboard(args, page)
        it_fits_a_phone(args, page)
        it_never_reloaded_and_signs_out(page)
    finally:
        page.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True, help="the container, e.g. http://127.0.0.1:8080")
    parser.add_argument("--admin-url", required=True, help="its admin API, e.g. http://127.0.0.1:8081")
    parser.add_argument("--admin-token", required=True)
    parser.add_argument("--module", required=True, help="a module to upload (versioned-a)")
    parser.add_argument("--webdriver", required=True, help="ChromeDriver, e.g. http://127.0.0.1:9515")
    parser.add_argument("--screenshots", required=True, help="directory for the PNG screenshots")
    parser.add_argument("--profiles", required=True, help="directory for the browser profiles")
    args = parser.parse_args()
    try:
        run(args)
    except Failure as failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        sys.exit(1)
    print("all console checks passed")


if __name__ == "__main__":
    main()
