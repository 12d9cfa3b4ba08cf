"""skopeo (Debian) copies images into a feed and back, byte for byte."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.factories import make_image, make_index, read_oci_layout, write_oci_layout

pytestmark = pytest.mark.skipif(shutil.which("skopeo") is None, reason="make test installs skopeo")


def skopeo(*args: str) -> None:
    result = subprocess.run(
        ["skopeo", "--insecure-policy", *args], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def test_image_and_index_round_trip(registry, repo, tmp_path: Path):
    layout = write_oci_layout(
        tmp_path / "src",
        {"single": make_image(layers=3, seed="skopeo"), "multi": make_index("skopeo")},
    )
    target = f"docker://{registry.host}/{repo}"
    skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:single", f"{target}:1.0.0")
    skopeo("copy", "--all", "--dest-tls-verify=false", f"oci:{layout}:multi", f"{target}:multi")

    out = tmp_path / "out"
    skopeo("copy", "--src-tls-verify=false", f"{target}:1.0.0", f"oci:{out}:single")
    skopeo("copy", "--all", "--src-tls-verify=false", f"{target}:multi", f"oci:{out}:multi")

    assert read_oci_layout(out) == read_oci_layout(layout)
