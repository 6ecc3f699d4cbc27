"""Every example config in examples/ passes ``pointsman check``."""

from __future__ import annotations

from pathlib import Path

import pytest

from pointsman.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("config", sorted(EXAMPLES.rglob("*.toml")), ids=lambda p: p.name)
def test_example_config_checks(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "-c", str(config)]) == 0, capsys.readouterr().err
