"""`artifacta-box audit`: the trail of admin and destructive actions, filterable by tenant,
action (or action group), time, with a limit; human table or --json."""

from __future__ import annotations

from tests.helpers import sql, upload
from tests.ops_helpers import admin_json, iso_ago


def test_admin_and_destructive_actions_are_audited_and_queryable(make_server):
    srv = make_server()
    key = srv.new_tenant_with_cli("acme")
    key_id = admin_json(srv, "keys", "list", "--tenant", "acme")[0]["key_id"]
    srv.admin("keys", "revoke", key_id)
    srv.admin("tenants", "set-plan", "acme", "free")
    srv.admin("tenants", "suspend", "acme")
    srv.admin("tenants", "resume", "acme")
    api = srv.client()
    art = upload(api, b"to delete", session_id="run-1")
    api.delete(f"/v1/artifacts/{art['artifact_id']}")
    api.post("/v1/sessions/run-1/seal")
    assert key  # the new key was printed once

    everything = admin_json(srv, "audit")
    actions = [e["action"] for e in everything]
    for expected in ("tenant.create", "key.create", "key.revoke", "tenant.set_plan",
                     "tenant.suspend", "tenant.resume", "artifact.delete", "session.seal"):
        assert expected in actions, expected
    assert everything == sorted(everything, key=lambda e: e["at"], reverse=True)

    acme = admin_json(srv, "audit", "--tenant", "acme")
    assert {e["tenant"] for e in acme} == {"acme"}
    assert [e["action"] for e in acme][::-1][:2] == ["tenant.create", "key.create"]
    keys = admin_json(srv, "audit", "--action", "key")
    assert {e["action"] for e in keys} == {"key.create", "key.revoke"}
    revoke = admin_json(srv, "audit", "--action", "key.revoke")
    assert len(revoke) == 1 and revoke[0]["target"] == key_id and revoke[0]["actor"] == "cli"
    delete = admin_json(srv, "audit", "--action", "artifact.delete")[0]
    assert delete["target"] == art["artifact_id"] and delete["actor"].startswith("key:")
    assert len(admin_json(srv, "audit", "--limit", "2")) == 2

    sql(srv, "UPDATE audit_log SET at = ? WHERE action = 'tenant.create'", (iso_ago(10 * 86400),))
    recent = admin_json(srv, "audit", "--since", iso_ago(86400)[:10])
    assert "tenant.create" not in [e["action"] for e in recent] and recent

    table = srv.admin("audit", "--tenant", "acme").stdout
    assert table.splitlines()[0].split() == ["AT", "ACTOR", "ACTION", "TENANT", "TARGET", "DETAILS"]
    bad = srv.admin("audit", "--since", "last tuesday", check=False)
    assert bad.returncode != 0 and "--since" in bad.stderr and "Traceback" not in bad.stderr
