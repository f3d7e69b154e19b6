"""Headless Chromium driven over the DevTools protocol, for the tests of the pages.

Chromium's one-shot flags (``--dump-dom``, ``--screenshot``) dump at the load event and
cannot sign in, type or wait; the tests therefore speak the DevTools protocol themselves
(aiohttp's WebSocket client): :func:`browser` starts Chromium with a throwaway profile and
gives one tab as a :class:`Page`.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

from tests.integration.harness import wait_for

CHROMIUM = shutil.which("chromium")
SKIP_REASON = "no chromium on PATH: install Debian's chromium package"

# Without the background-networking flags Chromium's own connections are refused on a
# closed network and it stalls; the others keep a throwaway profile quiet.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
]

# DevTools key descriptions for the keys the keyboard tests press.
KEYS = {
    "Tab": {"key": "Tab", "code": "Tab", "windowsVirtualKeyCode": 9},
    "Enter": {"key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13, "text": "\r"},
    " ": {"key": " ", "code": "Space", "windowsVirtualKeyCode": 32, "text": " "},
}


class Page:
    """One browser tab (or the browser itself), spoken to over the DevTools WebSocket."""

    def __init__(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        session: str = "",
        ids: Iterator[int] | None = None,
    ) -> None:
        self.ws = ws
        self.session = session
        self.errors: list[str] = []
        self._ids = ids if ids is not None else itertools.count(1)

    async def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        ident = next(self._ids)
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if self.session:
            message["sessionId"] = self.session
        await self.ws.send_str(json.dumps(message))
        while True:
            received = await asyncio.wait_for(self.ws.receive(), 30)
            if received.type != aiohttp.WSMsgType.TEXT:
                msg = f"{method}: the DevTools connection closed ({received.type!r})"
                raise AssertionError(msg)
            reply = json.loads(received.data)
            if reply.get("id") == ident:
                if "error" in reply:
                    msg = f"{method}: {reply['error']}"
                    raise AssertionError(msg)
                result: dict[str, Any] = reply["result"]
                return result
            self._event(reply)

    def _event(self, event: dict[str, Any]) -> None:
        # Script errors and console errors (a blocked resource or script shows up here too).
        params = event.get("params", {})
        if event.get("method") == "Runtime.exceptionThrown":
            self.errors.append(json.dumps(params.get("exceptionDetails", {}))[:500])
        if event.get("method") == "Log.entryAdded" and params["entry"]["level"] == "error":
            self.errors.append(params["entry"].get("text", ""))
        if event.get("method") == "Runtime.consoleAPICalled" and params["type"] == "error":
            self.errors.append(json.dumps(params.get("args", []))[:500])

    async def evaluate(self, expression: str) -> Any:
        reply = await self.call(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}
        )
        if "exceptionDetails" in reply:  # a script error in the expression is a failure
            msg = f"{expression[:80]}: {json.dumps(reply['exceptionDetails'])[:300]}"
            raise AssertionError(msg)
        return reply["result"].get("value")

    async def until(self, what: str, expression: str, timeout: float) -> Any:
        """Evaluate ``expression`` until it is truthy (polled with a deadline)."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            try:
                value = await self.evaluate(expression)
            except AssertionError:  # the page is between two documents: ask again
                value = None
            if value:
                return value
            await asyncio.sleep(0.2)
        msg = f"timed out after {timeout:.0f}s waiting for {what} (last: {value!r})"
        raise AssertionError(msg)

    async def goto(self, url: str, timeout: float = 20) -> None:
        """Open ``url`` and wait until the document it ends at (after redirects) is loaded."""
        await self.call("Page.navigate", {"url": url})
        await self.loaded(timeout)

    async def loaded(self, timeout: float = 20, path: str = "") -> str:
        """Wait for a loaded document (whose path starts with ``path``); its location."""
        check = (
            "document.readyState === 'complete' && location.href !== 'about:blank' && "
            f"location.pathname.startsWith({json.dumps(path)}) && location.href"
        )
        found: str = await self.until(f"a page at {path or 'any path'}", check, timeout)
        return found

    async def press(self, key: str) -> None:
        """Press and release one key (Tab, Enter or space) as a keyboard would."""
        described = KEYS[key]
        await self.call("Input.dispatchKeyEvent", {"type": "keyDown", **described})
        up = {k: v for k, v in described.items() if k != "text"}
        await self.call("Input.dispatchKeyEvent", {"type": "keyUp", **up})

    async def type_text(self, text: str) -> None:
        """Type into the focused field."""
        await self.call("Input.insertText", {"text": text})

    async def viewport(self, width: int, height: int, *, mobile: bool) -> None:
        scale = 2 if mobile else 1
        await self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": scale, "mobile": mobile},
        )

    async def screenshot(self, path: Path) -> None:
        """Save the whole page (not only the part in view) as a PNG."""
        size = (await self.call("Page.getLayoutMetrics"))["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        shot = await self.call(
            "Page.captureScreenshot",
            {"format": "png", "clip": clip, "captureBeyondViewport": True},
        )
        path.write_bytes(base64.b64decode(shot["data"]))


def devtools_port(profile: Path, proc: subprocess.Popen[bytes]) -> str:
    """The browser's DevTools WebSocket path, from the file Chromium writes in its profile."""
    active = profile / "DevToolsActivePort"

    def ready() -> str | None:
        assert proc.poll() is None, f"chromium exited with {proc.returncode}"
        lines = active.read_text().split() if active.exists() else []
        return f"{lines[0]}{lines[1]}" if len(lines) >= 2 else None

    port_and_path = wait_for("chromium's DevTools port", ready, timeout=20)
    port, path = port_and_path.split("/", 1)
    return f"ws://127.0.0.1:{port}/{path}"


@asynccontextmanager
async def browser(downloads: Path | None = None) -> AsyncIterator[tuple[Page, Page]]:
    """A fresh Chromium (its own profile: no cookie from another test) and one tab in it:
    ``(browser, tab)``. Downloads, when allowed, land in ``downloads``."""
    assert CHROMIUM is not None
    # A renderer may still be writing to the profile as the browser exits.
    with tempfile.TemporaryDirectory(prefix="chromium-", ignore_cleanup_errors=True) as profile:
        proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            endpoint = devtools_port(Path(profile), proc)
            async with (
                aiohttp.ClientSession() as http,
                http.ws_connect(endpoint, max_msg_size=0) as ws,
            ):
                top = Page(ws)
                if downloads is not None:
                    await top.call(
                        "Browser.setDownloadBehavior",
                        {"behavior": "allow", "downloadPath": str(downloads)},
                    )
                target = await top.call("Target.createTarget", {"url": "about:blank"})
                attached = await top.call(
                    "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
                )
                tab = Page(ws, attached["sessionId"], top._ids)
                for domain in ("Runtime", "Log", "Page"):
                    await tab.call(f"{domain}.enable")
                try:
                    yield top, tab
                finally:
                    # Not awaited: Chromium may close the connection before it answers.
                    await ws.send_str(json.dumps({"id": 0, "method": "Browser.close"}))
        finally:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
