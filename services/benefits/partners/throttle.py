"""Failed ``/oauth/token`` attempts, counted per client id and per remote address (in process).

Past the limit within the window, a key answers 429 until its oldest failure leaves the window,
and the secret is not even hashed: guessing costs the guesser time, not the server CPU. Keys are
independent, so an attack on one client id never slows another client's logins. Attempts in
flight count as failures until they finish, so parallel guesses cannot overshoot the limit.
"""
from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field

MAX_KEYS = 100_000  # bound the memory random client ids could take; the oldest entries go first


@dataclass
class _Failures:
    times: deque = field(default_factory=deque)
    in_flight: int = 0


class FailureThrottle:
    def __init__(self, limit: int, window_s: float, clock=time.monotonic) -> None:
        self.limit, self.window_s, self.clock = max(int(limit), 1), float(window_s), clock
        self._keys: dict[str, _Failures] = {}

    def _entry(self, key: str, now: float) -> _Failures:
        entry = self._keys.get(key)
        if entry is None:
            if len(self._keys) >= MAX_KEYS:
                self._prune(now)
            entry = self._keys[key] = _Failures()
        while entry.times and now - entry.times[0] >= self.window_s:
            entry.times.popleft()
        return entry

    def _prune(self, now: float) -> None:
        for key in [k for k, e in self._keys.items()
                    if not e.in_flight and (not e.times or now - e.times[-1] >= self.window_s)]:
            del self._keys[key]
        while len(self._keys) >= MAX_KEYS:
            self._keys.pop(next(iter(self._keys)))

    def wait_s(self, key: str) -> float:
        """0.0 when an attempt may go ahead, else seconds until one may."""
        now = self.clock()
        entry = self._entry(key, now)
        if len(entry.times) + entry.in_flight < self.limit:
            return 0.0
        if not entry.times:  # only attempts in flight: they finish within a second
            return 1.0
        return max(self.window_s - (now - entry.times[0]), 0.001)

    def begin(self, key: str) -> None:
        self._entry(key, self.clock()).in_flight += 1

    def end(self, key: str, *, failed: bool) -> None:
        now = self.clock()
        entry = self._entry(key, now)
        entry.in_flight = max(entry.in_flight - 1, 0)
        if failed:
            entry.times.append(now)
        elif not entry.times and not entry.in_flight:
            self._keys.pop(key, None)

    @staticmethod
    def retry_after_header(wait_s: float) -> str:
        return str(max(1, math.ceil(wait_s)))
