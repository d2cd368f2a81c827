"""Shared fixtures: a real `artifacta-box serve` subprocess on a free loopback port (the
`BoxServer` of tests/helpers.py), one per test or one per module.

Tests talk HTTP to it (httpx, or the official `artifacta` SDK/CLI), make tenants in-process
on its data directory and run the admin CLI where the CLI is under test. Nothing here mocks
the database or the blob store.

Parallel runs (pytest-xdist, `--dist loadgroup`): every test belongs to the group of its
module, so a module's module-scoped server starts once, on one worker. Tests marked
`serial` share one group instead: they are timing- or load-sensitive (kill -9, races, a
tmpfs filled up, rate limits, thousand-request loads), run one after another on one worker,
and never beside each other.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.backends import backend_env
from tests.helpers import BoxServer

pytest_plugins = ("tests.s3_server",)  # seaweedfs, s3_bucket, s3_settings fixtures

SERIAL_GROUP = "serial"
# The longest groups go first, so that no worker is left running one of them at the end.
LONGEST_GROUPS = (SERIAL_GROUP, "tests.fuzz.test_schemathesis")
SYSTEM_CERT_DIR = "/etc/ssl/certs"  # OpenSSL's hashed directory of the system's CA certificates


def pytest_configure(config: pytest.Config) -> None:
    # Every httpx client (each `httpx.get`, each SDK client, each run of the official CLI) builds
    # an SSL context; from a CA bundle file (SSL_CERT_FILE, or certifi's) that costs 50-90 ms of
    # CPU, a few minutes over the suite. The same system certificates as a directory are read
    # only when a TLS handshake needs one (1.6 ms): the trust is the same, the tests talk plain
    # HTTP on loopback anyway. The subprocesses inherit it through clean_env.
    if Path(SYSTEM_CERT_DIR).is_dir() and any(Path(SYSTEM_CERT_DIR).glob("*.0")):
        os.environ.pop("SSL_CERT_FILE", None)
        os.environ["SSL_CERT_DIR"] = SYSTEM_CERT_DIR


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """The default run is parallel: `-n auto --dist loadgroup`; `-n N` alone groups too, an
    explicit `--dist` is kept. `-n 0` runs in one process; so does `-p no:xdist` (which an
    addopts `-n` would break)."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    option = config.option
    if hasattr(config, "workerinput"):
        # A worker parses the command line again, without the defaults set here: it learns
        # that it groups from the controller (pytest_configure_node).
        option.loadgroup = option.loadgroup or config.workerinput.get("loadgroup", False)
        return
    if option.dist == "no" and option.numprocesses != 0 and not option.usepdb:
        if option.numprocesses is None:
            option.numprocesses = "auto"
        option.dist = "loadgroup"
        option.loadscopereorder = False  # keep the order pytest_collection_modifyitems makes


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:  # noqa: ANN001 - an xdist WorkerController
    node.workerinput["loadgroup"] = node.config.option.dist == "loadgroup"


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook turns the group into the node id
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    groups: dict[pytest.Item, str] = {}
    for item in items:
        mark = item.get_closest_marker("xdist_group")
        if mark is None:
            name = SERIAL_GROUP if item.get_closest_marker("serial") else item.module.__name__
            item.add_marker(pytest.mark.xdist_group(name))
        else:
            name = mark.args[0] if mark.args else mark.kwargs.get("name", "default")
        groups[item] = name
    if hasattr(config, "workerinput"):  # every worker sorts alike, so collections still match
        items.sort(key=lambda item: LONGEST_GROUPS.index(groups[item])
                   if groups[item] in LONGEST_GROUPS else len(LONGEST_GROUPS))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids: list[str]) -> None:  # noqa: ANN001
    """Fail the run if the workers' node ids carry no group: the serial tests would run side by
    side (pytest 9.2 broke this silently: pytest-dev/pytest-xdist#1386)."""
    if node.config.option.dist == "loadgroup" and ids and "@" not in ids[0]:
        pytest.exit("pytest-xdist did not group the tests (`--dist loadgroup`); install the test "
                    "extra's pytest (pyproject.toml), or run with -n 0", returncode=4)


@pytest.fixture(scope="module")
def blob_backend() -> str:
    """The blob backend of this module's servers: "local" unless the module imports the
    both-backends fixture of tests/backends.py."""
    return "local"


@pytest.fixture
def make_server(tmp_path: Path, request, blob_backend: str) -> Iterator:
    """Factory: make_server(config=..., env=..., args=...) -> started BoxServer; all stopped
    after. Each server stores its blobs in the module's `blob_backend` (its own bucket)."""
    started: list[BoxServer] = []
    counter = iter(range(1000))

    def factory(config: str | None = None, env: dict[str, str] | None = None,
                args: list[str] | None = None, data_dir: Path | None = None,
                start: bool = True) -> BoxServer:
        d = data_dir or tmp_path / f"box{next(counter)}"
        env = {**backend_env(request, blob_backend), **(env or {})}
        srv = BoxServer(d, config=config, env=env, args=args)
        started.append(srv)
        return srv.start() if start else srv

    yield factory
    for srv in started:
        srv.stop()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory, request, blob_backend: str) -> Iterator[BoxServer]:
    """One server per test module, for tests that isolate themselves by tenant."""
    d = tmp_path_factory.mktemp("shared") / "box"
    srv = BoxServer(d, env=backend_env(request, blob_backend)).start()
    yield srv
    srv.stop()


@pytest.fixture
def server(make_server) -> BoxServer:
    """A fresh server with the bootstrap tenant `default` and its key in `.key`."""
    return make_server()


@pytest.fixture
def api(server: BoxServer) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c
