"""The runner's rules (agent.runner), pure: what a command line and its variables make."""

from __future__ import annotations

from pathlib import Path

from agent.layout import TaskPaths
from agent.runner import Launch, both, launch, timed_out
from shoal.v1 import task_pb2

PATHS = TaskPaths.of(Path("/node/tasks/j/t/a1"))
BASE = {"PATH": "/usr/bin:/bin"}


def test_a_command_line_is_split_into_words_and_its_environment_layered() -> None:
    node = both({"NODE_ID": "n1"})
    out = launch(
        "python3 -c 'print(1)'", PATHS, BASE,
        own={"A": "1", "HOME": "/elsewhere", "SHOAL_NODE_ID": "mine", "SHOAL_TASK_DIR": "x"},
        node=node, variables=both({"TASK_DIR": str(PATHS.dir)}),
    )
    assert isinstance(out, Launch)
    assert out.argv == ["python3", "-c", "print(1)"]
    # The command's own variables win over HOME and the base; the node's and Shoal's win
    # over the command's.
    assert out.env == {
        "PATH": "/usr/bin:/bin", "HOME": "/elsewhere", "A": "1",
        "SHOAL_NODE_ID": "n1", "AZ_BATCH_NODE_ID": "n1",
        "SHOAL_TASK_DIR": str(PATHS.dir), "AZ_BATCH_TASK_DIR": str(PATHS.dir),
    }
    plain = launch("true", PATHS, BASE, {}, {}, {})
    assert isinstance(plain, Launch) and plain.env["HOME"] == str(PATHS.dir)


def test_a_command_that_cannot_run_says_why() -> None:
    for line, message in (("", "the command line is empty"),
                          ("echo 'open", "the command line cannot be split into words")):
        out = launch(line, PATHS, BASE, {}, {}, {})
        assert isinstance(out, task_pb2.FailureInfo)
        assert (out.category, out.code) == (task_pb2.FailureInfo.USER_ERROR, "INVALID_COMMAND_LINE")
        assert out.message.startswith(message)
    bad = launch("true", PATHS, BASE, {"A=B": "x"}, {}, {})
    assert isinstance(bad, task_pb2.FailureInfo) and bad.code == "INVALID_ENVIRONMENT"


def test_a_run_out_of_time_names_what_ran_and_its_limit() -> None:
    f = timed_out("the start task", 1.5)
    assert f.code == "MAX_WALL_CLOCK_TIME_EXCEEDED"
    assert f.message == "the start task ran longer than its max_wall_clock_time of 1.5s and was killed"
