"""A client for `isol8 serve` (standard library HTTP): health, execute, and execute as a stream of events."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any

from isol8.errors import RemoteError
from isol8.frontends.wire import read_events


class Isol8Remote:
    def __init__(self, url: str, key: str | None = None, *, timeout: float = 600.0) -> None:
        self.url = url.rstrip("/")
        self.key = key
        self.timeout = timeout

    def _request(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            return urllib.request.urlopen(request, timeout=self.timeout)  # noqa: S310 - the user's server URL
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read()).get("error") or exc.reason
            except ValueError:
                message = exc.reason
            raise RemoteError(f"{self.url} answered {exc.code}: {message}", exc.code) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RemoteError(f"cannot reach the isol8 server at {self.url}: {reason}") from None

    def health(self) -> dict[str, Any]:
        with self._request("GET", "/health") as response:
            return dict(json.loads(response.read()))

    def execute(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST /execute: the result object (stdout, stderr, exitCode, timedOut, ...)."""
        with self._request("POST", "/execute", body) as response:
            return dict(json.loads(response.read()))

    def stream(self, body: Mapping[str, Any]) -> Iterator[dict[str, str]]:
        """POST /execute/stream: events {type: stdout|stderr|error|exit, data} as they come."""
        with self._request("POST", "/execute/stream", body) as response:
            yield from read_events(response)
