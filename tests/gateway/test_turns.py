"""Turns at a service (gateway.turns), on a real event loop with no network: an account's
calls beyond its places wait in order, free places go to waiting accounts in turn, a big call
takes several places and is not passed by small ones, and a caller that gives up leaves
nothing behind."""

from __future__ import annotations

import asyncio

from gateway.turns import CALL_BYTES, Turns, cost_of


class Calls:
    """Calls that hold their place until released, recording the order they got in."""

    def __init__(self, turns: Turns) -> None:
        self.turns = turns
        self.started: list[str] = []
        self._release: dict[str, asyncio.Event] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def call(self, name: str, account: str, cost: int = 1) -> asyncio.Task[None]:
        release = self._release[name] = asyncio.Event()

        async def run() -> None:
            async with self.turns.turn(account, cost):
                self.started.append(name)
                await release.wait()

        task = self._tasks[name] = asyncio.create_task(run())
        return task

    async def end(self, *names: str) -> None:
        for name in names:
            self._release[name].set()
            await self._tasks[name]
        await settle()


async def settle() -> None:
    """Let every ready task run until none is left that can move."""
    for _ in range(10):
        await asyncio.sleep(0)


async def test_an_account_past_its_places_waits_in_order_while_another_goes_at_once() -> None:
    calls = Calls(Turns(per_account=2, per_service=10))
    for name in ("a1", "a2", "a3", "a4"):
        calls.call(name, "a")
    await settle()
    assert calls.started == ["a1", "a2"]
    assert (calls.turns.at_service("a"), calls.turns.waiting("a")) == (2, 2)
    calls.call("b1", "b")
    await settle()
    assert calls.started == ["a1", "a2", "b1"]
    await calls.end("a2")
    assert calls.started[-1] == "a3"
    await calls.end("a1", "a3", "b1", "a4")
    assert calls.started == ["a1", "a2", "b1", "a3", "a4"]
    assert (calls.turns.at_service("a"), calls.turns.waiting("a")) == (0, 0)


async def test_a_full_service_hands_free_places_to_waiting_accounts_in_turn() -> None:
    calls = Calls(Turns(per_account=3, per_service=3))
    for name in ("x1", "x2", "x3"):
        calls.call(name, "x")
    await settle()
    for name, account in (("a1", "a"), ("a2", "a"), ("b1", "b"), ("b2", "b"), ("c1", "c")):
        calls.call(name, account)
    await settle()
    assert calls.started == ["x1", "x2", "x3"]
    # Each place freed goes to the next account waiting, one call each: a, b, c, a, b.
    for ending in ("x1", "x2", "x3", "a1", "b1"):
        await calls.end(ending)
    assert calls.started[3:] == ["a1", "b1", "c1", "a2", "b2"]


async def test_an_account_at_its_own_limit_does_not_hold_up_the_others() -> None:
    calls = Calls(Turns(per_account=1, per_service=2))
    calls.call("a1", "a")
    calls.call("b1", "b")
    calls.call("a2", "a")
    calls.call("c1", "c")
    await settle()
    assert calls.started == ["a1", "b1"]
    # b's place frees: a is first in line but already has its one place, so c goes.
    await calls.end("b1")
    assert calls.started == ["a1", "b1", "c1"]
    await calls.end("a1")
    assert calls.started[-1] == "a2"


async def test_a_big_call_takes_several_places_and_small_ones_do_not_pass_it() -> None:
    calls = Calls(Turns(per_account=4, per_service=4))
    calls.call("b-small", "b")
    calls.call("a-big", "a", cost=4)
    calls.call("c-small", "c")
    await settle()
    # The big call needs the whole service: c waits behind it although places are free.
    assert calls.started == ["b-small"]
    await calls.end("b-small")
    assert calls.started == ["b-small", "a-big"]
    await calls.end("a-big")
    assert calls.started[-1] == "c-small"


async def test_a_cost_is_never_more_than_an_account_may_have() -> None:
    calls = Calls(Turns(per_account=2, per_service=8))
    calls.call("huge", "a", cost=50)
    await settle()
    assert calls.started == ["huge"] and calls.turns.at_service("a") == 2
    await calls.end("huge")
    assert calls.turns.at_service("a") == 0


async def one_place_a2_and_b1_waiting() -> tuple[Calls, asyncio.Task[None]]:
    """A service of one place: a1 has it, a2 and then b1 wait; returns a2's task."""
    calls = Calls(Turns(per_account=1, per_service=1))
    calls.call("a1", "a")
    waiting = calls.call("a2", "a")
    calls.call("b1", "b")
    await settle()
    return calls, waiting


async def test_a_caller_that_gives_up_while_waiting_leaves_nothing_behind() -> None:
    calls, waiting = await one_place_a2_and_b1_waiting()
    waiting.cancel()
    await settle()
    assert calls.turns.waiting("a") == 0
    await calls.end("a1")
    assert calls.started == ["a1", "b1"]
    await calls.end("b1")
    assert calls.turns.at_service("a") == calls.turns.at_service("b") == 0


async def test_a_caller_cancelled_just_as_its_turn_came_gives_its_place_back() -> None:
    calls, second = await one_place_a2_and_b1_waiting()
    calls._release["a1"].set()
    await asyncio.sleep(0)  # a1 ends and hands its place to a2, which has not run yet
    assert calls._tasks["a1"].done() and not second.done()
    second.cancel()
    await settle()
    assert "a2" not in calls.started
    assert calls.started == ["a1", "b1"] and calls.turns.at_service("a") == 0


def test_a_request_costs_one_call_more_for_every_8_kib() -> None:
    assert cost_of(0) == 1
    assert cost_of(CALL_BYTES - 1) == 1
    assert cost_of(CALL_BYTES) == 2
    assert cost_of(3 * CALL_BYTES + 5) == 4
