"""The package root lists what can be run: every command is a module, a script and a line of ``python -m brainsegfounder``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from brainsegfounder import __main__ as commands

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

REPO = Path(__file__).resolve().parents[1]


def test_every_command_is_a_script_and_every_script_a_command():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {f"bsf-{name}": f"brainsegfounder.__main__:{name}" for name in commands.COMMANDS}
    for name in commands.COMMANDS:
        assert callable(getattr(commands, name))


def test_python_m_brainsegfounder_lists_the_commands():
    out = subprocess.run([sys.executable, "-m", "brainsegfounder"], capture_output=True, text=True, check=True).stdout
    assert [line.split()[0] for line in out.splitlines()[1:]] == list(commands.COMMANDS)


@pytest.mark.parametrize("name", ["fit", "evaluate"])
def test_a_script_answers_help_with_status_0(name, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [f"bsf-{name}", "--help"])
    try:
        status = getattr(commands, name)()
    except SystemExit as done:  # jsonargparse's --help exits
        status = done.code
    assert status in (0, None)
    assert "--" in capsys.readouterr().out
