"""Source comments cite papers and projects, never paths users do not have."""

from __future__ import annotations

from pathlib import Path

import pytest

from devices import presets
from devices.presets import PRESETS

ROOT = Path(__file__).resolve().parents[1]


def test_no_citation_points_into_a_shared_folder():
    offenders = []
    paths = [ROOT / "README.md"]
    for folder in ("mappings", "devices", "sim", "docs", "examples", "benchmarks", "tests"):
        paths += sorted((ROOT / folder).glob("**/*"))
    for path in paths:
        if path.suffix not in (".py", ".md", ".toml") or not path.is_file():
            continue
        if path.resolve() == Path(__file__).resolve():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if "shared/reference" in text or "/work/shared" in text:
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


@pytest.mark.parametrize("name", ["rram_wan2022", "rram_ibm_hfox", "rram_milo2021"])
def test_rram_read_noise_is_one_percent_of_g_max_as_documented(name):
    d = PRESETS[name]
    assert d.read.kind == "constant" and d.read.coeffs[0] == pytest.approx(0.01 * d.g_max)
    doc = presets.__doc__ + Path(presets.__file__).read_text()
    assert "% of range" not in doc and "1 % of g_max" in doc
