"""split_command agrees with shlex.split on every line, and is what both scheduler and
agent use."""

from __future__ import annotations

import shlex

import pytest

from services.common.cmdline import split_command

LINES = [
    "/bin/true", "  echo   a\tb\r\nc  ", "echo $HOME | wc", "a\u00a0b", "x\x0by", "",
    "   ", "echo 'a b' \"c d\"", "echo a\\ b", "python3 -c 'print(1)' 2", "#not-a-comment x",
]


@pytest.mark.parametrize("line", LINES)
def test_split_command_matches_shlex(line: str) -> None:
    assert split_command(line) == shlex.split(line)


@pytest.mark.parametrize("line", ["echo 'open", 'echo "open', "echo trailing\\"])
def test_unsplittable_lines_raise_like_shlex(line: str) -> None:
    with pytest.raises(ValueError):
        shlex.split(line)
    with pytest.raises(ValueError):
        split_command(line)
