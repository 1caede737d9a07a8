#!/usr/bin/env python3
"""The chat sample app in a real browser, driven through ChromeDriver.

Run by scripts/browser-test.sh, which starts the container (with chat
deployed) and ChromeDriver, and cleans up after. Two headless Chromium
sessions join one room with different nicknames; one types a message made
of HTML, and the other must show it as literal text; both see each other in
the member list; then the app is reloaded through the admin API and both
pages must reconnect on their own and still exchange messages; then it is
stopped (the pages keep retrying, backing off) and started again (they come
back); last, a freshly loaded page must get the history back.

Only the Python standard library: the W3C WebDriver protocol is JSON over
HTTP. Screenshots (1280x800 PNG) go to the --screenshots directory.
"""

import argparse
import base64
import json
import struct
import sys
import time
import urllib.error
import urllib.request

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
ENTER = "\ue007"
WIDTH, HEIGHT = 1280, 800
ROOM = "crabs"
ALICE = "alice"
BOB = "<i>bob</i>"  # a nickname made of HTML, too
HTML_MESSAGE = "<b>bold</b> & <script>alert(1)</script>"


class Failure(Exception):
    """A check that did not hold."""


def http(method, url, body=None, headers=None, timeout=60):
    """One HTTP request; returns (status, parsed JSON body or None)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def wait_for(what, check, timeout=15.0, every=0.05):
    """Polls `check` until it returns something truthy; returns that."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Failure:
            last = None
        if last:
            return last
        time.sleep(every)
    raise Failure(f"timed out after {timeout:.0f} s waiting for {what}")


