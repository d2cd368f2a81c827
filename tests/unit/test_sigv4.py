"""SigV4 signing checked against AWS's published examples, and the properties presigned URLs
rely on (what is signed, where the URL points)."""

from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from artifacta_box.storage.s3.sigv4 import Credentials, Signer, uri_encode

# https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html and
# https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html (examples)
AWS = Signer(Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
             "us-east-1")
WHEN = datetime(2013, 5, 24, tzinfo=UTC)
HOST = "https://examplebucket.s3.amazonaws.com"


def test_presigned_get_matches_the_aws_example():
    url = AWS.presign_url("GET", HOST, "/test.txt", 86400, now=WHEN)
    assert url == (
        "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
        "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
        "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404")


def test_header_signed_ranged_get_matches_the_aws_example():
    url, headers = AWS.sign_request("GET", HOST, "/test.txt", headers={"Range": "bytes=0-9"},
                                    now=WHEN)
    assert url == "https://examplebucket.s3.amazonaws.com/test.txt"
    assert headers["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    assert headers["x-amz-content-sha256"] == \
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_header_signed_put_matches_the_aws_example():
    body = b"Welcome to Amazon S3."
    _url, headers = AWS.sign_request(
        "PUT", HOST, "/test$file.text", body=body, now=WHEN,
        headers={"Date": "Fri, 24 May 2013 00:00:00 GMT", "x-amz-storage-class": "REDUCED_REDUNDANCY"})
    assert headers["authorization"].endswith(
        "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class, "
        "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd")


def test_response_parameters_and_headers_are_part_of_the_signature():
    plain = AWS.presign_url("GET", HOST, "/k", 60, now=WHEN)
    with_disposition = AWS.presign_url("GET", HOST, "/k", 60, now=WHEN,
                                       query={"response-content-disposition": "attachment"})
    put = AWS.presign_url("PUT", HOST, "/k", 60, now=WHEN,
                          headers={"Content-Length": "5", "If-None-Match": "*"})
    sig = lambda u: parse_qs(urlsplit(u).query)["X-Amz-Signature"][0]  # noqa: E731
    assert sig(plain) != sig(with_disposition)
    assert parse_qs(urlsplit(with_disposition).query)["response-content-disposition"] == ["attachment"]
    assert parse_qs(urlsplit(put).query)["X-Amz-SignedHeaders"] == ["content-length;host;if-none-match"]


def test_keys_are_encoded_once_and_slashes_kept():
    url = AWS.presign_url("GET", "http://127.0.0.1:8333", "/bucket/a b/ü+x", 60, now=WHEN)
    assert urlsplit(url).path == "/bucket/a%20b/%C3%BC%2Bx"
    assert uri_encode("a/b~c") == "a%2Fb~c"


def test_expiry_outside_what_s3_accepts_is_refused():
    for seconds in (0, 7 * 86400 + 1):
        with pytest.raises(ValueError):
            AWS.presign_url("GET", HOST, "/k", seconds)


def test_the_secret_never_shows_in_a_repr():
    assert "wJalr" not in repr(AWS)
