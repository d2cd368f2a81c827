"""The key cache trusts an entry only while the shared generation stands still: a bump from any
process (another worker, the admin CLI) drops it there too, from the next lookup on."""

from __future__ import annotations

from artifacta_box.security.keycache import KeyCache, SharedGeneration


def test_a_bump_from_another_process_drops_every_cached_entry(tmp_path):
    path = tmp_path / "keys.generation"
    clock = [0.0]
    server = KeyCache(SharedGeneration(path), max_age=2.0, clock=lambda: clock[0])
    admin = KeyCache(SharedGeneration(path))  # as `artifacta-box keys revoke` opens it
    g = server.generation()
    server.put("hash-a", "principal-a", g)
    assert server.get("hash-a") == "principal-a"
    admin.invalidate()
    assert server.get("hash-a") is None
    # a lookup that read the generation before a bump never becomes trusted
    stale = server.generation()
    admin.invalidate()
    server.put("hash-b", "principal-b", stale)
    assert server.get("hash-b") is None
    server.put("hash-b", "principal-b", server.generation())
    assert server.get("hash-b") == "principal-b"
    clock[0] += 2.0  # and nothing is trusted for longer than max_age
    assert server.get("hash-b") is None
    server.close()
    admin.close()


def test_bumps_never_collapse(tmp_path):
    path = tmp_path / "keys.generation"
    handles = [SharedGeneration(path) for _ in range(3)]
    for _ in range(10):
        for h in handles:
            h.bump()
    assert {h.read() for h in handles} == {30}
    for h in handles:
        h.close()
