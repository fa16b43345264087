"""The README's Azure SDK example, run as it is written against the real suite: only the
endpoint and the client.json path it names are pointed at this suite."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

from azure.batch import BatchClient
from azure.core.credentials import AzureNamedKeyCredential

from shoal.suite import LocalSuite

README = Path(__file__).resolve().parents[2] / "README.md"
ENDPOINT = "http://127.0.0.1:50056"
CLIENT_FILE = ".shoal/client.json"


def readme_example() -> str:
    section = README.read_text().split("## Azure Batch REST API", 1)[1].split("\n## ", 1)[0]
    m = re.search(r"```python\n(.*?)```", section, re.S)
    assert m, "the section has no python example"
    return m.group(1)


def test_the_readme_sdk_example_runs(suite: LocalSuite) -> None:
    code = readme_example()
    assert ENDPOINT in code and CLIENT_FILE in code
    code = code.replace(ENDPOINT, suite.rest_endpoint).replace(
        CLIENT_FILE, str(suite.state_dir / "client.json"))
    out = io.StringIO()
    scope: dict[str, object] = {}
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - the README's own code
    assert out.getvalue() == "7 squared is 49\n\n"
    assert scope["failed"] == []
    cc = suite.client_config
    client = BatchClient(suite.rest_endpoint, AzureNamedKeyCredential(cc.account, cc.key))
    assert list(client.list_pools()) == [] and list(client.list_jobs()) == []
