"""The licence the project declares is the licence it ships: the Apache License 2.0, word for
word."""

from __future__ import annotations

import hashlib
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LICENSE = ROOT / "LICENSE"
# SHA-256 of https://www.apache.org/licenses/LICENSE-2.0.txt (also Debian's
# /usr/share/common-licenses/Apache-2.0): the standard text, appendix included.
APACHE_2_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"


def test_the_license_file_is_the_standard_apache_2_text() -> None:
    assert LICENSE.is_file(), "no LICENSE file at the top of the repository"
    text = LICENSE.read_text(encoding="utf-8")
    assert re.match(r"\s*Apache License\s+Version 2\.0, January 2004", text)
    assert "END OF TERMS AND CONDITIONS" in text
    assert hashlib.sha256(LICENSE.read_bytes()).hexdigest() == APACHE_2_SHA256


def test_the_package_and_the_image_declare_the_same_license() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = project["license"]
    assert (declared["text"] if isinstance(declared, dict) else declared) == "Apache-2.0"
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert 'org.opencontainers.image.licenses="Apache-2.0"' in dockerfile
