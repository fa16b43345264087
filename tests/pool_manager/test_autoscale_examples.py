"""The autoscale evaluator on the formulas of Azure Batch's autoscale documentation, with the
values it gives (or, where it gives none, values that take each branch), and on the requests
and responses of Azure's reference pages."""

from __future__ import annotations

from services.pool_manager.autoscale import ErrorCode
from tests.pool_manager.autoscale_support import NOW, at, history, message, ok, run, values

TIME_BASED = """
        $curTime = time();
        $workHours = $curTime.hour >= 8 && $curTime.hour < 18;
        $isWeekday = $curTime.weekday >= 1 && $curTime.weekday <= 5;
        $isWorkingWeekdayHour = $workHours && $isWeekday;
        $TargetDedicatedNodes = $isWorkingWeekdayHour ? 20:10;
    """


def test_the_documented_evaluation_of_the_time_based_formula_gives_azures_results_exactly() -> None:
    # "Successful evaluation of the formula shown in this code snippet produces results similar
    # to:" $TargetDedicatedNodes=10; $NodeDeallocationOption=requeue; $curTime=2016-10-13T19:18:47.805Z; ...
    r = run(TIME_BASED, now=NOW)
    assert r.error is None
    assert r.results == (
        "$TargetDedicatedNodes=10;$NodeDeallocationOption=requeue;"
        "$curTime=2016-10-13T19:18:47.805Z;$isWeekday=1;$isWorkingWeekdayHour=0;$workHours=0"
    )
    assert r.target_dedicated_nodes == 10
    assert r.node_deallocation_option == "requeue"


def test_example_1_time_based_adjustment_in_and_out_of_working_hours() -> None:
    formula = TIME_BASED + "$NodeDeallocationOption = taskcompletion;"
    monday_morning = run(formula, now=at("2016-10-17T09:30:00"))
    assert monday_morning.target_dedicated_nodes == 20
    assert monday_morning.node_deallocation_option == "taskcompletion"
    saturday_morning = run(formula, now=at("2016-10-15T09:30:00"))
    assert values(saturday_morning)["$isWeekday"] == "0"
    assert saturday_morning.target_dedicated_nodes == 10
    # The documented way to shift to a time zone: an added negative interval (MDT, UTC-6).
    shifted = ok("$curTime = time() + (-6 * TimeInterval_Hour); h = $curTime.hour;",
                 now=at("2016-10-17T03:00:00"))
    assert shifted["h"] == "21"


PENDING_TASKS = """startingNumberOfVMs = 1;
maxNumberofVMs = 25;
pendingTaskSamplePercent = $PendingTasks.GetSamplePercent(180 * TimeInterval_Second);
pendingTaskSamples = pendingTaskSamplePercent < 70 ? startingNumberOfVMs : avg($PendingTasks.GetSample(180 * TimeInterval_Second));
$TargetDedicatedNodes=min(maxNumberofVMs, pendingTaskSamples);
$NodeDeallocationOption = taskcompletion;
"""


def test_sample_formula_pending_tasks_follows_the_average_of_the_last_180_seconds() -> None:
    # Six samples in 180 s at one per 30 s: all of them, so the average decides.
    r = run(PENDING_TASKS, histories={"$PendingTasks": history([4, 6, 8, 10, 12, 14])})
    assert values(r)["pendingTaskSamplePercent"] == "100"
    assert values(r)["pendingTaskSamples"] == "9"
    assert (r.target_dedicated_nodes, r.node_deallocation_option) == (9, "taskcompletion")


def test_sample_formula_pending_tasks_starts_with_one_node_and_never_exceeds_25() -> None:
    # Three of the six samples: 50 % < 70 %, so the starting number of VMs.
    young = run(PENDING_TASKS, histories={"$PendingTasks": history([40, 40, 40])})
    assert values(young)["pendingTaskSamplePercent"] == "50"
    assert young.target_dedicated_nodes == 1
    busy = run(PENDING_TASKS, histories={"$PendingTasks": history([300] * 6)})
    assert busy.target_dedicated_nodes == 25


def test_sample_formula_preempted_nodes_replaces_preempted_spot_nodes_with_dedicated_ones() -> None:
    formula = """maxNumberofVMs = 25;
$TargetDedicatedNodes = min(maxNumberofVMs, $PreemptedNodeCount.GetSample(180 * TimeInterval_Second));
$TargetLowPriorityNodes = min(maxNumberofVMs , maxNumberofVMs - $TargetDedicatedNodes);
$NodeDeallocationOption = taskcompletion;"""
    r = run(formula, histories={"$PreemptedNodeCount": history([3] * 6)})
    assert r.results == ("$TargetDedicatedNodes=3;$TargetLowPriorityNodes=22;"
                         "$NodeDeallocationOption=taskcompletion;maxNumberofVMs=25")
    assert (r.target_dedicated_nodes, r.target_low_priority_nodes) == (3, 22)


