"""Configuration: precedence flag > env > file > default, and one clear error per bad setting."""

import os
import re
import stat
from dataclasses import replace

import pytest
from click.testing import CliRunner

from artifacta_box import cli
from artifacta_box.config import (
    BUILTIN_PLANS,
    PLAN_FIELDS,
    SETTINGS,
    ConfigError,
    Settings,
    config_toml,
    load_settings,
)
from artifacta_box.datadir import load_secret


def write(tmp_path, text):
    p = tmp_path / "box.toml"
    p.write_text(text)
    return str(p)


def test_defaults_without_any_file():
    s = load_settings(None, environ={})
    assert (s.host, s.port) == ("127.0.0.1", 8787)
    assert s.workers == min(len(os.sched_getaffinity(0)), 8)  # one per core, at most 8
    assert s.default_plan == "selfhosted"
    assert set(s.plans) >= {"selfhosted", "free", "pro"}
    assert s.deleted_retention_seconds == 30 * 86400


def test_precedence_flag_over_env_over_file_over_default(tmp_path):
    path = write(tmp_path, "[server]\nport = 9001\nhost = '127.0.0.2'\nworkers = 9\n")
    env = {"ARTIFACTA_BOX_SERVER_PORT": "9002", "ARTIFACTA_BOX_SERVER_HOST": "127.0.0.3"}
    s = load_settings(path, overrides={"port": 9003, "host": None}, environ=env)
    assert s.port == 9003            # flag wins
    assert s.host == "127.0.0.3"     # env beats file (flag unset)
    assert s.workers == 9            # file beats default (one per core, at most 8)
    assert s.shutdown_timeout == 30  # default


def test_config_file_from_environment_variable(tmp_path):
    path = write(tmp_path, "[server]\nport = 9100\n")
    assert load_settings(None, environ={"ARTIFACTA_BOX_CONFIG": path}).port == 9100


def test_relative_data_dir_in_file_is_relative_to_the_file(tmp_path):
    path = write(tmp_path, "[storage]\ndata_dir = 'data'\n")
    assert load_settings(path, environ={}).data_dir == str(tmp_path / "data")


@pytest.mark.parametrize(
    "text, names",
    [
        ("[server]\nport = 'abc'\n", "server.port"),
        ("[server]\nport = 70000\n", "server.port"),
        ("[server]\nbogus = 1\n", "server.bogus"),
        ("[storage]\nmin_free_bytes = 'lots'\n", "storage.min_free_bytes"),
        ("[storage]\ndurability = 'fast'\n", "storage.durability"),
        ("[retention]\ndeleted = '30 days'\n", "retention.deleted"),
        ("[plans.free]\nmax_ttl = 'forever'\n", "plans.free.max_ttl"),
        ("[plans.free]\nunknown_knob = 1\n", "plans.free.unknown_knob"),
        ("[tenants]\ndefault_plan = 'gold'\n", "tenants.default_plan"),
        ("[server]\npublic_url = 'not a url'\n", "server.public_url"),
        ("[security]\nsecret_key = 'short'\n", "security.secret_key"),
        ("[server\nport = 1\n", "config"),
        ("[plans.team]\nmax_ttl = '1d'\n", "plans.team.default_ttl"),
    ],
)
def test_bad_values_name_the_setting(tmp_path, text, names):
    with pytest.raises(ConfigError) as exc:
        load_settings(write(tmp_path, text), environ={})
    assert str(exc.value).startswith(names)
    assert "\n" not in str(exc.value)


def test_bad_environment_value_names_setting_and_variable():
    with pytest.raises(ConfigError) as exc:
        load_settings(None, environ={"ARTIFACTA_BOX_SERVER_WORKERS": "many"})
    assert "server.workers" in str(exc.value) and "ARTIFACTA_BOX_SERVER_WORKERS" in str(exc.value)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(str(tmp_path / "nope.toml"), environ={})


def test_plans_override_builtin_fields_and_define_new_ones(tmp_path):
    path = write(tmp_path, "[plans.free]\nmax_active_links = 5\n[plans.team]\nstorage_bytes = '2GiB'\n"
                           "max_ttl = '2w'\ndefault_ttl = '7d'\n")
    s = load_settings(path, environ={})
    assert s.plans["free"].max_active_links == 5
    assert s.plans["free"].max_ttl_seconds == BUILTIN_PLANS["free"].max_ttl_seconds
    assert s.plans["team"].storage_bytes == 2 * 2**30
    assert s.plans["team"].max_ttl_seconds == 14 * 86400


