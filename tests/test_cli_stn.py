"""``camwarp stn train|eval`` and ``camwarp demo``: bad arguments give one line and exit code 2;
a tiny run trains, evaluates and reproduces its recorded metrics; the demo's camera example."""

from __future__ import annotations

import json

import pytest
import torch

from camwarp.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")  # one intra-op thread: see tests/conftest.py


def _fails_with_one_line(capsys, argv: list[str], *needles: str) -> str:
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2, (argv, code, err)
    assert err.count("\n") == 1 and err.endswith("\n"), err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


@pytest.mark.parametrize("argv, needles", [
    (["stn"], ["ACTION"]),
    (["stn", "fly"], ["invalid choice", "'fly'"]),
    (["stn", "train", "--task", "zoom"], ["--task", "'zoom'"]),
    (["stn", "train", "--model", "resnet"], ["--model"]),
    (["stn", "train", "--transform", "spline"], ["--transform"]),
    (["stn", "train", "--epochs", "0"], ["--epochs", "positive integer"]),
    (["stn", "train", "--epochs", "many"], ["--epochs", "'many'"]),
    (["stn", "train", "--lr", "-0.1"], ["--lr", "positive"]),
    (["stn", "train", "--batch-size", "1.5"], ["--batch-size"]),
    (["stn", "train", "--workers", "-2"], ["--workers"]),
    (["stn", "train", "--bogus"], ["unrecognized arguments", "--bogus"]),
    (["stn", "eval"], ["checkpoint"]),
    (["demo", "--epochs", "0"], ["--epochs"]),
])
def test_bad_arguments_one_line_exit_2(capsys, argv, needles):
    _fails_with_one_line(capsys, argv, *needles)


def test_errors_found_after_parsing_are_one_line_too(capsys, tmp_path):
    _fails_with_one_line(capsys, ["stn", "eval", str(tmp_path / "nope.pt")], "no checkpoint", "nope.pt")
    _fails_with_one_line(capsys, ["stn", "train", "--data-dir", str(tmp_path), "--out", str(tmp_path / "r"),
                                  "--no-progress"], "not found", "train-images")
    _fails_with_one_line(capsys, ["stn", "train", "--warmup-epochs", "99", "--out", str(tmp_path / "w")],
                         "warmup_epochs")
    if not torch.cuda.is_available():
        _fails_with_one_line(capsys, ["stn", "train", "--device", "cuda", "--out", str(tmp_path / "c")],
                             "CUDA is not available")


def test_train_then_eval_reproduces_the_recorded_error(capsys, tmp_path):
    run = tmp_path / "run"
    code = main(["stn", "train", "--task", "r", "--model", "st-fcn", "--transform", "similarity", "--epochs", "1",
                 "--train-samples", "256", "--test-samples", "128", "--batch-size", "64", "--device", "cpu",
                 "--out", str(run), "--no-progress", "--no-figures"])
    out = capsys.readouterr().out
    assert code == 0 and "st-fcn on r: test error" in out
    recorded = json.loads((run / "metrics.json").read_text())
    assert recorded["config"]["transform"] == "similarity" and recorded["test_count"] == 128
    code = main(["stn", "eval", str(run), "--device", "cpu", "--json", str(tmp_path / "eval.json")])
    line = capsys.readouterr().out
    assert code == 0 and "recorded at training" in line
    evaluated = json.loads((tmp_path / "eval.json").read_text())
    assert evaluated["test_error"] == recorded["test_error"] == evaluated["stored"]["test_error"]
    assert f"{100 * recorded['test_error']:.2f}%" in line


def test_demo_prints_the_seed_camera_example(capsys):
    assert main(["demo", "--skip-training"]) == 0
    out = capsys.readouterr().out
    # DESIGN.md's closed form: crop -> cx 924, cy 524; resize /3 -> fx 740, cx (924 + 0.5)/3 - 0.5.
    assert "cx=924.000000 cy=524.000000" in out
    assert f"fx=740.000000 fy=740.000000 cx={(924 + 0.5) / 3 - 0.5:.6f} cy={(524 + 0.5) / 3 - 0.5:.6f}" in out
    assert "dist=[-0.00344584, 0.120934]" in out and "size 640x360" in out


def test_demo_trains_an_st_cnn_on_rts_embedded_digits(capsys, monkeypatch, tmp_path):
    import camwarp.train

    seen = {}

    def fake_fit(cfg, progress=True, **kw):  # the real loop is tested in test_train.py
        seen["cfg"] = cfg
        return {"test_error": 0.25, "test_count": 1000, "epochs_completed": cfg.epochs}

    monkeypatch.setattr(camwarp.train, "fit", fake_fit)
    assert main(["demo", "--out", str(tmp_path), "--epochs", "2", "--no-progress"]) == 0
    cfg = seen["cfg"]
    assert (cfg.task, cfg.model, cfg.transform, cfg.data_dir, cfg.epochs) == ("rts", "st-cnn", "affine", None, 2)
    out = capsys.readouterr().out
    assert "test error 25.00% on 1000 digits" in out and "rectification.png" in out and "fx=740" in out
