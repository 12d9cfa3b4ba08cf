"""Drive Debian's skopeo against the test server."""

from __future__ import annotations

import shutil
import subprocess

import pytest

needs_skopeo = pytest.mark.skipif(shutil.which("skopeo") is None, reason="make test installs it")


def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["skopeo", "--insecure-policy", *args], capture_output=True, text=True, timeout=180
    )


def copy(
    source: str, target: str, creds: str | None = None, *, all_images: bool = False
) -> subprocess.CompletedProcess[str]:
    """``skopeo copy`` with plain HTTP to the registry side and ``creds`` (user:secret) for it."""
    args = ["copy"]
    if all_images:
        args.append("--all")
    if source.startswith("docker://"):
        args.append("--src-tls-verify=false")
        if creds:
            args += ["--src-creds", creds]
    if target.startswith("docker://"):
        args.append("--dest-tls-verify=false")
        if creds:
            args += ["--dest-creds", creds]
    return skopeo(*args, source, target)