def test_example_config_documents_the_builtin_defaults():
    root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    s = load_settings(os.path.join(root, "config.example.toml"), environ={})
    for name, plan in BUILTIN_PLANS.items():
        assert s.plans[name] == plan
    default = load_settings(None, environ={})
    for attr in ("port", "host", "shutdown_timeout", "min_free_bytes", "max_signed_url_seconds",
                 "deleted_retention_seconds", "gc_interval_seconds", "failed_auth_limit"):
        assert getattr(s, attr) == getattr(default, attr), attr


def test_secret_generated_once_with_0600(tmp_path):
    s = load_settings(None, overrides={"data_dir": str(tmp_path / "d")}, environ={})
    (tmp_path / "d").mkdir()
    first = load_secret(s)
    mode = stat.S_IMODE(os.stat(tmp_path / "d" / "secret.key").st_mode)
    assert mode == 0o600
    assert len(first) >= 32
    assert load_secret(s) == first


def test_configured_secret_is_used_verbatim(tmp_path):
    s = load_settings(None, overrides={"data_dir": str(tmp_path), "secret_key": "x" * 40}, environ={})
    assert load_secret(s) == b"x" * 40
    assert not (tmp_path / "secret.key").exists()


# ---------------------------------------------------------------------------- declared once

EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
                       "config.example.toml")


def _documented_keys(text: str) -> dict[str, set[str]]:
    """Keys per table of a TOML file, counting commented-out ones (`# public_url = ...`)."""
    tables: dict[str, set[str]] = {}
    table = ""
    for line in text.splitlines():
        if m := re.match(r"^\[([a-z0-9_.-]+)\]", line):
            table = m.group(1)
        elif m := re.match(r"^#?\s*([a-z_]+)\s*=", line):
            tables.setdefault(table, set()).add(m.group(1))
    return tables


def test_example_config_documents_every_setting_and_plan_field_and_loads():
    with open(EXAMPLE) as fh:
        documented = _documented_keys(fh.read())
    missing = [s.name for s in SETTINGS if s.key not in documented.get(s.section, set())]
    assert not missing, f"settings missing from config.example.toml: {missing}"
    for name in BUILTIN_PLANS:
        missing = [pf.key for pf in PLAN_FIELDS if pf.key not in documented.get(f"plans.{name}", set())]
        assert not missing, f"[plans.{name}] of config.example.toml lacks {missing}"
    example = load_settings(EXAMPLE, environ={})
    default = load_settings(None, environ={})
    for spec in SETTINGS:
        if spec.attr != "data_dir":  # relative to the file
            assert getattr(example, spec.attr) == getattr(default, spec.attr), spec.name


def test_the_checker_sees_a_missing_setting():
    documented = _documented_keys("[server]\nhost = 'x'\n# public_url = 'y'\n[plans.free]\nmax_ttl = '1d'\n")
    assert documented == {"server": {"host", "public_url"}, "plans.free": {"max_ttl"}}


def _settings_without_source(s: Settings) -> Settings:
    return replace(s, config_file=None)


