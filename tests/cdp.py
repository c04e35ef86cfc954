"""Drive the distribution's headless Chromium over the DevTools protocol on a pipe (no downloads, no sockets).

`--remote-debugging-pipe` makes Chromium read NUL-terminated JSON commands on
fd 3 and write replies and events on fd 4, so the test needs neither a
websocket library nor a browser fetched at run time.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
         "--disable-default-apps", "--mute-audio", "--autoplay-policy=no-user-gesture-required")


class BrowserError(RuntimeError):
    pass


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _above_nine(fd: int) -> int:
    high = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return high


class Browser:
    """One headless Chromium with one page; `call` sends a command to that page and waits for its reply."""

    def __init__(self, executable: str, profile: Path, width: int = 1400, height: int = 950):
        command_read, self._command_write = os.pipe()
        self._reply_read, reply_write = os.pipe()
        # Above 9, so that moving one to fd 3 or 4 can never overwrite the other.
        command_read, reply_write = (_above_nine(fd) for fd in (command_read, reply_write))
        # bash (dash reads only one-digit fds) moves the pipes to fds 3 and 4 and execs Chromium: no Python
        # code runs in a forked child (lance, loaded in this process, is not fork-safe).
        move = f'exec "$0" "$@" 3<&{command_read} 4>&{reply_write}'
        self.process = subprocess.Popen(
            ["/bin/bash", "-c", move, executable, *FLAGS, "--remote-debugging-pipe", f"--user-data-dir={profile}",
             f"--window-size={width},{height}", "about:blank"],
            pass_fds=(command_read, reply_write), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        os.close(command_read)
        os.close(reply_write)
        self._buffer = b""
        self._next_id = 0
        self.session = None
        page = next(t for t in self.call("Target.getTargets")["targetInfos"] if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", targetId=page["targetId"], flatten=True)["sessionId"]
        self.call("Page.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def call(self, method: str, timeout_s: float = 60.0, **params) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if self.session:
            message["sessionId"] = self.session
        os.write(self._command_write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout_s
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._reply_read], [], [], left)[0]:
                raise BrowserError("no reply from chromium in time")
            chunk = os.read(self._reply_read, 1 << 20)
            if not chunk:
                raise BrowserError(f"chromium closed the pipe (exit code {self.process.poll()})")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def evaluate(self, expression: str):
        """The value of a JS expression (promises awaited); JS exceptions raise BrowserError."""
        result = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            error = result["exceptionDetails"].get("exception", {}).get("description")
            raise BrowserError(f"{expression[:80]}: {error}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float = 60.0, what: str = ""):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.2)
        raise BrowserError(f"timed out waiting for {what or expression}")

    def navigate(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def click(self, x: float, y: float) -> None:
        """A real mouse click (move, press, release) at page coordinates."""
        self.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        self.session = None  # Browser.close goes to the browser, not the page
        try:
            self.call("Browser.close", timeout_s=10)
        except (BrowserError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        os.close(self._command_write)
        os.close(self._reply_read)
