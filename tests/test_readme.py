"""The README's promises: a two-command Quick start, and Python blocks that run."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"^## {title}\n(.*?)(?=^## )", text, flags=re.S | re.M)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def test_quick_start_is_two_commands_demo_then_tests():
    block = re.search(r"```bash\n(.*?)```", _section("Quick start"), flags=re.S).group(1)
    commands = [line for line in block.splitlines() if line.strip()]
    assert len(commands) == 2
    assert commands[0].endswith("tabresnet demo")
    ci = (README.parent / ".ci" / "run").read_text()
    assert commands[1] in ci  # CI runs exactly the README's test command


def test_python_blocks_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    assert blocks
    spaces = []
    for code in blocks:
        namespace: dict = {}
        exec(compile(code, str(README), "exec"), namespace)  # noqa: S102 - our own README
        spaces.append(namespace)
    assert (tmp_path / "runs" / "diabetes" / "model.json").is_file()
    assert len(next(ns for ns in spaces if "predictions" in ns)["predictions"]) == 442
