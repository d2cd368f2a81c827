"""Property-based fuzzing of the whole API with schemathesis, driven by the box's own
`/openapi.json`, against a real `artifacta-box serve` subprocess.

Every phase runs (examples, coverage, fuzzing, stateful via the document's links) with every
check except `positive_data_acceptance` (a well-formed id of an artifact that does not exist is
rightly a 404): no 5xx, every status and header documented, every body matching its schema,
invalid requests refused, auth never ignored, deleted artifacts gone, plus `error_envelope`
(st_hooks.py) on every error response. Afterwards the server must still be healthy, must not
have logged an unhandled error, and `artifacta-box check` must find the store consistent.

The default run is bounded in examples (50 per operation: about 2,000 requests, ~20 s here);
`pytest -m slow` runs the long version (300 per operation, at most 10 minutes per phase group).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import BoxServer

ROOT = Path(__file__).resolve().parents[2]

# The fuzz tenant must not be slowed by the limits it is not testing: a bucket far larger than
# the run, no failed-auth lockout (the `ignored_auth` check sends unauthenticated requests),
# and small size limits so oversize bodies are cheap to generate.
FUZZ_CONFIG = """
[security]
failed_auth_limit = 1000000

[tenants]
default_plan = "fuzz"

[plans.fuzz]
rate_sustained = 100000
rate_burst = 1000000
requests_per_month = 100000000
max_multipart_size = "2MB"
max_json_size = "1MB"
max_presigned_size = "2MB"

[logging]
access_log = false
"""

CHECKS = [
    "not_a_server_error", "status_code_conformance", "content_type_conformance",
    "response_headers_conformance", "response_schema_conformance", "negative_data_rejection",
    "missing_required_header", "unsupported_method", "allow_header_conformance",
    "use_after_free", "ensure_resource_availability", "ignored_auth",
]


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory) -> Iterator[BoxServer]:
    d = tmp_path_factory.mktemp("fuzz") / "box"
    srv = BoxServer(d, config=FUZZ_CONFIG).start()
    yield srv
    srv.stop()


def st_command() -> list[str]:
    exe = Path(sys.executable).parent / "st"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "schemathesis.cli"]


def run_schemathesis(server: BoxServer, *, phases: str, mode: str, max_examples: int,
                     max_time: int | None, timeout: int) -> subprocess.CompletedProcess:
    cmd = [
        *st_command(), "--config-file", str(Path(__file__).with_name("schemathesis.toml")),
        "run", f"{server.url}/openapi.json",
        "--header", f"Authorization: Bearer {server.key}",
        "--checks", ",".join(CHECKS),
        "--phases", phases,
        "--mode", mode,
        "--max-examples", str(max_examples),
        # one worker: hypothesis parses lambda sources with ast.parse, which is not thread-safe on
        # CPython 3.11 ("SystemError: AST constructor recursion depth mismatch" with two)
        "--workers", "1",
        "--request-timeout", "30",
        "--generation-database", "none",
        "--no-color",
        "--output-truncate", "false",
    ]
    if max_time is not None:
        cmd += ["--max-time", str(max_time)]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.fuzz.st_hooks",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    # run beside the data directory: schemathesis and hypothesis leave caches in their cwd
    return subprocess.run(cmd, capture_output=True, text=True, cwd=server.data_dir.parent, env=env,
                          timeout=timeout,
                          check=False)


def assert_clean_run(server: BoxServer, res: subprocess.CompletedProcess, minimum_cases: int) -> None:
    report = res.stdout[-20000:] + res.stderr[-5000:]
    assert res.returncode == 0, f"schemathesis found failures:\n{report}"
    generated = re.search(r"(\d+) generated", res.stdout)
    assert generated and int(generated.group(1)) >= minimum_cases, report  # it really ran
    assert httpx.get(server.url + "/health", timeout=10).status_code == 200
    log = server.log_path.read_text(errors="replace")
    assert "unhandled error" not in log and "Traceback" not in log, log[-5000:]
    check = server.admin("check", "--json", check=False)
    assert check.returncode == 0, f"store inconsistent after fuzzing:\n{check.stdout}\n{check.stderr}"


# Stateful sequences (upload -> get/delete/links/extend-ttl, upload-url -> complete, link ->
# revoke) run in positive mode: schemathesis 4.32 labels some positive stateful steps as
# negative and then reports their 2xx as "schema-violating request accepted". Invalid data is
# exercised by the other phases in both modes.
# (phases, mode, fewest cases a bounded run must generate to count as having run)
RUNS = [
    ("examples,coverage,fuzzing", "all", 500),
    ("stateful", "positive", 50),
]


@pytest.mark.parametrize(("phases", "mode", "minimum"), RUNS)
def test_fuzz_bounded(fuzz_server, phases, mode, minimum):
    res = run_schemathesis(fuzz_server, phases=phases, mode=mode, max_examples=50,
                           max_time=None, timeout=240)
    assert_clean_run(fuzz_server, res, minimum_cases=minimum)


@pytest.mark.slow
@pytest.mark.timeout(1000)
@pytest.mark.parametrize(("phases", "mode", "minimum"), RUNS)
def test_fuzz_long(fuzz_server, phases, mode, minimum):
    res = run_schemathesis(fuzz_server, phases=phases, mode=mode, max_examples=300,
                           max_time=600, timeout=900)
    assert_clean_run(fuzz_server, res, minimum_cases=minimum * 4)
