"""[s3] settings: validated once, errors name the setting, AWS variables as fallbacks."""

import pytest

from artifacta_box.storage.s3.settings import S3Settings, S3SettingsError

BASE = {"endpoint": "http://127.0.0.1:8333", "bucket": "box", "access_key_id": "AK",
        "secret_access_key": "SK"}


def build(environ=None, **values):
    return S3Settings.build({**BASE, **values}, environ or {})


def test_defaults_and_normalisation():
    s = build(prefix="/team/box/", endpoint="https://s3.example.com/", downloads="Redirect")
    assert (s.region, s.prefix, s.endpoint, s.downloads) == (
        "us-east-1", "team/box/", "https://s3.example.com", "redirect")
    assert s.client_endpoint == "https://s3.example.com"
    assert build(public_endpoint="https://files.example.com").client_endpoint == \
        "https://files.example.com"
    assert s.redirect_min_bytes == 1024 * 1024
    assert s.direct_uploads is True and build(direct_uploads=False).direct_uploads is False


def test_credentials_and_region_fall_back_to_the_aws_variables():
    env = {"AWS_ACCESS_KEY_ID": "ENVAK", "AWS_SECRET_ACCESS_KEY": "ENVSK", "AWS_REGION": "eu-west-1"}
    s = S3Settings.build({"endpoint": "http://h:1", "bucket": "box"}, env)
    assert (s.access_key_id, s.secret_access_key, s.region) == ("ENVAK", "ENVSK", "eu-west-1")
    own = build(env, region="us-west-2")
    assert (own.access_key_id, own.region) == ("AK", "us-west-2")  # the box's settings win


@pytest.mark.parametrize(("values", "named"), [
    ({"endpoint": None}, "s3.endpoint: required"),
    ({"endpoint": "ftp://h"}, "s3.endpoint: expected http://"),
    ({"endpoint": "http://user:pw@h"}, "s3.endpoint:"),
    ({"endpoint": "http://h:notaport"}, "s3.endpoint:"),
    ({"public_endpoint": "h:9000"}, "s3.public_endpoint:"),
    ({"bucket": None}, "s3.bucket: required"),
    ({"direct_uploads": "no"}, "s3.direct_uploads: expected true or false"),
    ({"bucket": "Box_Bucket"}, "s3.bucket: 'Box_Bucket' is not a valid bucket name"),
    ({"access_key_id": None}, "s3.access_key_id: required (or set AWS_ACCESS_KEY_ID"),
    ({"secret_access_key": ""}, "s3.secret_access_key: required"),
    ({"prefix": "a b"}, "s3.prefix:"),
    ({"downloads": "stream"}, "s3.downloads: expected \"proxy\" or \"redirect\""),
    ({"redirect_min_bytes": -1}, "s3.redirect_min_bytes:"),
])
def test_bad_values_name_the_setting(values, named):
    with pytest.raises(S3SettingsError) as exc:
        build(**values)
    assert str(exc.value).startswith(named)


def test_the_secret_is_not_in_the_repr():
    assert "very-secret" not in repr(build(secret_access_key="SK-very-secret"))
