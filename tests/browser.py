"""Open a page in headless Chromium over the Chrome DevTools protocol (for tests).

Usage (from a test that has the ``chromium_path`` fixture)::

    from browser import open_page
    result = open_page(chromium_path, "file:///.../report.html", screenshot=Path("shot.png"))
    assert result.errors == [] and result.images["broken"] == []

Chromium is started with ``--remote-debugging-port=0``; it writes the port it
picked to ``DevToolsActivePort`` in its profile folder. We talk to the page's
websocket with ``websocket-client``: enable the Runtime, Log and Page domains,
navigate, wait for the load event, check every ``<img>`` in the page, collect
console errors and uncaught exceptions, and capture a full-page screenshot.
"""

from __future__ import annotations

import base64
import json
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
]

# Runs in the page: every <img>, and which of them failed to load.
CHECK_IMAGES = """(() => {
  const imgs = Array.from(document.images);
  return {
    total: imgs.length,
    broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0))
                .map(i => i.alt || i.src.slice(0, 60)),
  };
})()"""


@dataclass
class PageResult:
    title: str = ""
    images: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    size: tuple[int, int] = (0, 0)


class _Session:
    """One websocket to a page target: numbered commands and buffered events."""

    def __init__(self, ws_url: str, timeout: float):
        import websocket  # websocket-client

        self.ws = websocket.create_connection(ws_url, timeout=timeout, suppress_origin=True)
        self.events: list[dict[str, Any]] = []
        self.next_id = 0

    def _read(self) -> dict[str, Any]:
        msg = json.loads(self.ws.recv())
        if "method" in msg:
            self.events.append(msg)
        return msg

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = self._read()
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def wait_for(self, method: str, deadline: float) -> dict[str, Any]:
        seen = 0
        while time.monotonic() < deadline:
            for ev in self.events[seen:]:
                if ev["method"] == method:
                    return ev
            seen = len(self.events)
            self._read()
        raise TimeoutError(f"no {method} event")

    def close(self) -> None:
        self.ws.close()


def _errors(events: list[dict[str, Any]]) -> list[str]:
    out = []
    for ev in events:
        p = ev.get("params", {})
        if ev["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in p["args"])
            out.append(f"console.{p['type']}: {args}")
        elif ev["method"] == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            out.append(f"exception: {d.get('exception', {}).get('description', d.get('text'))}")
        elif ev["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            e = p["entry"]
            out.append(f"log ({e.get('source')}): {e.get('text')} {e.get('url', '')}".strip())
    return out


def open_page(
    chromium: str,
    url: str,
    *,
    screenshot: Path | None = None,
    profile: Path | None = None,
    width: int = 1280,
    height: int = 900,
    timeout: float = 180.0,
) -> PageResult:
    """Load ``url`` in headless Chromium and report what a person would have seen.

    Parameters
    ----------
    chromium : str
        Path of the Chromium binary.
    url : str
        Page to load (``file://`` URLs work).
    screenshot : Path, optional
        Where to save a full-page PNG screenshot.
    profile : Path, optional
        Chromium's user-data-dir (a fresh temporary folder by default).
    width, height : int
        Window size in CSS pixels.
    timeout : float
        Seconds for the whole visit.
    """
    tmp = None
    if profile is None:
        tmp = tempfile.TemporaryDirectory(prefix="chromium-profile-")
        profile = Path(tmp.name)
    profile.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    # Chromium's log goes to a file: a pipe nobody reads could fill and block it.
    log = open(profile / "chromium.log", "wb")
    proc = subprocess.Popen(
        [chromium, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
         "about:blank"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    session = None
    try:
        port_file = profile / "DevToolsActivePort"
        while not port_file.is_file() or len(port_file.read_text().splitlines()) < 2:
            if proc.poll() is not None:
                log.flush()
                err = Path(log.name).read_text(errors="replace")[-2000:]
                raise RuntimeError(f"chromium exited with {proc.returncode}: {err}")
            if time.monotonic() > deadline:
                raise TimeoutError("chromium did not write DevToolsActivePort")
            time.sleep(0.05)
        port = int(port_file.read_text().splitlines()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=timeout) as r:
            targets = json.load(r)
        page = next(t for t in targets if t.get("type") == "page")
        session = _Session(page["webSocketDebuggerUrl"], timeout)
        for domain in ("Runtime", "Log", "Page"):
            session.send(f"{domain}.enable")
        session.send("Page.navigate", url=url)
        session.wait_for("Page.loadEventFired", deadline)
        result = PageResult()
        result.images = session.send(
            "Runtime.evaluate", expression=CHECK_IMAGES, returnByValue=True
        )["result"]["value"]
        result.title = session.send(
            "Runtime.evaluate", expression="document.title", returnByValue=True
        )["result"]["value"]
        metrics = session.send("Page.getLayoutMetrics")
        content = metrics.get("cssContentSize") or metrics["contentSize"]
        result.size = (int(content["width"]), int(content["height"]))
        if screenshot is not None:
            shot = session.send(
                "Page.captureScreenshot",
                format="png",
                captureBeyondViewport=True,
                clip={"x": 0, "y": 0, "width": result.size[0], "height": result.size[1],
                      "scale": 1},
            )
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            screenshot.write_bytes(base64.b64decode(shot["data"]))
        result.errors = _errors(session.events)
        return result
    finally:
        if session is not None:
            try:
                session.send("Browser.close")
            except Exception:
                pass
            session.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        if tmp is not None:
            tmp.cleanup()
