"""Dashboard sessions, pure: a token stands for a key until logout, idleness or eviction."""

from __future__ import annotations

from gateway.dashboard.sessions import Sessions
from tests.support import ManualClock


def test_a_token_stands_for_its_key_until_logout() -> None:
    s = Sessions(ManualClock())
    a = s.open("team-a", "key-a")
    assert len(a.token) >= 40 and s.get(a.token) is a and a.key == "key-a"
    assert s.get("") is None and s.get(a.token + "x") is None
    s.close(a.token)
    assert s.get(a.token) is None and len(s) == 0


def test_an_idle_session_ends_and_use_keeps_one_alive() -> None:
    clock = ManualClock()
    s = Sessions(clock, idle_limit=60)
    a, b = s.open("x", "k"), s.open("y", "k2")
    clock.advance(50)
    assert s.get(a.token) is a  # used: a new minute
    clock.advance(50)
    assert s.get(a.token) is a
    assert s.get(b.token) is None  # 100 s idle


def test_the_least_recently_used_goes_first_when_full() -> None:
    s = Sessions(ManualClock(), max_sessions=2)
    a, b = s.open("x", "k"), s.open("y", "k")
    s.get(a.token)
    c = s.open("z", "k")
    assert s.get(b.token) is None and s.get(a.token) is a and s.get(c.token) is c
