"""The autoscale formula language, piece by piece: Azure's operator table and precedence, the
types and how results print them, the functions, the sample methods, the service variables
(with Shoal's slot-aware ones), aliases, stop() and comments."""

from __future__ import annotations

import pytest

from services.pool_manager.autoscale import Sample, compile_formula, evaluate
from tests.pool_manager.autoscale_support import NOW, at, history, ok, run, snapshot, values


@pytest.mark.parametrize(("expr", "result"), [
    # double op double
    ("7 + 2", "9"), ("7 - 2", "5"), ("7 * 2", "14"), ("7 / 2", "3.5"),
    # double * timeinterval, timeinterval * / double, timeinterval +- timeinterval
    ("2 * TimeInterval_Minute", "00:02:00"), ("TimeInterval_Hour * 1.5", "01:30:00"),
    ("TimeInterval_Day / 4", "06:00:00"), ("TimeInterval_Week + TimeInterval_Second", "7.00:00:01"),
    ("TimeInterval_Minute - TimeInterval_Hour", "-00:59:00"),
    ("TimeInterval_Millisecond * 1.5", "00:00:00.0015000"), ("TimeInterval_100ns", "00:00:00.0000001"),
    ("TimeInterval_Microsecond", "00:00:00.0000010"), ("TimeInterval_Zero", "00:00:00"),
    ("TimeInterval_Year", "365.00:00:00"),
    # doubleVec op double, doubleVec op doubleVec
    ("[1, 2, 3] + 1", "[2,3,4]"), ("[1, 2, 3] * [2, 2, 0.5]", "[2,4,1.5]"),
    ("[4, 2] / 2", "[2,1]"), ("[4, 2] - [1, 1]", "[3,1]"),
    # timestamps and intervals
    ('time("2016-10-13T19:00:00Z") + TimeInterval_Hour', "2016-10-13T20:00:00.000Z"),
    ('TimeInterval_Day + time("2016-10-13")', "2016-10-14T00:00:00.000Z"),
    ('time("2016-10-14") - time("2016-10-13T12:00:00Z")', "12:00:00"),
    # unary
    ("-3", "-3"), ("!0", "1"), ("!2", "0"), ("-TimeInterval_Minute", "-00:01:00"),
    # comparisons: double, string, timestamp, timeinterval
    ("1 < 2", "1"), ("2 <= 2", "1"), ("1 == 2", "0"), ("2 >= 3", "0"), ("3 > 2", "1"), ("1 != 2", "1"),
    ('"abc" < "abd"', "1"), ('"a" == "a"', "1"), ("requeue == \"requeue\"", "1"),
    ('time("2016-10-13") < time("2016-10-14")', "1"), ("TimeInterval_Hour > TimeInterval_Minute", "1"),
    # logical
    ("1 && 0", "0"), ("1 && 2", "1"), ("0 || 0", "0"), ("0 || 3", "1"),
    # precedence and associativity as in C
    ("1 + 2 * 3", "7"), ("(1 + 2) * 3", "9"), ("8 - 2 - 1", "5"), ("8 / 2 / 2", "2"),
    ("-2 * -3", "6"), ("1 + 2 > 2 && 3 < 4", "1"), ("0 && 1 || 1", "1"), ("1 || 0 && 0", "1"),
    ("1 < 2 == 1", "1"), ("0 ? 1 : 0 ? 2 : 3", "3"), ("1 ? 0 ? 5 : 6 : 7", "6"), ("!1 + 1", "1"),
    # numbers
    ("1.5e2", "150"), (".25", "0.25"), ("3.", "3"), ("0.1 + 0.2", "0.30000000000000004"),
])
def test_operators(expr: str, result: str) -> None:
    assert ok(f"r = {expr};")["r"] == result


def test_and_and_or_stop_at_the_first_operand_that_decides() -> None:
    # The right-hand side would fail (no samples), so only short-circuiting lets these pass.
    found = ok("a = 0 && $FailedTasks.GetSample(1); b = 1 || $FailedTasks.GetSample(1);"
               "c = 1 ? 4 : $FailedTasks.GetSample(1);")
    assert (found["a"], found["b"], found["c"]) == ("0", "1", "4")


