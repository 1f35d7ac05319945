"""The documentation a new user is pointed to exists, is linked, and keeps up with the code."""

import re
import subprocess
from pathlib import Path

import attrs
import pytest

import snakepit

ROOT = Path(__file__).resolve().parents[1]


def test_readme_links_every_guide_and_decision():
    readme = (ROOT / "README.md").read_text()
    for doc in sorted((ROOT / "docs").glob("*.md")):
        assert f"docs/{doc.name}" in readme, f"README does not link docs/{doc.name}"
    for adr in sorted((ROOT / "ADR").glob("[0-9]*.md")):
        assert adr.name[:4] in readme, f"README does not mention ADR {adr.name}"


@pytest.mark.parametrize("klass", [snakepit.Config, snakepit.PoolConfig,
                                   snakepit.SessionConfig, snakepit.HeartbeatConfig])
def test_configuration_guide_has_every_field(klass):
    guide = (ROOT / "docs" / "configuration.md").read_text()
    section = guide[guide.index(f"`{klass.__name__}`"):]
    missing = [f.name for f in attrs.fields(klass) if f"| `{f.name}` |" not in section]
    assert missing == [], f"docs/configuration.md lacks {klass.__name__} fields {missing}"


def test_telemetry_guide_covers_prometheus_and_opentelemetry():
    guide = (ROOT / "docs" / "telemetry.md").read_text()
    assert "## Prometheus" in guide and "## OpenTelemetry" in guide
    from snakepit.telemetry.metrics import GAUGES
    for name in GAUGES:
        assert f"snakepit_pool_{name}" in guide            # Prometheus
        assert f"snakepit.pool.{name}" in guide or f"`.{name}`" in guide   # OpenTelemetry


def test_no_file_cites_a_document_that_is_not_in_the_repository():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    cited = set()
    for name in files:
        path = ROOT / name
        if path.suffix in (".py", ".md", ".toml", ".rb", ".js", ".proto") or name == "Makefile":
            for ref in re.findall(r"\b((?:docs|ADR)/[\w.-]+\.md|[A-Z][A-Z_]+\.md)\b",
                                  path.read_text(errors="replace")):
                cited.add((ref, name))
    dangling = sorted((ref, name) for ref, name in cited
                      if not any((ROOT / d / ref).exists() for d in ("", "protos",
                                                                      "benchmarks")))
    assert dangling == [], dangling
