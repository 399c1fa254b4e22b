"""The README's Python and `camwarp camera` examples run and print what the README says."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from camwarp.cli import main

README = (Path(__file__).parents[1] / "README.md").read_text()


@pytest.mark.parametrize("block", re.findall(r"```python\n(.*?)```", README, re.S))
def test_python_blocks_run(block):
    exec(compile(block, "README.md", "exec"), {})


def test_seed_cli_example_prints_the_table(capsys):
    command = re.search(r"\./run camwarp (camera .*?)\n```", README, re.S).group(1).replace("\\\n", " ")
    assert main(shlex.split(command)) == 0
    printed = capsys.readouterr().out
    expected = re.search(r"prints\n\n```\n(.*?)```", README, re.S).group(1)
    assert [line.split() for line in printed.strip().splitlines()] == \
        [line.split() for line in expected.strip().splitlines()]
