"""ruff lint and format: the style rules of pyproject.toml hold for the whole tree."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUFF = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")


@pytest.mark.skipif(RUFF is None, reason="ruff is not installed (it comes with the test extras)")
@pytest.mark.parametrize("args", [["check"], ["format", "--check"]])
def test_ruff(args):
    res = subprocess.run(
        [RUFF, *args, "bayes_sc", "tests", "benchmarks"], cwd=REPO, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stdout + res.stderr
