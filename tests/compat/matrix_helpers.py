"""The configuration of the official-client matrices (test_sdk_matrix, test_cli_matrix,
test_mcp): one box per module with plans that make every error reachable."""

from __future__ import annotations

# `matrix` is generous; `tiny` makes 413 cheap; `slow` makes 429 reachable in a few requests;
# `free` (built in) has one metadata filter and no ttl `never`.
MATRIX_CONFIG = """
[tenants]
default_plan = "matrix"

[plans.matrix]
rate_sustained = 100000
rate_burst = 100000

[plans.tiny]
rate_sustained = 100000
rate_burst = 100000
max_multipart_size = "1000"
max_json_size = "1000"
max_presigned_size = "1000"

[plans.slow]
rate_sustained = 0.01
rate_burst = 3

[logging]
access_log = false
"""