class Session:
    """One WebDriver session: one browser window."""

    def __init__(self, webdriver, name, profile_dir):
        self.webdriver = webdriver
        self.name = name
        capabilities = {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new",
                    "--no-sandbox",  # runs as root in CI containers
                    "--disable-dev-shm-usage",
                    "--disable-gpu",
                    "--no-first-run",
                    "--hide-scrollbars",
                    "--force-device-scale-factor=1",
                    f"--window-size={WIDTH},{HEIGHT}",
                    f"--user-data-dir={profile_dir}",
                    "--lang=en-GB",
                ],
            },
        }
        status, reply = http("POST", f"{webdriver}/session", {"capabilities": {"alwaysMatch": capabilities}})
        if status != 200:
            raise Failure(f"could not start a browser session: {status} {reply}")
        self.id = reply["value"]["sessionId"]
        # The screenshots are of the viewport: make that exactly 1280x800.
        self.cdp("Emulation.setDeviceMetricsOverride",
                 {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False})

    def call(self, method, path, body=None):
        status, reply = http(method, f"{self.webdriver}/session/{self.id}{path}", body)
        if status != 200:
            error = reply.get("value", {}) if isinstance(reply, dict) else reply
            raise Failure(f"[{self.name}] {method} {path}: {status} {error}")
        return reply["value"]

    def cdp(self, command, params):
        return self.call("POST", "/goog/cdp/execute", {"cmd": command, "params": params})

    def open(self, url):
        self.call("POST", "/url", {"url": url})

    def refresh(self):
        self.call("POST", "/refresh", {})

    def find_all(self, css):
        found = self.call("POST", "/elements", {"using": "css selector", "value": css})
        return [element[ELEMENT] for element in found]

    def find(self, css):
        return self.call("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]

    def text(self, css):
        return self.call("GET", f"/element/{self.find(css)}/text")

    def texts(self, css):
        return [self.call("GET", f"/element/{e}/text") for e in self.find_all(css)]

    def type(self, css, text):
        self.call("POST", f"/element/{self.find(css)}/value", {"text": text})

    def clear(self, css):
        self.call("POST", f"/element/{self.find(css)}/clear", {})

    def click(self, css):
        self.call("POST", f"/element/{self.find(css)}/click", {})

    def script(self, source, *args):
        return self.call("POST", "/execute/sync", {"script": source, "args": list(args)})

    def state(self):
        return self.find_attribute("#status", "data-state")

    def find_attribute(self, css, name):
        return self.call("GET", f"/element/{self.find(css)}/attribute/{name}")

    def property(self, css, name):
        return self.call("GET", f"/element/{self.find(css)}/property/{name}")

    def members(self):
        # The nickname is the first text node; " (you)" is a span after it.
        return self.script(
            "return [...document.querySelectorAll('#members li')].map(li => li.firstChild.textContent)")

    def open_alert(self):
        status, reply = http("GET", f"{self.webdriver}/session/{self.id}/alert/text")
        return reply["value"] if status == 200 else None

    def screenshot(self, path):
        png = base64.b64decode(self.call("GET", "/screenshot"))
        if png[:8] != b"\x89PNG\r\n\x1a\n":
            raise Failure(f"[{self.name}] the screenshot is not a PNG")
        width, height = struct.unpack(">II", png[16:24])
        if (width, height) != (WIDTH, HEIGHT):
            raise Failure(f"[{self.name}] the screenshot is {width}x{height}, not {WIDTH}x{HEIGHT}")
        with open(path, "wb") as file:
            file.write(png)
        print(f"    screenshot {path} ({width}x{height})")

    def close(self):
        try:
            http("DELETE", f"{self.webdriver}/session/{self.id}", timeout=20)
        except OSError:
            pass


def admin(args, action):
    """`POST /apps/chat/{action}` on the admin API."""
    status, reply = http("POST", f"{args.admin_url}/apps/chat/{action}",
                         headers={"Authorization": f"Bearer {args.admin_token}"})
    if status != 200:
        raise Failure(f"the admin API refused to {action} chat: {status} {reply}")


def check(description):
    print(f"ok: {description}")


def join(session, base_url, nick, room, room_in_form):
    """Opens the page and joins `room`: named in the URL hash, or typed into the form."""
    session.open(f"{base_url}/chat/" + ("" if room_in_form else f"#{room}"))
    wait_for(f"{session.name}'s join form", lambda: session.find_all("#join-form:not([hidden]) #nick"))
    session.clear("#nick")
    session.type("#nick", nick)
    if room_in_form:
        session.clear("#room")
        session.type("#room", room)
    elif session.property("#room", "value") != room:
        raise Failure(f"[{session.name}] the room of the URL hash is not in the form")
    session.click("#join")
    wait_for(f"{session.name} to connect", lambda: session.state() == "connected")


def message_texts(session):
    return session.texts("#messages li.message .text")


def wait_for_message(session, text, nick):
    def seen():
        for item in session.find_all("#messages li.message"):
            got_text = session.call("GET", f"/element/{item}/text")
            if got_text.endswith(text):
                spans = session.script(
                    "const li = arguments[0];"
                    "return [li.querySelector('.nick').textContent, li.querySelector('.text').textContent];",
                    {ELEMENT: item})
                return spans
        return None

    nick_seen, text_seen = wait_for(f"{session.name} to show {text!r}", seen)
    if (nick_seen, text_seen) != (nick, text):
        raise Failure(f"[{session.name}] shows {nick_seen!r}: {text_seen!r}, expected {nick!r}: {text!r}")


def send(session, text):
    session.type("#text", text + ENTER)


def notices(session):
    return session.texts("#messages li.notice")


def both_join(args, alice, bob):
    bob.open(f"{args.base_url}/chat/")
    wait_for("the join form", lambda: bob.find_all("#join-form #nick"))
    bob.type("#nick", "ferris")
    bob.screenshot(f"{args.screenshots}/chat-1-join-form.png")
    join(alice, args.base_url, ALICE, ROOM, room_in_form=False)
    join(bob, args.base_url, BOB, ROOM, room_in_form=True)
    check(f"{ALICE!r} (room from the URL hash) and {BOB!r} (room typed in the form) joined #{ROOM}")

    for session in (alice, bob):
        wait_for(f"{session.name} to list both members", lambda s=session: sorted(s.members()) == sorted([ALICE, BOB]))
        if session.text("#member-count") != "2":
            raise Failure(f"[{session.name}] member count is {session.text('#member-count')!r}")
        if session.find_all("#members i, #members b"):
            raise Failure(f"[{session.name}] the nickname {BOB!r} was rendered as HTML")
    check(f"presence: both pages list {ALICE!r} and {BOB!r} as text (count 2)")
    wait_for("alice to announce bob", lambda: f"{BOB} joined" in notices(alice))
    check(f"alice's page says {BOB + ' joined'!r}")


def html_is_shown_as_text(args, alice, bob):
    send(alice, HTML_MESSAGE)
    for session in (bob, alice):
        wait_for_message(session, HTML_MESSAGE, ALICE)
        if session.find_all("#messages b, #messages script, #messages i"):
            raise Failure(f"[{session.name}] the message created elements inside the message list")
        if session.open_alert() is not None:
            raise Failure(f"[{session.name}] an alert opened: the script ran")
    check(f"the message {HTML_MESSAGE!r} shows as literal text on both pages; no <b>/<script> element, no alert")

    send(bob, "Hi alice! Reloading the app in a moment…")
    wait_for_message(alice, "Hi alice! Reloading the app in a moment…", BOB)
    check("bob's reply reached alice")
    alice.screenshot(f"{args.screenshots}/chat-2-alice.png")
    bob.screenshot(f"{args.screenshots}/chat-3-bob.png")


def both_survive_a_reload(args, alice, bob):
    admin(args, "reload")
    check("the app was reloaded through the admin API")
    for session in (alice, bob):
        wait_for(f"{session.name} to notice the 1012 close",
                 lambda s=session: "Disconnected (app reloaded)." in notices(s))
        wait_for(f"{session.name} to reconnect", lambda s=session: "Reconnected." in notices(s), timeout=20)
        wait_for(f"{session.name} to be connected", lambda s=session: s.state() == "connected")
        wait_for(f"{session.name} to list both members again",
                 lambda s=session: sorted(s.members()) == sorted([ALICE, BOB]))
    check("both pages saw the close (1012, app reloaded), reconnected on their own and rebuilt presence")

    send(bob, "Back after the reload.")
    wait_for_message(alice, "Back after the reload.", BOB)
    send(alice, "Welcome back, <i>bob</i>!")
    wait_for_message(bob, "Welcome back, <i>bob</i>!", ALICE)
    check("both pages still exchange messages after the reload")
    alice.screenshot(f"{args.screenshots}/chat-4-alice-after-reload.png")


def both_wait_out_a_stop(args, alice, bob):
    """While the app is stopped the pages keep trying, backing off; they
    come back on their own once it starts again."""
    admin(args, "stop")
    for session in (alice, bob):
        wait_for(f"{session.name} to notice the 1001 close",
                 lambda s=session: "Disconnected (server going away)." in notices(s))
        wait_for(f"{session.name} to fail a reconnection attempt",
                 lambda s=session: s.state() == "waiting" and s.text("#status").startswith("connection lost"))
        if not session.find_attribute("#text", "disabled"):
            raise Failure(f"[{session.name}] the composer is enabled while disconnected")
    check("with the app stopped, both pages show they are disconnected and keep retrying")
    alice.screenshot(f"{args.screenshots}/chat-5-alice-reconnecting.png")
    admin(args, "start")
    for session in (alice, bob):
        wait_for(f"{session.name} to reconnect after the start",
                 lambda s=session: s.state() == "connected" and notices(s).count("Reconnected.") == 2,
                 timeout=30)
    check("once the app started again, both pages reconnected within the backoff")


def a_new_page_gets_the_history(args, bob):
    """A fresh load of bob's page: the nickname is remembered, the history
    comes back from the database."""
    bob.refresh()
    wait_for("bob's join form", lambda: bob.property("#nick", "value") == BOB)
    bob.click("#join")
    wait_for("bob to connect again", lambda: bob.state() == "connected")
    expected = [HTML_MESSAGE, "Hi alice! Reloading the app in a moment…", "Back after the reload.",
                "Welcome back, <i>bob</i>!"]
    wait_for("bob's history", lambda: message_texts(bob) == expected)
    check(f"a reloaded page gets the {len(expected)} messages back from the history, in order")
    bob.screenshot(f"{args.screenshots}/chat-6-bob-history.png")


def run(args):
    sessions = []
    try:
        for name in ("alice", "bob"):
            sessions.append(Session(args.webdriver, name, f"{args.profiles}/{name}"))
        check("two headless Chromium sessions started")
        alice, bob = sessions
        both_join(args, alice, bob)
        html_is_shown_as_text(args, alice, bob)
        both_survive_a_reload(args, alice, bob)
        both_wait_out_a_stop(args, alice, bob)
        a_new_page_gets_the_history(args, bob)
    finally:
        for session in sessions:
            session.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True, help="the container, e.g. http://127.0.0.1:8080")
    parser.add_argument("--admin-url", required=True, help="its admin API, e.g. http://127.0.0.1:8081")
    parser.add_argument("--admin-token", required=True)
    parser.add_argument("--webdriver", required=True, help="ChromeDriver, e.g. http://127.0.0.1:9515")
    parser.add_argument("--screenshots", required=True, help="directory for the PNG screenshots")
    parser.add_argument("--profiles", required=True, help="directory for the browser profiles")
    args = parser.parse_args()
    try:
        run(args)
    except Failure as failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        sys.exit(1)
    print("all browser checks passed")


if __name__ == "__main__":
    main()