@pytest.mark.parametrize(("expr", "result"), [
    ("avg(1, 2, [3, 4], 5)", "3"), ("len([1, 2], 3)", "3"), ("sum([1, 2], 3)", "6"),
    ("max(1, [7, 3])", "7"), ("min([4, -2], 1)", "-2"), ("range([4, -2], 1)", "6"),
    ("norm(3, 4)", "5"), ("std(2, 4, 4, 4, 5, 5, 7, 9)", "2.138089935299395"),
    ("lg(8)", "3"), ("ln(1)", "0"), ("log(1000)", "3"), ("log([10, 100])", "[1,2]"),
    ("lg(2, 4)", "[1,2]"), ("log(0)", "-Infinity"), ("ln(-1)", "NaN"),
    ("percentile([15, 20, 35, 40, 50], 40)", "20"), ("percentile([15, 20, 35, 40, 50], 100)", "50"),
    ("percentile([15, 20, 35, 40, 50], 0)", "15"), ("percentile([3, 1, 2], 50)", "2"),
    ("val([5, 6, 7], 0)", "5"), ("val([5, 6, 7], 2)", "7"), ("rand()", "0.25"),
    ("time()", "2016-10-13T19:18:47.805Z"), ('time("")', "2016-10-13T19:18:47.805Z"),
    # W3C-DTF in its forms, and RFC 1123
    ('time("2016")', "2016-01-01T00:00:00.000Z"), ('time("2016-10")', "2016-10-01T00:00:00.000Z"),
    ('time("2016-10-13T19:20+01:00")', "2016-10-13T18:20:00.000Z"),
    ('time("2016-10-13T19:20:30.45Z")', "2016-10-13T19:20:30.450Z"),
    ('time("Thu, 13 Oct 2016 19:18:47 GMT")', "2016-10-13T19:18:47.000Z"),
])
def test_functions(expr: str, result: str) -> None:
    assert ok(f"r = {expr};")["r"] == result


def test_timestamp_members() -> None:
    found = ok('t = time("2016-10-16T07:08:09Z"); y = t.year; mo = t.month; d = t.day; w = t.weekday;'
               "h = t.hour; mi = t.minute; s = t.second; monday = time().weekday;")
    assert [found[k] for k in ("y", "mo", "d", "w", "h", "mi", "s")] == [
        "2016", "10", "16", "0", "7", "8", "9"]  # 2016-10-16 was a Sunday: 0
    assert found["monday"] == "4"  # NOW is a Thursday


def test_service_variables_read_the_snapshot() -> None:
    found = ok("a = $CurrentDedicatedNodes; b = $CurrentDedicated; c = $UsableNodeCount;"
               "d = $TaskSlotsPerNode; e = $TargetDedicatedNodes; f = $NodeDeallocationOption;"
               "g = $CurrentLowPriorityNodes; h = $TargetLowPriorityNodes;",
               current_dedicated_nodes=5, usable_node_count=4, task_slots_per_node=8,
               target_dedicated_nodes=6, current_low_priority_nodes=1, target_low_priority_nodes=2)
    assert [found[k] for k in "abcdefgh"] == ["5", "5", "4", "8", "6", "requeue", "1", "2"]


def test_shoals_slot_variables_sit_beside_the_task_counts() -> None:
    # Two tasks pending, each needing 3 slots, on nodes of 4 slots: counting tasks asks for one
    # node too few; counting slots asks for enough.
    pending = {"$PendingTasks": history([2]), "$PendingTaskSlots": history([6]),
               "$ActiveTaskSlots": history([6]), "$RunningTaskSlots": history([0])}
    formula = ("tasks = max($PendingTasks.GetSample(1)); slots = max($PendingTaskSlots.GetSample(1));"
               "byTasks = tasks / $TaskSlotsPerNode; $TargetDedicatedNodes = slots / $TaskSlotsPerNode + 0.9;"
               "a = $ActiveTaskSlots.Count(); r = val($RunningTaskSlots.GetSample(1), 0);")
    r = run(formula, task_slots_per_node=4, histories=pending)
    assert values(r)["byTasks"] == "0.5"
    assert (values(r)["a"], values(r)["r"]) == ("1", "0")
    assert r.target_dedicated_nodes == 2


def test_a_sampled_variable_read_as_a_double_is_its_latest_sample() -> None:
    assert ok("x = $PendingTasks * 2;", histories={"$PendingTasks": history([5, 7])})["x"] == "14"


def test_sample_methods() -> None:
    h = {"$CPUPercent": history([10, 20, 30, 40, 50, 60], period=5.0)}
    found = ok("p = $CPUPercent.GetSamplePeriod(); n = $CPUPercent.Count(); b = $CPUPercent.HistoryBeginTime();"
               "last2 = $CPUPercent.GetSample(2); w = $CPUPercent.GetSample(TimeInterval_Second * 12);"
               "between = $CPUPercent.GetSample(TimeInterval_Second * 5, TimeInterval_Second * 15);"
               "since = $CPUPercent.GetSample(time() + TimeInterval_Second * -10);"
               "pct = $CPUPercent.GetSamplePercent(TimeInterval_Minute);"
               "pct2 = $CPUPercent.GetSamplePercent(TimeInterval_Second * 5, TimeInterval_Second * 15);"
               "full = $CPUPercent.GetSample(TimeInterval_Second * 10, 100);",
               sample_period=5.0, histories=h)
    assert found["p"] == "00:00:05"
    assert found["n"] == "6"
    assert found["b"] == "2016-10-13T19:18:22.805Z"
    assert found["last2"] == "[50,60]"  # oldest first
    assert found["w"] == "[40,50,60]"  # (now - 12 s, now]: the samples at -10 s, -5 s and now
    assert found["between"] == "[40,50]"  # (now - 15 s, now - 5 s]
    assert found["since"] == "[50,60]"  # (now - 10 s, now]
    assert found["pct"] == "50"  # 6 of the 12 a minute holds at one per 5 s
    assert found["pct2"] == "100"
    assert found["full"] == "[50,60]"


