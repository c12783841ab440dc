"""The Python tree reads as STYLE.md asks, as far as a tool can tell: flake8 (pyflakes' unused
and undefined names, pycodestyle's layout with lines of up to 120 characters, set in .flake8)
finds nothing in the package, the viewer, the benchmarks and the tests."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHECKED = ["render3d", "viewer", "bench", "tests"]


def flake8(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flake8", "--config", str(REPO / ".flake8"), *args],
                          cwd=REPO, capture_output=True, text=True, timeout=300)


def test_flake8_finds_nothing_in_the_tree():
    result = flake8(*CHECKED)
    assert result.returncode == 0 and not result.stdout, f"flake8 found:\n{result.stdout}{result.stderr}"


def test_flake8_config_catches_what_it_should(tmp_path):
    """The config above is live: a long line and an unused import are reported, a 120-character
    line is not."""
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n\n" + "x = '" + "a" * 120 + "'\n" + "y = '" + "b" * 114 + "'\n")
    result = flake8(str(bad))
    codes = sorted(line.split()[1] for line in result.stdout.splitlines())
    assert result.returncode == 1 and codes == ["E501", "F401"], result.stdout + result.stderr
    assert ":3:121: E501" in result.stdout
