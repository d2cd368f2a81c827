"""errors.py is the one declaration of the API's error codes: each code one class, the table of
statuses derived from the classes, and the docstring's hierarchy naming every one of them."""

from __future__ import annotations

import re

import pytest

from artifacta_box import errors


def test_each_code_is_one_class_and_the_table_is_derived_from_them():
    codes = [cls.code for cls in errors.ALL_ERRORS]
    assert len(codes) == len(set(codes))
    assert {cls.code: cls.status for cls in errors.ALL_ERRORS} == errors.ERROR_CODES
    assert errors.ERROR_CODES["request_timeout"] == 408
    assert errors.ERROR_CODES["range_not_satisfiable"] == 416
    # the one code answered at a second status, kept explicit
    assert [(c.code, c.status) for c in errors.STATUS_VARIANTS] == [("invalid_request", 431)]
    assert issubclass(errors.HeadersTooLarge, errors.InvalidRequest)


def test_the_docstring_lists_every_class_with_its_status_and_code():
    doc = errors.__doc__ or ""
    listed = {m.group(1): (int(m.group(2)), m.group(3))
              for m in re.finditer(r"(\w+)\s+(\d{3}) (\w+)", doc)}
    for cls in (*errors.ALL_ERRORS, *errors.STATUS_VARIANTS):
        assert listed.get(cls.__name__) == (cls.status, cls.code), cls.__name__
    assert set(listed) == {c.__name__ for c in (errors.ApiError, *errors.ALL_ERRORS,
                                                *errors.STATUS_VARIANTS)}


def test_a_second_class_for_a_code_is_refused():
    class Again(errors.ApiError):
        code = "conflict"
        status = 409

    Again.__module__ = errors.__name__
    with pytest.raises(TypeError, match="conflict"):
        errors.declared_errors({**vars(errors), "Again": Again})
