"""``pip install`` of a built wheel gives a pointsman that runs on its bundled files alone.

The source tree hides packaging mistakes: a data file missing from
``package-data`` is still found next to the code. Here the wheel is built
from a copy of the tree, installed into a folder of its own, and that copy
alone serves the bundled default config: the welcome page and the dashboard
come from files inside the wheel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

from harness import ROOT, start_pointsman

BUNDLED = ("pointsman/py.typed", "pointsman/defaults/pointsman.toml",
           "pointsman/defaults/welcome/index.html", "pointsman/control/static/index.html",
           "pointsman/wire/envelope.proto")


def build_and_install(tmp_path: Path) -> Path:
    """The wheel built from a copy of the tree, installed under ``tmp_path / "site"``."""
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tree / name)
    shutil.copytree(ROOT / "src", tree / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "--wheel-dir", str(wheels), str(tree)],
                   check=True, capture_output=True, timeout=180)
    [wheel] = wheels.glob("pointsman-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert set(BUNDLED) <= names, set(BUNDLED) - names
    assert not any(name.startswith(("tests/", "bench/")) for name in names)
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=180)
    return site


def fetch(url: str, host: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.status, answer.read().decode()


def test_installed_wheel_serves_its_bundled_defaults(
        tmp_path: Path, free_port: Callable[[], int]) -> None:
    site = build_and_install(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(site))
    version = subprocess.run([sys.executable, str(site / "bin" / "pointsman"), "version"],
                             capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert version.returncode == 0 and version.stdout.strip().endswith("0.1.0"), version
    where = subprocess.run([sys.executable, "-c", "import pointsman; print(pointsman.__file__)"],
                           capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert where.stdout.strip().startswith(str(site)), where

    # The bundled default, as installed, on free ports instead of 8080 and 9901.
    defaults = tmp_path / "defaults"
    shutil.copytree(site / "pointsman" / "defaults", defaults)
    web, admin = free_port(), free_port()
    config = defaults / "pointsman.toml"
    config.write_text(config.read_text().replace("127.0.0.1:8080", f"127.0.0.1:{web}")
                      .replace("127.0.0.1:9901", f"127.0.0.1:{admin}"))
    server = start_pointsman("serve", "-c", str(config), cwd=tmp_path, path=site)
    try:
        status, page = fetch(f"http://127.0.0.1:{web}/", host=f"localhost:{web}")
        assert status == 200 and "pointsman" in page.lower()
        status, dashboard = fetch(f"http://127.0.0.1:{admin}/")
        assert status == 200 and "<html" in dashboard.lower()
    finally:
        server.stop()
