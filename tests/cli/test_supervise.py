"""The restart policy of `shoal up`, on a clock the test moves."""

from __future__ import annotations

from shoal.supervise import Restarts


def test_first_restart_at_once_then_doubling_to_the_bound() -> None:
    r = Restarts(first=1, most=4, stable=60)
    waits = []
    now = 0.0
    for _ in range(5):  # it never comes up
        due = r.died("s", now)
        waits.append(due - now)
        assert r.due(due - 0.001) == [] or due == now
        assert r.due(due) == ["s"] and not r.waiting("s")
        now = due + 0.5  # the attempt failed half a second later
    assert waits == [0, 1, 2, 4, 4]
    assert r.attempts["s"] == 5


def test_a_service_that_stayed_up_restarts_at_once_again() -> None:
    r = Restarts(first=1, most=30, stable=60)
    assert r.died("s", 0) == 0 and r.due(0) == ["s"]
    r.started("s", 1)
    assert r.died("s", 10) == 11  # up 9 s only: the next delay
    assert r.due(11) == ["s"]
    r.started("s", 12)
    assert r.died("s", 100) == 100  # up 88 s: at once, counted afresh
    assert r.due(100) == ["s"] and r.attempts["s"] == 1


def test_services_are_counted_apart() -> None:
    r = Restarts()
    r.died("a", 0)
    r.died("b", 0)
    assert sorted(r.due(0)) == ["a", "b"]
    r.died("a", 1)
    assert r.waiting("a") and not r.waiting("b")
