#!/usr/bin/env python3
"""The guestbook sample app in a real browser, driven through ChromeDriver.

Run by scripts/browser-test.sh after the chat test, against the same
container (guestbook deployed with its static directory). Checks what the
container's sessions and static files give the app: the stylesheet (a
static file) is applied; signing the form (with the session's CSRF token)
stores the entry and the next page shows a flash message once; the name is
remembered in the form, also after the app is reloaded through the admin
API; a post whose token was tampered with gets 403 and stores nothing.

Reuses the WebDriver client of chat_test.py. Screenshots (1280x800 PNG) go
to the --screenshots directory.
"""

import argparse
import sys

from chat_test import Failure, Session, check, http, wait_for

NAME = "Ferris <the crab>"
MESSAGE = "Hello from a real browser & <b>not bold</b>"


def reload_app(args):
    status, reply = http("POST", f"{args.admin_url}/apps/guestbook/reload",
                         headers={"Authorization": f"Bearer {args.admin_token}"})
    if status != 200:
        raise Failure(f"the admin API refused to reload guestbook: {status} {reply}")


def run(args):
    page = Session(args.webdriver, "guestbook", f"{args.profiles}/guestbook")
    try:
        url = f"{args.base_url}/guestbook/"
        page.open(url)
        wait_for("the guestbook form", lambda: page.find_all("form #name"))
        background = page.script("return getComputedStyle(document.body).backgroundColor")
        if background != "rgb(246, 245, 241)":
            raise Failure(f"the static stylesheet is not applied: body background {background}")
        check("the stylesheet, a static file the container serves, is applied")

        page.type("#name", NAME)
        page.type("#message", MESSAGE)
        page.click("button[type=submit]")
        flash = wait_for("the flash message", lambda: page.find_all(".flash") and page.text(".flash"))
        if flash != f"Thank you for signing, {NAME}!":
            raise Failure(f"unexpected flash message {flash!r}")
        entry = page.texts("article p")[0]
        if entry != MESSAGE:
            raise Failure(f"the entry reads {entry!r}, not the literal text {MESSAGE!r}")
        check("signing stores the entry (HTML shown as text) and the next page shows a flash message")
        page.screenshot(f"{args.screenshots}/guestbook-1-signed.png")

        page.refresh()
        wait_for("the page again", lambda: page.find_all("form #name"))
        if page.find_all(".flash"):
            raise Failure("the flash message was shown twice")
        if page.property("#name", "value") != NAME:
            raise Failure(f"the name is not remembered: {page.property('#name', 'value')!r}")
        check("the flash shows once, and the form remembers the name (from the session)")

        reload_app(args)
        page.refresh()
        wait_for("the page after the reload", lambda: page.find_all("form #name"))
        if page.property("#name", "value") != NAME:
            raise Failure("the session did not survive the app's reload")
        check("the session survives a reload of the app")
        page.screenshot(f"{args.screenshots}/guestbook-2-remembered.png")

        entries_before = len(page.find_all("article"))
        page.script("document.querySelector('input[name=csrf]').value = '0'.repeat(64)")
        page.type("#message", "forged")
        page.click("button[type=submit]")
        body = wait_for("the refusal", lambda: "did not come from this site" in page.text("body") and page.text("body"))
        check(f"a post with a tampered CSRF token is refused: {body.splitlines()[0][:80]}")
        page.screenshot(f"{args.screenshots}/guestbook-3-forged.png")
        page.open(url)
        wait_for("the page", lambda: page.find_all("form #name"))
        if len(page.find_all("article")) != entries_before:
            raise Failure("the forged post was stored")
        check("and nothing was stored")
    finally:
        page.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--admin-url", required=True)
    parser.add_argument("--admin-token", required=True)
    parser.add_argument("--webdriver", required=True)
    parser.add_argument("--screenshots", required=True)
    parser.add_argument("--profiles", required=True)
    args = parser.parse_args()
    try:
        run(args)
    except Failure as failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        sys.exit(1)
    print("all guestbook browser checks passed")


if __name__ == "__main__":
    main()
