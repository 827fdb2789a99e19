"""Every complete Python snippet in README.md runs as written (fragments say so in their first line)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SNIPPETS = [
    block
    for block in re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    if not block.startswith("# fragment")
]


def test_readme_has_snippets() -> None:
    assert len(SNIPPETS) >= 4


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_readme_snippet_runs(index: int, tmp_path: Path) -> None:
    snippet = SNIPPETS[index]
    for module in re.findall(r"^(?:import|from) (\w+)", snippet, re.M):
        if module in {"torch", "keras", "tensorflow", "jax", "optax"}:
            from frameworks import require

            require(module)
    result = subprocess.run(
        [sys.executable, "-c", snippet],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
