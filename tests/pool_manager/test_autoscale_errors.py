"""The autoscale evaluator's errors: each fault of a formula gives Azure's AutoScaleRun error
(code, message, and values whose first is "Message": "Line L, Col C: ..."), no target, and never
an exception; and no formula, however built, can make an evaluation run away."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.pool_manager.autoscale import (
    MAX_BYTES,
    MAX_DEPTH,
    MAX_STATEMENTS,
    ErrorCode,
    FormulaError,
    compile_formula,
)
from tests.pool_manager.autoscale_support import history, message, ok, run, values


def error_of(text: str, **kw: object) -> tuple[str, str, dict[str, str]]:
    r = run(text, **kw)  # type: ignore[arg-type]
    assert r.error is not None, r.results
    assert r.target_dedicated_nodes is None and r.node_deallocation_option is None
    return r.error.code, message(r), dict(r.error.values)


# Compile-time: the formula cannot run at all


@pytest.mark.parametrize(("formula", "detail", "variable"), [
    ("$TargetDedicatedNodes = $PendingTask.GetSample(1);", "Line 1, Col 25: unknown variable $PendingTask", "$PendingTask"),
    ("x = 1;\n$TargetDedicatedNodes = y + x;", "Line 2, Col 25: unknown variable y", "y"),
    # A variable exists from the statement that assigns it on, not before.
    ("x = y; y = 1;", "Line 1, Col 5: unknown variable y", "y"),
    ("x = x + 1;", "Line 1, Col 5: unknown variable x", "x"),
    # Service variables are case-sensitive, as Azure spells them.
    ("x = $pendingtasks.GetSample(1);", "Line 1, Col 5: unknown variable $pendingtasks", "$pendingtasks"),
])
def test_an_unknown_variable_is_refused_before_anything_runs(formula: str, detail: str, variable: str) -> None:
    code, text, found = error_of(formula)
    assert (code, text, found["Variable"]) == ("InvalidAutoScaleFormula", detail, variable)
    with pytest.raises(FormulaError) as caught:
        compile_formula(formula)
    assert caught.value.code == ErrorCode.INVALID_FORMULA
    assert caught.value.error().message == "The autoscale formula is not valid"


@pytest.mark.parametrize(("formula", "detail"), [
    ("x = average(1, 2);", "Line 1, Col 5: unknown function average()"),
    ("x = avg();", "Line 1, Col 5: avg() takes 1 or more arguments, got 0"),
    ("x = val([1], 0, 2);", "Line 1, Col 5: val() takes 2 arguments, got 3"),
    ("x = time(\"a\", \"b\");", "Line 1, Col 5: time() takes 0 to 1 arguments, got 2"),
    ("x = $CPUPercent.GetSamples(1);", "Line 1, Col 17: unknown method GetSamples() of $CPUPercent"),
    ("x = $CPUPercent.Count(1);", "Line 1, Col 17: $CPUPercent.Count() takes 0 arguments, got 1"),
    ("x = $CPUPercent.GetSample();", "Line 1, Col 17: $CPUPercent.GetSample() takes 1 to 3 arguments, got 0"),
    ("x = $CurrentDedicatedNodes.GetSample(1);",
     "Line 1, Col 28: GetSample() is a method of the sampled variables ($CPUPercent, $PendingTasks...) only"),
    ("x = time().hours;", "Line 1, Col 12: unknown member .hours (a timestamp has year, month, day, weekday, hour, minute, second)"),
    ("$PendingTasks = 3;", "Line 1, Col 1: $PendingTasks is read-only: it cannot be assigned"),
    ("x = 1;\n$CurrentDedicatedNodes = 3;", "Line 2, Col 1: $CurrentDedicatedNodes is read-only: it cannot be assigned"),
    ("TimeInterval_Minute = 30;", "Line 1, Col 1: TimeInterval_Minute is read-only: it cannot be assigned"),
    ("x = 1 +;", "Line 1, Col 8: unexpected ';'"),
    ("x = 5 % 2;", "Line 1, Col 7: unexpected character '%'"),
    ("x = (1 + 2;", "Line 1, Col 11: unexpected ';'"),
    ("$TargetDedicatedNodes = ", "Line 1, Col 23: the formula ends in the middle of a statement"),
    ("x = 'single quotes';", "Line 1, Col 5: unexpected character \"'\""),
    ("// only a comment\nx 1;", "Line 2, Col 3: unexpected '1'"),
    ("$TargetDedicatedNodes == 5;", "Line 1, Col 1: the statement assigns nothing (an assignment is NAME = value)"),
    ("x = 1; avg(x);", "Line 1, Col 8: the statement assigns nothing (an assignment is NAME = value)"),
])
def test_a_formula_that_does_not_compile_says_where_and_why(formula: str, detail: str) -> None:
    code, text, _ = error_of(formula)
    assert (code, text) == ("InvalidAutoScaleFormula", detail)


def test_at_most_100_statements_empty_ones_not_counted() -> None:
    hundred = ";\n".join(f"v{i} = {i}" for i in range(MAX_STATEMENTS)) + ";;\n;\n"
    assert MAX_STATEMENTS == 100
    assert ok(hundred)["v99"] == "99"
    code, text, found = error_of(hundred + "v100 = 100;")
    assert code == "InvalidAutoScaleFormula"
    assert text == "Line 102, Col 1: the formula has 101 statements; at most 100 are allowed"
    assert (found["Statements"], found["Limit"]) == ("101", "100")


def test_at_most_8_kb_counted_in_bytes_comments_included() -> None:
    assert MAX_BYTES == 8192
    statement = "$TargetDedicatedNodes = 1; // "
    fits = statement + "x" * (MAX_BYTES - len(statement))
    assert len(fits.encode()) == 8192
    assert run(fits).target_dedicated_nodes == 1
    code, text, found = error_of(fits + "x")
    assert (code, text, found["Size"]) == (
        "InvalidAutoScaleFormula", "the formula is 8193 bytes; at most 8192 are allowed", "8193")
    # Characters beyond ASCII count with their UTF-8 bytes.
    wide = statement + "é" * ((MAX_BYTES - len(statement)) // 2 + 1)
    assert len(wide) < MAX_BYTES < len(wide.encode())
    assert error_of(wide)[0] == "InvalidAutoScaleFormula"


@pytest.mark.parametrize("formula", [
    "x = " + "(" * 4000 + "1" + ")" * 4000 + ";",  # parentheses alone add no depth
    "x = " + "-" * (MAX_DEPTH - 1) + "1;",
])
def test_deep_but_allowed_expressions_evaluate(formula: str) -> None:
    assert ok(formula)["x"] in ("1", "-1")


@pytest.mark.parametrize("formula", [
    "x = " + "+".join(["1"] * 4000) + ";",
    "x = " + "-" * 4000 + "1;",
    "x = " + "max(" * 1000 + "1" + ")" * 1000 + ";",
    "x = " + "1?" * 1000 + "1" + ":0" * 1000 + ";",
])
def test_an_expression_deeper_than_the_limit_is_refused_without_exhausting_the_stack(formula: str) -> None:
    code, text, found = error_of(formula)
    assert (code, text, found["Limit"]) == (
        "InvalidAutoScaleFormula", "Line 1, Col 1: the expression is more than 100 operations deep", "100")


# Evaluation: the formula compiles, and a value turns out wrong


@pytest.mark.parametrize(("formula", "detail"), [
    ('x = "a" + 1;', "Line 1, Col 9: operator + does not take string and double"),
    ("x = time() * 2;", "Line 1, Col 12: operator * does not take timestamp and double"),
    # Azure's table has timestamp + timeinterval only: its docs subtract by adding a negative.
    ("x = time() - TimeInterval_Hour;", "Line 1, Col 12: operator - does not take timestamp and timeinterval"),
    ("x = TimeInterval_Hour / TimeInterval_Minute;",
     "Line 1, Col 23: operator / does not take timeinterval and timeinterval"),
    ("x = [1, 2] < 3;", "Line 1, Col 12: operator < does not take doubleVec and double"),
    ('x = 1 == "1";', "Line 1, Col 7: operator == does not take double and string"),
    ("x = -time();", "Line 1, Col 5: operator - does not take timestamp"),
    ('x = !"yes";', "Line 1, Col 5: operator ! does not take string"),
    ("x = [1] ? 1 : 2;", "Line 1, Col 5: ?: needs a double, got doubleVec"),
    ('x = 1 && "a";', "Line 1, Col 7: && needs a double, got string"),
    ("x = (5).hour;", "Line 1, Col 9: .hour is a member of timestamps, not of double"),
    ('x = avg(1, "2");', "Line 1, Col 5: avg() argument 2 must be a double or a doubleVec, got string"),
    ("x = time(5);", "Line 1, Col 5: time() argument 1 must be a string, got double"),
    ("x = val(3, 0);", "Line 1, Col 5: val() argument 1 must be a doubleVec, got double"),
    ("x = percentile([1], TimeInterval_Second);",
     "Line 1, Col 5: percentile() argument 2 must be a double, got timeinterval"),
    ("x = [1, time()];", "Line 1, Col 9: a doubleVec holds doubles, not timestamp"),
    ("x = $CPUPercent.GetSample(\"10\");",
     "Line 1, Col 17: $CPUPercent.GetSample() argument 1 must be a timestamp or a timeinterval, got string"),
])
def test_type_errors_name_the_operator_or_function_and_the_types(formula: str, detail: str) -> None:
    code, text, _ = error_of(formula, histories={"$CPUPercent": history([1.0] * 4)})
    assert (code, text) == ("TypeMismatch", detail)


def test_a_type_error_lists_the_values_involved() -> None:
    _, _, found = error_of('x = 2;\ny = "a" - x;')
    assert found == {"Message": "Line 2, Col 9: operator - does not take string and double",
                     "Operator": "-", "Operand1": "string", "Operand2": "double"}


@pytest.mark.parametrize(("formula", "detail"), [
    ("x = val([1, 2], 2);", "Line 1, Col 5: val(): index 2 is outside the doubleVec of 2 values"),
    ("x = val([1, 2], 0.5);", "Line 1, Col 5: val(): index 0.5 is outside the doubleVec of 2 values"),
    ("x = percentile([1, 2], 101);", "Line 1, Col 5: percentile(): the percentile must be between 0 and 100, got 101"),
    ("x = std(4);", "Line 1, Col 5: std(): the sample standard deviation needs 2 values or more, got 1"),
    ("x = avg([]);", "Line 1, Col 5: avg(): the list of values is empty"),
    ("x = [1, 2] + [1, 2, 3];", "Line 1, Col 12: operator + needs doubleVecs of one length, got 2 and 3"),
    ('x = time("next tuesday");', "Line 1, Col 5: time(): 'next tuesday' is not a W3C-DTF or RFC 1123 date and time"),
    ("x = $CPUPercent.GetSample(0);",
     "Line 1, Col 17: $CPUPercent.GetSample(): a count of samples must be a whole number of 1 or more, got 0"),
    ("x = $CPUPercent.GetSample(TimeInterval_Minute, 120);",
     "Line 1, Col 17: $CPUPercent.GetSample(): a sample percent must be between 0 and 100, got 120"),
])
def test_arguments_a_function_cannot_use_are_invalid_arguments(formula: str, detail: str) -> None:
    code, text, _ = error_of(formula, histories={"$CPUPercent": history([1.0] * 4)})
    assert (code, text) == ("InvalidArgument", detail)


def test_too_few_samples_for_the_percent_asked_fails_with_azures_message() -> None:
    # 10 of the 20 samples a 10-minute window holds at one every 30 s.
    half = {"$RunningTasks": history([1.0] * 10)}
    formula = "x = 1;\n$TargetDedicatedNodes = max($RunningTasks.GetSample(TimeInterval_Minute * 10, 70));"
    code, text, found = error_of(formula, histories=half)
    assert code == "InsufficientSampleData"
    assert text == "Line 2, Col 43: Insufficient data from data set: $RunningTasks wanted 70%, received 50%"
    assert (found["Variable"], found["Wanted"], found["Received"]) == ("$RunningTasks", "70%", "50%")
    # The same window asking for no more than there is succeeds, and GetSamplePercent lets a
    # formula check first and fall back instead of failing.
    assert ok("x = len($RunningTasks.GetSample(TimeInterval_Minute * 10, 50));", histories=half)["x"] == "10"
    fallback = ("p = $RunningTasks.GetSamplePercent(TimeInterval_Minute * 10);"
                "$TargetDedicatedNodes = p < 70 ? 1 : max($RunningTasks.GetSample(TimeInterval_Minute * 10, 70));")
    assert run(fallback, histories=half).target_dedicated_nodes == 1


@pytest.mark.parametrize(("formula", "wanted", "received"), [
    ("x = $PendingTasks.GetSample(5);", "5 samples", "3"),
    ("x = $PendingTasks.GetSample(TimeInterval_Minute * 5, TimeInterval_Minute * 10);", "1 sample", "0"),
    ("x = $FailedTasks.GetSample(TimeInterval_Minute);", "1 sample", "0"),
    ("x = $FailedTasks.HistoryBeginTime();", "1 sample", "0"),
    ("x = $FailedTasks + 1;", "1 sample", "0"),
])
def test_too_few_samples(formula: str, wanted: str, received: str) -> None:
    code, _, found = error_of(formula, histories={"$PendingTasks": history([1, 2, 3])})
    assert (code, found["Wanted"], found["Received"]) == ("InsufficientSampleData", wanted, received)


def test_a_failed_run_keeps_the_values_set_before_the_failure() -> None:
    r = run("a = 1; b = a + 1; c = b / avg([]); d = 4;")
    assert r.error is not None and r.error.code == "InvalidArgument"
    assert r.results == "$TargetDedicatedNodes=2;$NodeDeallocationOption=requeue;a=1;b=2"


# Division by zero: IEEE doubles, as Azure's .NET service computes them


def test_division_by_zero_gives_infinities_and_nan_that_a_formula_can_still_use() -> None:
    found = ok("a = 1/0; b = -1/0; c = 0/0; d = min(5, a); e = a > 1000; f = [2, 0] / 0;"
               "$TargetDedicatedNodes = min(4, 3 / 0);")
    assert (found["a"], found["b"], found["c"]) == ("Infinity", "-Infinity", "NaN")
    assert (found["d"], found["e"], found["f"]) == ("5", "1", "[Infinity,NaN]")
    assert run("$TargetDedicatedNodes = min(4, 3 / 0);").target_dedicated_nodes == 4


@pytest.mark.parametrize(("formula", "detail", "value"), [
    ("$TargetDedicatedNodes = 1 / 0;",
     "Line 1, Col 1: $TargetDedicatedNodes must be a finite number of 0 or more, got Infinity", "Infinity"),
    ("x = 0;\n$TargetDedicated = x / x;",
     "Line 2, Col 1: $TargetDedicated must be a finite number of 0 or more, got NaN", "NaN"),
    ("$TargetDedicatedNodes = 3 - 5;",
     "Line 1, Col 1: $TargetDedicatedNodes must be a finite number of 0 or more, got -2", "-2"),
    ("$TargetDedicatedNodes = [1, 2];",
     "Line 1, Col 1: $TargetDedicatedNodes must be a double, got doubleVec", "[1,2]"),
    ("$TargetLowPriorityNodes = -1;",
     "Line 1, Col 1: $TargetLowPriorityNodes must be a finite number of 0 or more, got -1", "-1"),
    ('$NodeDeallocationOption = "later";',
     "Line 1, Col 1: $NodeDeallocationOption must be one of requeue, terminate, taskcompletion, "
     "retaineddata, got later", "later"),
    ("$NodeDeallocationOption = 2;",
     "Line 1, Col 1: $NodeDeallocationOption must be one of requeue, terminate, taskcompletion, "
     "retaineddata, got 2", "2"),
])
def test_a_target_that_cannot_be_applied_fails_the_run(formula: str, detail: str, value: str) -> None:
    code, text, found = error_of(formula)
    assert (code, text, found["Value"]) == ("InvalidResult", detail, value)


# Runaway-free


def test_the_largest_formula_allowed_evaluates_to_a_result() -> None:
    # 100 statements that each double the last, each as deep as 8 KB lets them be: no loop,
    # no recursion, no unbounded growth is possible, so it simply ends.
    per_statement = (MAX_BYTES - len("x = 1;")) // (MAX_STATEMENTS - 1)
    signs = (per_statement - len("x = (x + x);")) // 2 * 2
    body = "x = 1;" + "".join(
        "x = " + "-" * signs + "(x + x);" for _ in range(MAX_STATEMENTS - 1))
    assert len(body.encode()) <= MAX_BYTES
    found = ok(body)
    assert float(found["x"]) == 2.0 ** (MAX_STATEMENTS - 1)


FRAGMENTS = st.sampled_from([
    "x", "$x", "$TargetDedicatedNodes", "$TargetDedicated", "$NodeDeallocationOption", "$PendingTasks",
    "$CPUPercent", "$CurrentDedicatedNodes", "TimeInterval_Minute", "requeue", " = ", ";", "\n", "(",
    ")", "[", "]", ",", ".", "?", ":", "+", "-", "*", "/", "!", "&&", "||", "<", "<=", "==", "!=",
    ">", ">=", "1", "0", "2.5", "1e308", '"2016-10-13"', "time(", "avg(", "max(", "val(", "std(",
    "percentile(", "lg(", "rand()", "stop()", ".GetSample(", ".GetSamplePercent(", ".Count()",
    ".HistoryBeginTime()", ".GetSamplePeriod()", ".hour", "// c\n", "@",
])


@settings(max_examples=300, deadline=None)
@given(st.lists(FRAGMENTS, max_size=40).map("".join))
def test_any_text_gives_a_run_and_never_an_exception(text: str) -> None:
    r = run(text, histories={"$PendingTasks": history([1, 2, 3]), "$CPUPercent": history([50.0] * 20)})
    assert r.error is None or r.error.values[0][0] == "Message"
    assert (r.error is None) == (r.target_dedicated_nodes is not None)
    assert values(r)["$NodeDeallocationOption"] in ("requeue", "terminate", "taskcompletion", "retaineddata") or r.error


@pytest.mark.parametrize(("formula", "detail"), [
    ("x = time() + TimeInterval_Year * 1e6;", "Line 1, Col 32: the time interval of 31536000000000 seconds is out of range"),
    ("x = TimeInterval_Second * (0/0);", "Line 1, Col 25: the time interval of NaN seconds is out of range"),
    ('x = time("9999-12-31T23:59:59Z") + TimeInterval_Day;', "Line 1, Col 34: the timestamp falls outside the years 1 to 9999"),
])
def test_times_beyond_what_a_timestamp_or_timespan_holds_are_invalid_arguments(formula: str, detail: str) -> None:
    assert error_of(formula)[:2] == ("InvalidArgument", detail)


def test_extreme_doubles_give_infinities_not_exceptions() -> None:
    found = ok("a = sum(1e308, 1e308); b = avg(1e308, 1e308); c = std(1e200, -1e200); d = norm(1e200, 1);"
               "e = sum(1/0, -1/0); f = 1e999;")
    assert [found[k] for k in "abcdef"] == ["Infinity", "Infinity", "Infinity", "Infinity", "NaN", "Infinity"]


LEAVES = st.sampled_from([
    "0", "1", "-1", "2.5", "1e308", "-1e308", "(1/0)", "(0/0)", '"s"', '"2016-10-13"', "time()",
    'time("9999-12-31")', 'time("0001-01-01")', "TimeInterval_Year", "TimeInterval_100ns",
    "TimeInterval_Zero", "[]", "[1, 1e308]", "[0/0, 1]", "$PendingTasks", "$CurrentDedicatedNodes",
    "$PendingTasks.GetSample(2)", "$CPUPercent.GetSample(TimeInterval_Minute)", "rand()",
    "$CPUPercent.GetSamplePercent(TimeInterval_Hour)", "$PendingTasks.HistoryBeginTime()",
    "$PendingTasks.GetSamplePeriod()", "requeue",
])
UNARY = ["-", "!"]
BINARY = ["+", "-", "*", "/", "<", "<=", "==", "!=", ">", ">=", "&&", "||"]
FUNCTIONS = ["avg", "len", "max", "min", "norm", "range", "std", "sum", "lg", "ln", "log",
             "percentile", "val", "time"]
MEMBERS = ["year", "month", "day", "weekday", "hour", "minute", "second"]

EXPRESSIONS = st.recursive(LEAVES, lambda inner: st.one_of(
    st.tuples(st.sampled_from(UNARY), inner).map(lambda t: f"{t[0]}({t[1]})"),
    st.tuples(inner, st.sampled_from(BINARY), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
    st.tuples(inner, inner, inner).map(lambda t: f"({t[0]} ? {t[1]} : {t[2]})"),
    st.tuples(st.sampled_from(FUNCTIONS), st.lists(inner, min_size=1, max_size=3)).map(
        lambda t: f"{t[0]}({', '.join(t[1])})"),
    st.tuples(inner, st.sampled_from(MEMBERS)).map(lambda t: f"({t[0]}).{t[1]}"),
), max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["x", "$TargetDedicatedNodes", "$NodeDeallocationOption"]),
                          EXPRESSIONS), min_size=1, max_size=4))
def test_any_well_formed_formula_gives_a_run_and_never_an_exception(statements: list[tuple[str, str]]) -> None:
    text = "".join(f"{name} = {expr};\n" for name, expr in statements)
    r = run(text, histories={"$PendingTasks": history([1, 2, 3]), "$CPUPercent": history([50.0] * 20)})
    assert (r.error is None) == (r.target_dedicated_nodes is not None)
    if r.error is not None:
        assert r.error.code in {c.value for c in ErrorCode} and r.error.values[0][0] == "Message"