def test_config_show_with_secrets_reads_back_to_the_same_settings(tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith("ARTIFACTA_BOX_"):
            monkeypatch.delenv(name)
    source = write(tmp_path, f"""
[server]
port = 9123
public_url = "https://box.example.test/base/"
trusted_proxies = ["10.0.0.0/8", "127.0.0.1"]
request_timeout = 12.5
sendfile = false
[storage]
data_dir = "{tmp_path / 'data'}"
min_free_bytes = "3GiB"
[security]
secret_key = "{'k' * 40}"
failed_auth_window = 90
[retention]
deleted = "2w"
pending_grace = 0
[metrics]
token = "scrape-me"
[logging]
format = "json"
[plans.free]
max_active_links = 7
rate_sustained = 2.5
[plans.team]
storage_bytes = 1234567
max_ttl = "14d"
default_ttl = "7d"
allow_never_ttl = false
""")
    monkeypatch.setenv("ARTIFACTA_BOX_TENANTS_UPGRADE_URL", "https://example.test/upgrade")
    original = load_settings(source)
    assert original.plans["team"].storage_bytes == 1234567
    shown = CliRunner().invoke(cli.main, ["config", "show", "--show-secrets", "--config", source])
    assert shown.exit_code == 0, shown.output
    monkeypatch.delenv("ARTIFACTA_BOX_TENANTS_UPGRADE_URL")
    again = tmp_path / "shown.toml"
    again.write_text(shown.output)
    reloaded = load_settings(str(again))
    assert _settings_without_source(reloaded) == _settings_without_source(original)
    assert reloaded.plans == original.plans
    # and printing the reloaded settings gives the same file again
    assert config_toml(reloaded, show_secrets=True).splitlines()[2:] == shown.output.splitlines()[2:]


def test_config_show_masks_secrets_as_comments_and_still_loads(tmp_path):
    path = write(tmp_path, f"[storage]\ndata_dir = 'data'\n[security]\nsecret_key = '{'z' * 40}'\n"
                           "[metrics]\ntoken = 'tok-secret'\n")
    s = load_settings(path, environ={})
    text = config_toml(s)
    assert "z" * 40 not in text and "tok-secret" not in text
    assert '# secret_key = "********"' in text
    reread = load_settings(write(tmp_path, text), environ={})
    assert reread.secret_key is None and reread.metrics_token is None
    assert replace(reread, config_file=None) == replace(s, config_file=None, secret_key=None,
                                                        metrics_token=None)


# ---------------------------------------------------------------------------- [s3]

S3_ENV = {"ARTIFACTA_BOX_STORAGE_BACKEND": "s3",
          "ARTIFACTA_BOX_S3_ENDPOINT": "http://127.0.0.1:8333/",
          "ARTIFACTA_BOX_S3_BUCKET": "box-blobs"}


def test_s3_backend_reads_its_section_from_the_environment_with_aws_fallbacks():
    s = load_settings(None, environ={**S3_ENV, "AWS_ACCESS_KEY_ID": "aws-id",
                                     "AWS_SECRET_ACCESS_KEY": "aws-secret", "AWS_REGION": "eu-1",
                                     "ARTIFACTA_BOX_S3_PREFIX": "/one/box/",
                                     "ARTIFACTA_BOX_S3_DOWNLOADS": "redirect",
                                     "ARTIFACTA_BOX_S3_REDIRECT_MIN_BYTES": "4MiB",
                                     "ARTIFACTA_BOX_S3_DIRECT_UPLOADS": "false"})
    assert s.storage_backend == "s3"
    assert (s.s3.endpoint, s.s3.bucket, s.s3.prefix) == ("http://127.0.0.1:8333", "box-blobs",
                                                         "one/box/")
    assert (s.s3.access_key_id, s.s3.secret_access_key, s.s3.region) == ("aws-id", "aws-secret",
                                                                         "eu-1")
    assert (s.s3.downloads, s.s3.redirect_min_bytes) == ("redirect", 4 * 2**20)
    assert s.s3.direct_uploads is False
    own = load_settings(None, environ={**S3_ENV, "AWS_ACCESS_KEY_ID": "aws-id",
                                       "AWS_SECRET_ACCESS_KEY": "aws-secret",
                                       "ARTIFACTA_BOX_S3_ACCESS_KEY_ID": "box-id",
                                       "ARTIFACTA_BOX_S3_SECRET_ACCESS_KEY": "box-secret"})
    assert (own.s3.access_key_id, own.s3.secret_access_key) == ("box-id", "box-secret")


def test_s3_secret_is_masked_by_config_show():
    s = load_settings(None, environ={**S3_ENV, "ARTIFACTA_BOX_S3_ACCESS_KEY_ID": "box-id",
                                     "ARTIFACTA_BOX_S3_SECRET_ACCESS_KEY": "box-secret-value"})
    shown = config_toml(s)
    assert "box-secret-value" not in shown and "box-id" in shown
    assert "box-secret-value" in config_toml(s, show_secrets=True)


@pytest.mark.parametrize(("env", "message"), [
    ({"ARTIFACTA_BOX_S3_ENDPOINT": ""}, "s3.endpoint: required"),
    ({"ARTIFACTA_BOX_S3_BUCKET": "Bad_Bucket"}, "s3.bucket: 'Bad_Bucket' is not a valid"),
    ({}, "s3.access_key_id: required (or set AWS_ACCESS_KEY_ID"),
    ({"ARTIFACTA_BOX_S3_DOWNLOADS": "mirror"}, "s3.downloads: must be"),
])
def test_s3_backend_settings_errors_name_the_setting(env, message):
    with pytest.raises(ConfigError) as exc:
        load_settings(None, environ={**S3_ENV, **env})
    assert message in str(exc.value)


def test_the_s3_section_is_ignored_by_a_local_box():
    s = load_settings(None, environ={"ARTIFACTA_BOX_S3_BUCKET": "Bad_Bucket"})
    assert s.storage_backend == "local" and s.s3 is None
