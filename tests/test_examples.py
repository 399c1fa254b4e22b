"""The runnable examples in ``examples/``: each runs, passes its own checks and writes its figure.

The scripts check their results against independent answers and exit non-zero on a failed check,
so running them is a test. They run in this process (``runpy``; torch and matplotlib are imported
once) with ``--out`` in a temporary directory; one runs as a real subprocess, the way a user runs
it, to check the command line, the exit code and that nothing is written into the repository.
"""

from __future__ import annotations

import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SCRIPTS = {
    "seed_camera.py": "seed_camera.png",
    "learned_crop_camera.py": "learned_crop_camera.png",
    "augment_sample.py": "augment_sample.png",
    "theta_and_pixels.py": "theta_and_pixels.png",
    "undistort_image.py": "undistort_image.png",
}


def _run_in_process(script: str, args: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", [str(EXAMPLES / script), *args])
    monkeypatch.syspath_prepend(str(EXAMPLES))  # as `python examples/x.py` does: finds examples/_common.py
    try:
        runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    except SystemExit as exc:  # a failed self-check
        pytest.fail(f"{script} exited with {exc.code!r}")


def test_every_example_is_tested_and_listed() -> None:
    on_disk = {p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")}  # _common.py: shared helpers
    assert on_disk == set(SCRIPTS), f"examples/ holds {sorted(on_disk)}, the test knows {sorted(SCRIPTS)}"
    readme = (EXAMPLES / "README.md").read_text()
    for script in SCRIPTS:
        assert f".venv/bin/python examples/{script}" in readme, f"examples/README.md lacks the command for {script}"


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_example_runs_and_passes_its_checks(script: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    _run_in_process(script, ["--out", str(tmp_path)], monkeypatch)
    out = capsys.readouterr().out
    assert "FAILED" not in out
    assert out.rstrip().endswith("all checks passed"), out[-2000:]
    assert len(re.findall(r"\[ok\]", out)) >= 4, "an example should check several things"
    figure = tmp_path / SCRIPTS[script]
    assert figure.is_file() and figure.stat().st_size > 5000, f"{script} wrote no figure into --out"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_failed_check_exits_non_zero() -> None:
    # Load a script without running main() and trip its check helper: it must stop with a message
    # (Python turns a str exit code into exit status 1).
    for script in SCRIPTS:
        check = runpy.run_path(str(EXAMPLES / script), run_name="example_under_test")["check"]
        check(True, "passes")
        with pytest.raises(SystemExit) as exc:
            check(False, "a deliberately failing check")
        assert exc.value.code and "a deliberately failing check" in str(exc.value.code), script


def test_example_as_a_command(tmp_path: Path) -> None:
    # As a user runs it: a fresh interpreter, no --out (a new temp dir), started outside the repo.
    env = dict(os.environ, TMPDIR=str(tmp_path))
    proc = subprocess.run([sys.executable, str(EXAMPLES / "theta_and_pixels.py")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    figure = Path(re.search(r"^figure: (.+)$", proc.stdout, re.M).group(1))
    assert figure.is_file() and tmp_path in figure.parents, f"default --out should be a temp dir, got {figure}"
    assert ROOT not in figure.parents
