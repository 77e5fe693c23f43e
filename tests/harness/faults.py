"""API server faults a test injects into the emulator: the failures a controller must ride out in a real cluster.

``api.emulator.faults.add(Fault(...))`` makes the next ``count`` requests that match (HTTP method, a substring of
the path, watch or not) fail with ``status`` (409 Conflict, 410 Gone — for a watch, as the apiserver sends it: a
200 stream holding one ERROR event —, 429 with Retry-After, 500, 503, 504) or
wait ``delay`` seconds first (a slow apiserver; ``status=None``). Matching requests are answered before anything
is stored, as an apiserver that refuses a request does; ``Faults.hits`` counts what was injected per fault, so a
test can check that its fault actually happened.
"""

from __future__ import annotations

import asyncio
import json
import threading

import aiohttp.web
import attrs

REASONS = {409: 'Conflict', 410: 'Expired', 429: 'TooManyRequests', 500: 'InternalError',
           503: 'ServiceUnavailable', 504: 'Timeout'}


@attrs.define(kw_only=True)
class Fault:
    method: str  # GET (lists, gets and watches), POST, PATCH, PUT, DELETE
    path: str  # a substring of the request path, e.g. '/arenajobs/' or '/jobs'
    status: int | None = None  # None: only the delay
    count: int = 1
    delay: float = 0.0
    watch: bool | None = None  # True: only watch requests; False: never watches; None: both
    hits: int = 0

    def matches(self, request: aiohttp.web.BaseRequest) -> bool:
        watching = request.query.get('watch') in ('true', '1')
        return (self.hits < self.count and request.method == self.method and self.path in request.path
                and (self.watch is None or self.watch == watching))


@attrs.define
class Faults:
    """The emulator's fault plan (thread-safe: tests add faults from their own thread)."""

    _faults: list[Fault] = attrs.field(factory=list)
    _lock: threading.Lock = attrs.field(factory=threading.Lock)

    def add(self, *faults: Fault) -> None:
        with self._lock:
            self._faults += faults

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take(self, request: aiohttp.web.BaseRequest) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(request):
                    fault.hits += 1
                    return fault
        return None

    async def apply(self, request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse | None:
        """The injected response for this request, or None to serve it normally (after any delay)."""
        fault = self._take(request)
        if fault is None:
            return None
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.status is None:
            return None
        body = {'apiVersion': 'v1', 'kind': 'Status', 'status': 'Failure', 'code': fault.status,
                'reason': REASONS.get(fault.status, 'InternalError'), 'message': f'injected fault: {fault.status}'}
        if fault.status == 410 and request.query.get('watch') in ('true', '1'):
            # What an apiserver says to a watch from a compacted resourceVersion: 200, then one ERROR event.
            event = json.dumps({'type': 'ERROR', 'object': body}).encode() + b'\n'
            return aiohttp.web.Response(body=event, headers={'Content-Type': 'application/json;stream=watch'})
        headers = {'Retry-After': '1'} if fault.status == 429 else {}
        return aiohttp.web.json_response(body, status=fault.status, headers=headers)
