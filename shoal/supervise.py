"""When `shoal up` restarts a service that died: at once the first time, then after a delay
that doubles up to a bound, back to at once when the service had stayed up a while (so a
crash a day restarts at once; a service that cannot start is not restarted in a tight loop).
Pure: the caller reads the clock and does the restarting."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Restarts:
    first: float = 1.0
    """Seconds before the second attempt in a row."""
    most: float = 30.0
    """The longest wait between attempts."""
    stable: float = 60.0
    """Seconds up after which a death counts as the first again."""
    _next_delay: dict[str, float] = field(default_factory=dict)
    _due: dict[str, float] = field(default_factory=dict)
    _up_since: dict[str, float] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    """Restarts tried per service since it last stayed up."""

    def died(self, service: str, now: float) -> float:
        """The service is down (it died, or a restart failed): when to try it next."""
        up_since = self._up_since.pop(service, None)
        if up_since is not None and now - up_since >= self.stable:
            self._next_delay.pop(service, None)
            self.attempts.pop(service, None)
        delay = self._next_delay.get(service, 0.0)
        self._next_delay[service] = min(max(delay * 2, self.first), self.most)
        self._due[service] = now + delay
        return now + delay

    def due(self, now: float) -> list[str]:
        """Services whose next attempt is now, each counted as attempted."""
        ready = [s for s, t in self._due.items() if t <= now]
        for s in ready:
            del self._due[s]
            self.attempts[s] = self.attempts.get(s, 0) + 1
        return ready

    def waiting(self, service: str) -> bool:
        return service in self._due

    def started(self, service: str, now: float) -> None:
        self._up_since[service] = now