CPU = """$totalDedicatedNodes =
    (min($CPUPercent.GetSample(TimeInterval_Minute * 10)) > 0.7) ?
    ($CurrentDedicatedNodes * 1.1) : $CurrentDedicatedNodes;
$totalDedicatedNodes =
    (avg($CPUPercent.GetSample(TimeInterval_Minute * 60)) < 0.2) ?
    ($CurrentDedicatedNodes * 0.9) : $totalDedicatedNodes;
$TargetDedicatedNodes = min(400, $totalDedicatedNodes)"""


def test_write_an_autoscale_formula_cpu_grows_by_10_percent_and_shrinks_by_10_percent() -> None:
    # "110 percent of the current target ... if the minimum average CPU usage during the last
    # 10 minutes was above 70 percent"; the last statement has no semicolon, as written.
    busy = history([0.5] * 100 + [0.9] * 20)
    high = run(CPU, current_dedicated_nodes=10, histories={"$CPUPercent": busy})
    assert values(high)["$totalDedicatedNodes"] == "11"
    assert high.target_dedicated_nodes == 11
    idle = history([0.1] * 120)
    low = run(CPU, current_dedicated_nodes=10, histories={"$CPUPercent": idle})
    assert low.target_dedicated_nodes == 9
    huge = run(CPU, current_dedicated_nodes=1000, histories={"$CPUPercent": busy})
    assert huge.target_dedicated_nodes == 400
    steady = run(CPU, current_dedicated_nodes=10, histories={"$CPUPercent": history([0.5] * 120)})
    assert steady.target_dedicated_nodes == 10


TASK_BASED = """// Get pending tasks for the past 15 minutes.
$samples = $PendingTasks.GetSamplePercent(TimeInterval_Minute * 15);
// If we have fewer than 70 percent data points, we use the last sample point,
// otherwise we use the maximum of last sample point and the history average.
$tasks = $samples < 70 ? max(0,$PendingTasks.GetSample(1)) : max( $PendingTasks.GetSample(1), avg($PendingTasks.GetSample(TimeInterval_Minute * 15)));
// If number of pending tasks is not 0, set targetVM to pending tasks, otherwise
// half of current dedicated.
$targetVMs = $tasks > 0? $tasks:max(0, $TargetDedicatedNodes/2);
// The pool size is capped at 20, if target VM value is more than that, set it
// to 20. This value should be adjusted according to your use case.
$TargetDedicatedNodes = max(0, min($targetVMs, 20));
// Set node deallocation mode - let running tasks finish before removing a node
$NodeDeallocationOption = taskcompletion;
"""


def test_example_2_task_based_adjustment() -> None:
    # A full 15 minutes (30 samples) averaging 6, the last one 3: the average wins.
    full = history([9] * 15 + [3] * 15)
    r = run(TASK_BASED, histories={"$PendingTasks": full})
    assert values(r)["$samples"] == "100"
    assert values(r)["$tasks"] == "6"
    assert (r.target_dedicated_nodes, r.node_deallocation_option) == (6, "taskcompletion")
    # Under 70 % of the samples: the last sample alone.
    young = run(TASK_BASED, histories={"$PendingTasks": history([30, 12])})
    assert young.target_dedicated_nodes == 12
    # No pending tasks: half the current target.
    idle = run(TASK_BASED, target_dedicated_nodes=7, histories={"$PendingTasks": history([0] * 30)})
    assert values(idle)["$targetVMs"] == "3.5"
    assert idle.target_dedicated_nodes == 3
    capped = run(TASK_BASED, histories={"$PendingTasks": history([500] * 30)})
    assert capped.target_dedicated_nodes == 20


PARALLEL = """// Determine whether 70 percent of the samples have been recorded in the past
// 15 minutes; if not, use last sample
$samples = $ActiveTasks.GetSamplePercent(TimeInterval_Minute * 15);
$tasks = $samples < 70 ? max(0,$ActiveTasks.GetSample(1)) : max( $ActiveTasks.GetSample(1),avg($ActiveTasks.GetSample(TimeInterval_Minute * 15)));
// Set the number of nodes to add to one-fourth the number of active tasks (the
// MaxTasksPerComputeNode property on this pool is set to 4, adjust this number
// for your use case)
$cores = $TargetDedicatedNodes * 4;
$extraVMs = (($tasks - $cores) + 3) / 4;
$targetVMs = ($TargetDedicatedNodes + $extraVMs);
// Attempt to grow the number of compute nodes to match the number of active
// tasks, with a maximum of 3
$TargetDedicatedNodes = max(0,min($targetVMs,3));
// Keep the nodes active until the tasks finish
$NodeDeallocationOption = taskcompletion;
"""


