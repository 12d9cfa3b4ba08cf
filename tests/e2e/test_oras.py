"""The oras Python SDK pushes and pulls artifacts; referrers are listed by the referrers API."""

from __future__ import annotations

import json
from pathlib import Path

import oras.client
import oras.oci

from tests.factories import OCI_INDEX, canonical, digest_of

SBOM_TYPE = "application/vnd.example.sbom+json"
SIGNATURE_TYPE = "application/vnd.example.signature"


def _client(registry) -> oras.client.OrasClient:
    sdk = oras.client.OrasClient(insecure=True)
    sdk.auth.set_basic_auth(*registry.auth)
    return sdk


def _push_referrer(
    client: oras.client.OrasClient, name: str, tmp_path: Path, artifact_type: str, subject: dict
) -> str:
    """Push a tag-less artifact with subject ``subject`` into ``host/repo``; return its digest."""
    container = client.get_container(name)
    payload = tmp_path / f"{artifact_type.rsplit('.', 1)[-1]}.json"
    payload.write_text(json.dumps({"kind": artifact_type}))
    layer = oras.oci.NewLayer(str(payload), media_type="application/json")
    client.upload_blob(str(payload), container, layer)
    empty = tmp_path / "empty.json"
    empty.write_bytes(b"{}")
    config = {
        "mediaType": "application/vnd.oci.empty.v1+json",
        "digest": digest_of(b"{}"),
        "size": 2,
    }
    client.upload_blob(str(empty), container, config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": artifact_type,
        "config": config,
        "layers": [layer],
        "subject": subject,
        "annotations": {"org.example.signed-by": "tests"},
    }
    by_digest = client.get_container(f"{name}@{digest_of(canonical(manifest))}")
    response = client.do_request(
        f"http://{by_digest.manifest_url()}",
        "PUT",
        headers={"Content-Type": manifest["mediaType"]},
        data=canonical(manifest),
    )
    assert response.status_code == 201, response.text
    assert response.headers["OCI-Subject"] == subject["digest"]
    return digest_of(canonical(manifest))


def test_push_pull_artifact_and_referrers(registry, client, repo, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    artifact = tmp_path / "notes.txt"
    artifact.write_text("semreg artifact\n" * 100)
    sdk = _client(registry)
    target = f"{registry.host}/{repo}:1.0.0"

    pushed = sdk.push(target=target, files=[f"{artifact.name}:text/plain"])
    assert pushed.status_code == 201

    outdir = tmp_path / "pulled"
    files = sdk.pull(target=target, outdir=str(outdir))
    assert [Path(f).read_bytes() for f in files] == [artifact.read_bytes()]

    head = client.head(f"/v2/{repo}/manifests/1.0.0")
    subject = {
        "mediaType": head.headers["Content-Type"],
        "digest": head.headers["Docker-Content-Digest"],
        "size": int(head.headers["Content-Length"]),
    }
    sbom = _push_referrer(sdk, f"{registry.host}/{repo}", tmp_path, SBOM_TYPE, subject)
    signature = _push_referrer(sdk, f"{registry.host}/{repo}", tmp_path, SIGNATURE_TYPE, subject)

    listed = client.get(f"/v2/{repo}/referrers/{subject['digest']}")
    assert listed.status_code == 200
    assert listed.headers["Content-Type"] == OCI_INDEX
    found = {m["digest"]: m for m in listed.json()["manifests"]}
    assert set(found) == {sbom, signature}
    assert found[sbom]["artifactType"] == SBOM_TYPE
    assert found[sbom]["annotations"] == {"org.example.signed-by": "tests"}

    filtered = client.get(
        f"/v2/{repo}/referrers/{subject['digest']}", params={"artifactType": SBOM_TYPE}
    )
    assert [m["digest"] for m in filtered.json()["manifests"]] == [sbom]
    assert filtered.headers["OCI-Filters-Applied"] == "artifactType"

    # The artifact itself is pulled back through the SDK by digest as well.
    manifest = sdk.get_manifest(f"{registry.host}/{repo}@{sbom}")
    assert manifest["artifactType"] == SBOM_TYPE
