"""skopeo (Debian) copies images into a feed and back, byte for byte."""

from __future__ import annotations

from pathlib import Path

from tests.factories import make_image, make_index, read_oci_layout, write_oci_layout
from tests.skopeo import copy, needs_skopeo

pytestmark = needs_skopeo


def test_image_and_index_round_trip(registry, repo, tmp_path: Path):
    layout = write_oci_layout(
        tmp_path / "src",
        {"single": make_image(layers=3, seed="skopeo"), "multi": make_index("skopeo")},
    )
    target = f"docker://{registry.host}/{repo}"
    creds = ":".join(registry.auth)
    for tag, image_tag, everything in (("1.0.0", "single", False), ("multi", "multi", True)):
        result = copy(f"oci:{layout}:{image_tag}", f"{target}:{tag}", creds, all_images=everything)
        assert result.returncode == 0, result.stderr

    out = tmp_path / "out"
    for tag, image_tag, everything in (("1.0.0", "single", False), ("multi", "multi", True)):
        result = copy(f"{target}:{tag}", f"oci:{out}:{image_tag}", creds, all_images=everything)
        assert result.returncode == 0, result.stderr

    assert read_oci_layout(out) == read_oci_layout(layout)
