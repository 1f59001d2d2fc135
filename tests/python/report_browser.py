#!/usr/bin/env python3
"""tests/python/report_browser.py: open an HTML page in real headless Chromium and say what a
browser saw: console messages, uncaught exceptions, log entries (CSP violations land there), every
network request, the text of each element with a data-key attribute, how many images decoded, and
a full-page PNG screenshot.

Talks to Chromium over the DevTools protocol on a pipe (--remote-debugging-pipe: commands on fd 3,
replies and events on fd 4, each a JSON object ended by a NUL byte), so it needs Python's standard
library only. The assertions are the caller's (tests/test_report_browser.cpp); this only records.

  report_browser.py --chromium /usr/bin/chromium --html page.html --screenshot out.png \
      --result out.json [--width 1280] [--clip-y 0 --clip-height 1400]
"""
import argparse
import base64
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time


class Browser:
    def __init__(self, chromium, timeout):
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="octa-chromium-")
        to_child_r, self.to_child = os.pipe()
        self.from_child, from_child_w = os.pipe()

        def fds():  # in the child: the pipe ends on the fds Chromium expects
            os.dup2(to_child_r, 3)
            os.dup2(from_child_w, 4)

        self.log = open(os.path.join(self.profile, "chromium.log"), "wb")
        self.proc = subprocess.Popen(
            [chromium, "--headless", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-default-apps", "--mute-audio", "--hide-scrollbars",
             "--user-data-dir=" + self.profile, "about:blank"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
            preexec_fn=fds, pass_fds=(3, 4))
        os.close(to_child_r)
        os.close(from_child_w)
        self.buffer = b""
        self.next_id = 0
        self.events = []

    def close(self):
        try:
            self.proc.kill()
            self.proc.wait(timeout=10)
        except Exception:
            pass
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def _read_message(self, deadline):
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from Chromium in time")
            ready, _, _ = select.select([self.from_child], [], [], left)
            if ready:
                chunk = os.read(self.from_child, 1 << 20)
                if not chunk:
                    raise RuntimeError("Chromium closed the DevTools pipe (exit status %s)" %
                                       self.proc.poll())
                self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method, params=None, session=None):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.to_child, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            m = self._read_message(deadline)
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError("%s: %s" % (method, m["error"]))
                return m.get("result", {})
            self.events.append(m)

    def wait_for(self, method, deadline):
        for i, e in enumerate(self.events):
            if e.get("method") == method:
                return self.events.pop(i)
        while True:
            m = self._read_message(deadline)
            self.events.append(m)
            if m.get("method") == method:
                return m


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chromium", required=True)
    ap.add_argument("--html", required=True)
    ap.add_argument("--screenshot", required=True)
    ap.add_argument("--result", required=True)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--clip-y", type=int, default=0)
    ap.add_argument("--clip-height", type=int, default=0, help="0: the whole page")
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args()

    b = Browser(args.chromium, args.timeout)
    try:
        target = b.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        s = b.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            b.call(domain + ".enable", {}, s)
        b.call("Emulation.setDeviceMetricsOverride",
               {"width": args.width, "height": 900, "deviceScaleFactor": 1, "mobile": False}, s)
        url = "file://" + os.path.abspath(args.html)
        b.call("Page.navigate", {"url": url}, s)
        b.wait_for("Page.loadEventFired", time.monotonic() + args.timeout)
        time.sleep(0.5)  # let late console messages and requests arrive

        def evaluate(expression):
            r = b.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, s)
            if "exceptionDetails" in r:
                raise RuntimeError("evaluating %s: %s" % (expression, r["exceptionDetails"]))
            return r["result"].get("value")

        keys = evaluate("Array.from(document.querySelectorAll('[data-key]'))"
                        ".map(e => [e.getAttribute('data-key'), e.textContent])")
        images = evaluate("[document.images.length, Array.from(document.images)"
                          ".filter(i => i.complete && i.naturalWidth > 0).length]")
        height = evaluate("Math.ceil(document.documentElement.scrollHeight)")
        title = evaluate("document.title")
        clip_h = args.clip_height or height
        shot = b.call("Page.captureScreenshot",
                      {"format": "png", "captureBeyondViewport": True,
                       "clip": {"x": 0, "y": args.clip_y, "width": args.width,
                                "height": clip_h, "scale": 1}}, s)
        with open(args.screenshot, "wb") as f:
            f.write(base64.b64decode(shot["data"]))

        console, exceptions, log, requests = [], [], [], []
        for e in b.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.consoleAPICalled":
                text = " ".join(str(a.get("value", a.get("description", ""))) for a in p["args"])
                console.append({"type": p.get("type"), "text": text})
            elif m == "Runtime.exceptionThrown":
                exceptions.append(p["exceptionDetails"].get("text", ""))
            elif m == "Log.entryAdded":
                log.append({"level": p["entry"].get("level"), "source": p["entry"].get("source"),
                            "text": p["entry"].get("text")})
            elif m == "Network.requestWillBeSent":
                requests.append(p["request"]["url"])
        result = {"url": url, "title": title, "console": console, "exceptions": exceptions,
                  "log": log, "requests": requests, "keys": keys, "images_total": images[0],
                  "images_loaded": images[1], "height": height, "screenshot": args.screenshot}
        with open(args.result, "w") as f:
            json.dump(result, f, indent=1)
    finally:
        b.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
