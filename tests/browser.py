"""A real headless Chromium for the HTML report tests, driven over the DevTools protocol.

CI runs on a clean machine, so this module installs what it needs itself: Debian's
``chromium`` package (``apt-get install -y chromium``, after ``apt-get update`` if the
package is not known yet), once, under a file lock so two test processes never run apt
at the same time. No browser download of its own and no Python dependency: the protocol
runs over the pipes that ``--remote-debugging-pipe`` opens on file descriptors 3 (our
commands) and 4 (its answers and events), each message JSON ended by a NUL byte.

``load_page(url)`` opens a page in a fresh profile with networking off by flags, waits
for its load event, runs a JavaScript expression in it, and returns the expression's
value with every console error, uncaught exception and network request the page made.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

INSTALL_TIMEOUT = 900.0
PAGE_TIMEOUT = 60.0
LOCK = Path(tempfile.gettempdir()) / "rangeexpr-chromium-install.lock"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--remote-debugging-pipe",
)


def ensure_chromium() -> str:
    """The path of Debian's chromium, installed with apt-get (once) if missing."""
    found = shutil.which("chromium")
    if found:
        return found
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test process may be installing it
        found = shutil.which("chromium")
        if found:
            return found
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-qq", "chromium"]
        done = subprocess.run(
            install, env=env, capture_output=True, timeout=INSTALL_TIMEOUT, check=False
        )
        if done.returncode != 0:  # an empty or stale package list: update it, then retry
            subprocess.run(["apt-get", "update", "-qq"], env=env, check=True, timeout=600)
            subprocess.run(install, env=env, check=True, timeout=INSTALL_TIMEOUT)
    found = shutil.which("chromium")
    if not found:
        raise RuntimeError("apt-get installed chromium, but no `chromium` is on PATH")
    return found


@dataclass
class PageResult:
    """What loading a page showed: the check's value and everything that went wrong."""

    value: Any
    errors: list[str] = field(default_factory=list)  # console errors, uncaught exceptions
    requests: list[str] = field(default_factory=list)  # every URL the page asked for


class _DevTools:
    """One Chromium process and its protocol pipes: send commands, collect events."""

    def __init__(self, chromium: str, profile: Path) -> None:
        ours_read, its_write = os.pipe()  # its answers (its fd 4)
        its_read, ours_write = os.pipe()  # our commands (its fd 3)

        def child_fds() -> None:
            # Copies first, so that neither end is overwritten when it already is 3 or 4;
            # dup2 makes 3 and 4 inheritable, and close_fds=False keeps them (Python's
            # own descriptors are not inheritable, so nothing else leaks).
            read, write = os.dup(its_read), os.dup(its_write)
            os.dup2(read, 3)
            os.dup2(write, 4)

        self.proc = subprocess.Popen(
            [chromium, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=False,
            preexec_fn=child_fds,  # noqa: PLW1509 (only dup calls, before any thread starts)
        )
        os.close(its_read)
        os.close(its_write)
        self._out = os.fdopen(ours_write, "wb")
        self._in = os.fdopen(ours_read, "rb")
        self._next_id = 0
        self._messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.events: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        buffer = b""
        while chunk := self._in.read1(1 << 16):
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for message in messages:
                self._messages.put(json.loads(message))
        self._messages.put(None)  # the browser closed its end

    def _next(self, deadline: float) -> dict[str, Any]:
        try:
            message = self._messages.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise TimeoutError("Chromium did not answer in time") from None
        if message is None:
            raise RuntimeError(f"Chromium exited (code {self.proc.poll()})")
        return message

    def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Run one command; its result (events that arrive meanwhile are kept)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self._out.write(json.dumps(message).encode() + b"\0")
        self._out.flush()
        deadline = time.monotonic() + PAGE_TIMEOUT
        while True:
            reply = self._next(deadline)
            if reply.get("id") != self._next_id:
                self.events.append(reply)
                continue
            if "error" in reply:
                raise RuntimeError(f"{method}: {reply['error']}")
            result: dict[str, Any] = reply.get("result", {})
            return result

    def wait_for(self, method: str) -> dict[str, Any]:
        """The first event called ``method``, received before or after this call."""
        deadline = time.monotonic() + PAGE_TIMEOUT
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            event = self._next(deadline)
            self.events.append(event)
            if event.get("method") == method:
                return event

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._out.close()  # Chromium exits when its command pipe closes
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._in.close()


@contextlib.contextmanager
def _browser() -> Iterator[_DevTools]:
    chromium = ensure_chromium()
    with tempfile.TemporaryDirectory(prefix="rx-chromium-") as profile:
        tools = _DevTools(chromium, Path(profile))
        try:
            yield tools
        finally:
            tools.close()


def load_page(url: str, check: str) -> PageResult:
    """Load ``url`` and return the value of the JavaScript expression ``check``.

    ``check`` may be a promise; it runs after the load event. Console errors (and
    ``console.assert`` failures), uncaught exceptions and log entries of level error
    are collected, and so is the URL of every request the page made.
    """
    with _browser() as tools:
        target = tools.send("Target.createTarget", url="about:blank")["targetId"]
        session = tools.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            tools.send(f"{domain}.enable", session)
        tools.send("Page.navigate", session, url=url)
        tools.wait_for("Page.loadEventFired")
        reply = tools.send(
            "Runtime.evaluate",
            session,
            expression=check,
            awaitPromise=True,
            returnByValue=True,
        )
        result = PageResult(reply.get("result", {}).get("value"))
        if "exceptionDetails" in reply:
            result.errors.append(f"the check failed: {reply['exceptionDetails']}")
        for event in tools.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                args = params.get("args", [])
                result.errors.append(" ".join(str(a.get("value", a)) for a in args))
            elif method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                exception = details.get("exception", {})
                result.errors.append(exception.get("description") or details.get("text", ""))
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                result.errors.append(str(params["entry"].get("text")))
            elif method == "Network.requestWillBeSent":
                result.requests.append(params.get("request", {}).get("url", ""))
        return result