def test_example_3_accounting_for_parallel_tasks() -> None:
    r = run(PARALLEL, target_dedicated_nodes=1, histories={"$ActiveTasks": history([6])})
    assert values(r)["$cores"] == "4"
    assert values(r)["$extraVMs"] == "1.25"
    assert r.target_dedicated_nodes == 2
    many = run(PARALLEL, target_dedicated_nodes=1, histories={"$ActiveTasks": history([40] * 30)})
    assert many.target_dedicated_nodes == 3
    none = run(PARALLEL, target_dedicated_nodes=1, histories={"$ActiveTasks": history([0] * 30)})
    assert values(none)["$targetVMs"] == "0.75"
    assert none.target_dedicated_nodes == 0


def initial_size(created: str) -> str:
    # The C# snippet's string.Format with {0} = the pool's creation time in .NET's "r"
    # format (RFC 1123) and {1} = 4.
    return f"""
    $TargetDedicatedNodes = 4;
    lifespan         = time() - time("{created}");
    span             = TimeInterval_Minute * 60;
    startup          = TimeInterval_Minute * 10;
    ratio            = 50;

    $TargetDedicatedNodes = (lifespan > startup ? (max($RunningTasks.GetSample(span, ratio), $ActiveTasks.GetSample(span, ratio)) == 0 ? 0 : $TargetDedicatedNodes) : 4);
    """


def test_example_4_setting_an_initial_pool_size() -> None:
    formula = initial_size("Thu, 13 Oct 2016 18:00:00 GMT")
    # Five minutes in: four nodes, whatever the samples (there are none yet).
    early = run(formula, now=at("2016-10-13T18:05:00"))
    assert values(early)["lifespan"] == "00:05:00"
    assert early.target_dedicated_nodes == 4
    # Later: no task running or active in the last hour takes the pool to 0 ...
    quiet = {"$RunningTasks": history([0] * 120), "$ActiveTasks": history([0] * 120)}
    assert run(formula, histories=quiet).target_dedicated_nodes == 0
    # ... any task keeps the target where it is.
    busy = {"$RunningTasks": history([0] * 119 + [2]), "$ActiveTasks": history([0] * 120)}
    assert run(formula, histories=busy).target_dedicated_nodes == 4


def test_example_4_fails_as_documented_when_half_the_hour_of_samples_is_missing() -> None:
    thin = {"$RunningTasks": history([0] * 40), "$ActiveTasks": history([0] * 120)}
    r = run(initial_size("Thu, 13 Oct 2016 18:00:00 GMT"), histories=thin)
    assert r.error is not None
    assert r.error.code == ErrorCode.INSUFFICIENT_SAMPLE_DATA == "InsufficientSampleData"
    assert r.error.message == "Autoscale evaluation failed due to insufficient sample data"
    assert message(r) == ("Line 8, Col 70: Insufficient data from data set: "
                          "$RunningTasks wanted 50%, received 33.3%")
    assert r.target_dedicated_nodes is None


def test_the_evaluate_reference_example_gives_the_documented_results() -> None:
    # Test-AzBatchAutoScale's example: no CPU samples, so GetSamplePercent is 0 < 0.7 and
    # the result is 5 ("$TargetDedicated=5;$NodeDeallocationOption=requeue;totalNodes=5").
    formula = ("totalNodes=($CPUPercent.GetSamplePercent(TimeInterval_Minute*0,TimeInterval_Minute*10)"
               "<0.7?5:(min($CPUPercent.GetSample(TimeInterval_Minute*0, TimeInterval_Minute*10))"
               ">0.8?($CurrentDedicated*1.1):$CurrentDedicated));$TargetDedicated=min(100,totalNodes);")
    r = run(formula)
    assert r.results == "$TargetDedicated=5;$NodeDeallocationOption=requeue;totalNodes=5"
    assert r.target_dedicated_nodes == 5
    # With a full, busy history the other branch: 110 % of the current dedicated nodes.
    busy = run(formula, current_dedicated_nodes=10, histories={"$CPUPercent": history([0.9] * 20)})
    assert busy.target_dedicated_nodes == 11


def test_the_insufficient_sample_data_error_reads_as_in_azures_reference() -> None:
    # "Line 1, Col 37: Insufficient data from data set: $CPUPercent wanted 10%, received 0%"
    r = run("$TargetDedicatedNodes = avg($CPUPercent.GetSample(TimeInterval_Minute * 10, 10));")
    assert r.error is not None
    assert (r.error.code, r.error.message) == (
        "InsufficientSampleData", "Autoscale evaluation failed due to insufficient sample data")
    assert r.error.values[0] == (
        "Message", "Line 1, Col 41: Insufficient data from data set: $CPUPercent wanted 10%, received 0%")
    assert dict(r.error.values)["Variable"] == "$CPUPercent"
