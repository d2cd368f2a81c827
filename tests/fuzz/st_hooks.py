"""Schemathesis hooks for the fuzz run (loaded through SCHEMATHESIS_HOOKS).

`error_envelope` holds every error response of every request the fuzzer sends — including the
undocumented methods and missing-auth probes that no operation schema covers — to the error
envelope of the OpenAPI document (`ErrorEnvelope`): a JSON body of exactly `{"error": {"code", "message", "status", ...}}`, a documented code whose
HTTP status is the response's, and a message for humans that never carries a traceback.
"""

from __future__ import annotations

import json
import re

import schemathesis

from artifacta_box.errors import ERROR_CODES
from artifacta_box.http.openapi import HEADERS_TOO_LARGE

EXTRA_FIELDS = {"retry_after_seconds", "retry_after", "upgrade_url"}


@schemathesis.check
def error_envelope(ctx, response, case):
    status = response.status_code
    if status < 400:
        return
    method = (response.request.method or "").upper()
    if method == "HEAD":
        assert not response.content, f"HEAD {status} answered with a body"
        return
    ctype = (response.headers.get("content-type") or [""])[0]
    assert ctype.startswith("application/json"), f"{status} error with Content-Type {ctype!r}"
    try:
        body = json.loads(response.content)
    except ValueError as exc:
        raise AssertionError(f"{status} error body is not JSON: {exc}") from None
    assert isinstance(body, dict) and set(body) == {"error"}, f"not the envelope: {body!r}"
    err = body["error"]
    assert isinstance(err, dict), f"error is not an object: {body!r}"
    assert {"code", "message", "status"} <= set(err), f"error lacks code/message/status: {err!r}"
    assert set(err) - {"code", "message", "status"} <= EXTRA_FIELDS, f"unknown error fields: {err!r}"
    code = err["code"]
    assert code in ERROR_CODES, f"undocumented error code {code!r}"
    assert err["status"] == status, f"error.status {err['status']!r} != HTTP {status}"
    assert ERROR_CODES[code] == status or (code, status) == HEADERS_TOO_LARGE, (
        f"code {code!r} is documented as {ERROR_CODES[code]}, answered with {status}")
    message = err["message"]
    assert isinstance(message, str) and message.strip(), "empty error message"
    assert "Traceback" not in message and 'File "' not in message, f"traceback leaked: {message!r}"
    if status == 429:
        retry = response.headers.get("retry-after")
        assert retry and retry[0].isdigit() and int(retry[0]) >= 1, "429 without Retry-After"
        assert err.get("retry_after_seconds") == int(retry[0]), "retry_after_seconds != Retry-After"
    if status == 405:
        assert response.headers.get("allow"), "405 without an Allow header"
    return


@schemathesis.hook
def filter_failure(context, failure, case, response) -> bool:  # noqa: ANN001 - hook signature
    """Drop two known schemathesis 4.x false positives of `negative_data_rejection` (ST201);
    every other failure is kept.

    - A *type* mutation of a multipart/form-data text field is not invalid on the wire: a form
      field is text, so `null` is sent as the string "null" and an empty array as no field at
      all — both valid requests, rightly accepted.
    - In the stateful phase schemathesis sometimes labels a step "positive test case" and
      still holds it to the negative check; a valid request that succeeds is correct.
    """
    if failure.code != "ST201":
        return True
    message = failure.message or ""
    if "Invalid component: positive test case" in message:
        return False
    if (case.media_type or "").startswith("multipart/form-data"):
        # one mutation is reported inline, several one per line: "violates `<keyword>` at ..."
        keywords = re.findall(r"violates `([A-Za-z]+)`", message)
        if keywords and all(k == "type" for k in keywords):
            return False
    return True
