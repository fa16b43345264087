"""Splitting a command line into words the way a POSIX shell would, without running one.

Shared by the scheduler (validation) and the agent (execution), so both agree on what a
command line means. shlex is exact but slow; a line with no quote or backslash splits on
shlex's whitespace alone, which is the common case at thousands of tasks a second.
"""

from __future__ import annotations

import re
import shlex

_WORD = re.compile(r"[^ \t\r\n]+")


def split_command(line: str) -> list[str]:
    """The words of `line` as shlex.split(line) gives them; ValueError when it cannot."""
    if "'" in line or '"' in line or "\\" in line:
        return shlex.split(line)
    return _WORD.findall(line)