def test_samples_recorded_after_now_are_not_read() -> None:
    h = {"$ActiveTasks": [Sample(NOW - 30, 1.0), Sample(NOW, 2.0), Sample(NOW + 30, 99.0)]}
    found = ok("n = $ActiveTasks.Count(); last = $ActiveTasks.GetSample(1);", histories=h)
    assert (found["n"], found["last"]) == ("2", "[2]")


def test_a_snapshot_refuses_histories_of_variables_that_are_not_sampled() -> None:
    with pytest.raises(ValueError, match=r"\$CurrentDedicatedNodes"):
        snapshot(histories={"$CurrentDedicatedNodes": history([1])})
    with pytest.raises(ValueError, match="sample_period"):
        snapshot(sample_period=0)
    with pytest.raises(ValueError, match=r"the samples of \$PendingTasks are not oldest first"):
        snapshot(histories={"$PendingTasks": history([1, 2])[::-1]})


def test_the_target_is_truncated_and_stays_when_the_formula_does_not_set_it() -> None:
    assert run("$TargetDedicatedNodes = 2.9;").target_dedicated_nodes == 2
    unset = run("x = 1;", target_dedicated_nodes=7)
    assert unset.target_dedicated_nodes == 7
    assert unset.results == "$TargetDedicatedNodes=7;$NodeDeallocationOption=requeue;x=1"
    assert unset.target_low_priority_nodes is None


def test_the_full_name_wins_over_its_alias_and_reads_see_the_latest_value() -> None:
    r = run("$TargetDedicatedNodes = 3; $TargetDedicated = 9; a = $TargetDedicated; b = $TargetDedicatedNodes;")
    assert r.target_dedicated_nodes == 3
    assert r.results == ("$TargetDedicatedNodes=3;$TargetDedicated=9;$NodeDeallocationOption=requeue;"
                         "a=9;b=3")
    only_alias = run("$TargetDedicated = 4; a = $TargetDedicatedNodes;")
    assert (only_alias.target_dedicated_nodes, values(only_alias)["a"]) == (4, "4")
    only_full = run("$TargetDedicatedNodes = 5; a = $TargetDedicated;")
    assert values(only_full)["a"] == "5"
    low = run("$TargetLowPriority = 2;")
    assert low.target_low_priority_nodes == 2


@pytest.mark.parametrize("option", ["requeue", "terminate", "taskcompletion", "retaineddata"])
def test_every_node_deallocation_option(option: str) -> None:
    assert run(f"$NodeDeallocationOption = {option};").node_deallocation_option == option
    assert run(f'$NodeDeallocationOption = "{option}";').node_deallocation_option == option


def test_stop_ends_the_evaluation_keeping_what_was_set() -> None:
    r = run("$TargetDedicatedNodes = 3; x = 1; stop(); $TargetDedicatedNodes = 100; y = 2;")
    assert r.error is None
    assert r.target_dedicated_nodes == 3
    assert r.results == "$TargetDedicatedNodes=3;$NodeDeallocationOption=requeue;x=1"
    conditional = run("$TargetDedicatedNodes = 1; x = $CurrentDedicatedNodes > 5 ? stop() : 0;"
                      "$TargetDedicatedNodes = 2;", current_dedicated_nodes=9)
    assert conditional.target_dedicated_nodes == 1
    as_statement = run("$TargetDedicatedNodes = 1; $CurrentDedicatedNodes > 5 ? stop() : 0;"
                       "$TargetDedicatedNodes = 2;", current_dedicated_nodes=9)
    assert as_statement.target_dedicated_nodes == 1


def test_user_variables_with_and_without_dollar_are_different_names() -> None:
    found = ok("$x = 1; x = 2; y = $x + x;")
    assert (found["$x"], found["x"], found["y"]) == ("1", "2", "3")


def test_comments_line_breaks_and_semicolons() -> None:
    found = ok("// leading comment\n\n  a = 1 // trailing, without a semicolon before it\n;"
               "b = a +\n  2;;; // empty statements are nothing\nc = b // last statement, no semicolon")
    assert (found["a"], found["b"], found["c"]) == ("1", "3", "3")
    assert run("").results == "$TargetDedicatedNodes=2;$NodeDeallocationOption=requeue"
    assert run("// nothing but a comment").error is None


def test_a_compiled_formula_evaluates_again_on_new_snapshots() -> None:
    formula = compile_formula("$TargetDedicatedNodes = max($PendingTasks.GetSample(1));")
    assert formula.text.startswith("$TargetDedicatedNodes")
    counts = [evaluate(formula, snapshot(now=NOW + i, histories={"$PendingTasks": history([n], now=NOW + i)}))
              .target_dedicated_nodes for i, n in enumerate([0, 4, 2])]
    assert counts == [0, 4, 2]
    assert evaluate(formula, snapshot(now=at("2030-01-01T00:00:00"))).error is not None
