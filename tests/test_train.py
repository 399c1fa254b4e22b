"""The training loop on tiny subsets of the embedded digits: the loss goes down, checkpoints
reproduce the metrics and resume bit for bit, settings are checked, progress goes to the hooks."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from camwarp.train import (TrainConfig, TrainProgress, build_classifier, build_datasets, evaluate,
                           evaluate_checkpoint, fit, load_checkpoint)

TINY = dict(train_samples=384, test_samples=128, batch_size=64, device="cpu")

pytestmark = pytest.mark.usefixtures("one_thread")  # one intra-op thread: see tests/conftest.py


def _cfg(tmp_path, name: str, **kw) -> TrainConfig:
    return TrainConfig(**{**TINY, "out": str(tmp_path / name), **kw})


@pytest.mark.parametrize("model, task, transform", [("fcn", "none", "affine"), ("st-cnn", "r", "affine")])
def test_short_run_reduces_the_loss(tmp_path, model, task, transform):
    cfg = _cfg(tmp_path, model, model=model, task=task, transform=transform, epochs=3, optimizer="adam", lr=2e-3,
               loc_lr_scale=0.1, train_samples=768)
    torch.manual_seed(cfg.seed)  # the same initial weights fit() starts from
    before = evaluate(build_classifier(cfg), build_datasets(cfg)[1])
    metrics = fit(cfg, figures=False)
    history = metrics["history"]
    assert len(history) == 3 and metrics["test_count"] == 128
    assert history[-1]["train_loss"] < 0.8 * history[0]["train_loss"]
    assert metrics["test_loss"] < 0.8 * before["test_loss"]
    assert metrics["test_error"] < before["test_error"]


def test_checkpoint_reproduces_metrics_and_files(tmp_path):
    cfg = _cfg(tmp_path, "st", model="st-fcn", task="r", epochs=1)
    metrics = fit(cfg)
    out = tmp_path / "st"
    assert {p.name for p in out.iterdir()} >= {"checkpoint.pt", "metrics.json", "rectification.png",
                                                "learning_curve.png"}
    stored = json.loads((out / "metrics.json").read_text())
    assert stored["test_error"] == metrics["test_error"] and stored["config"]["model"] == "st-fcn"
    assert stored["epochs_completed"] == 1 and stored["history"][0]["img_per_s"] > 0
    again = evaluate_checkpoint(str(out / "checkpoint.pt"), device="cpu")
    assert again["test_count"] == 128 and again["checkpoint_epoch"] == 1
    assert again["test_error"] == metrics["test_error"]
    assert again["test_loss"] == pytest.approx(metrics["test_loss"], rel=1e-6)
    assert again["stored"]["test_error"] == metrics["test_error"]
    other = evaluate_checkpoint(str(out), task="p", device="cpu")  # same 28x28 size: allowed
    assert other["task"] == "p" and other["stored"] is None


def test_resume_continues_bit_for_bit(tmp_path):
    kw = dict(model="st-cnn", task="r", transform="similarity", epochs=2, train_samples=128, test_samples=64)
    straight = fit(_cfg(tmp_path, "a", **kw), figures=False)
    fit(_cfg(tmp_path, "b", **kw), figures=False, stop_after=1)  # "interrupted"
    assert load_checkpoint(tmp_path / "b")["epoch"] == 1
    resumed = fit(_cfg(tmp_path, "b", **kw), resume=True, figures=False)
    a, b = load_checkpoint(tmp_path / "a"), load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert a["epoch"] == b["epoch"] == 2
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert resumed["test_error"] == straight["test_error"]
    assert [h["train_loss"] for h in resumed["history"]] == [h["train_loss"] for h in straight["history"]]


def test_resume_refuses_other_settings(tmp_path):
    fit(_cfg(tmp_path, "c", model="fcn", task="r", epochs=1), figures=False)
    with pytest.raises(ValueError, match=r"fit: cannot resume: .*lr=0\.05 \(now 0\.2\)"):
        fit(_cfg(tmp_path, "c", model="fcn", task="r", epochs=2, lr=0.2), resume=True)


@pytest.mark.parametrize("kw, exc, match", [
    (dict(task="zoom"), ValueError, "TrainConfig: task must be one of"),
    (dict(model="resnet"), ValueError, "TrainConfig: model must be one of"),
    (dict(epochs=0), ValueError, "TrainConfig: epochs must be positive"),
    (dict(batch_size=2.5), TypeError, "TrainConfig: batch_size must be an int"),
    (dict(lr=-1.0), ValueError, "TrainConfig: lr must be a positive"),
    (dict(workers=-1), ValueError, "TrainConfig: workers"),
    (dict(warmup_epochs=50.0), ValueError, "TrainConfig: warmup_epochs"),
])
def test_config_rejects_bad_values(kw, exc, match):
    with pytest.raises(exc, match=match):
        TrainConfig(**kw)


def test_config_roundtrip_and_bad_checkpoint(tmp_path):
    cfg = TrainConfig(task="p", model="st-fcn", transform="projective")
    assert TrainConfig.from_dict({**cfg.to_dict(), "unknown_future_key": 1}) == cfg
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="load_checkpoint: .*junk.pt"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"format": "other"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a camwarp STN checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError, match="load_checkpoint: no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_fit_reports_to_the_hooks_without_tqdm(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # bars are the CLI's: an import of tqdm would fail here
    events, last = [], {}

    class Record(TrainProgress):
        def on_epoch_start(self, epoch, epochs, steps):
            events.append(("start", epoch, epochs, steps))

        def on_step(self, epoch, step, steps, metrics):
            last[epoch] = metrics()
            events.append(("step", epoch, step, steps, sorted(last[epoch])))

        def on_epoch_end(self, entry):
            events.append(("end", entry["epoch"], entry["test_count"]))

    cfg = _cfg(tmp_path, "hooks", model="fcn", task="none", epochs=3, train_samples=128, test_samples=64)
    history = fit(cfg, progress=Record(), figures=False, stop_after=2)["history"]
    keys = ["acc", "img_s", "loss"]
    assert events == [("start", 1, 3, 2), ("step", 1, 1, 2, keys), ("step", 1, 2, 2, keys), ("end", 1, 64),
                      ("start", 2, 3, 2), ("step", 2, 1, 2, keys), ("step", 2, 2, 2, keys), ("end", 2, 64)]
    for h in history:  # the last step's running metrics are the epoch's (a world of one)
        assert last[h["epoch"]]["loss"] == pytest.approx(h["train_loss"])
        assert 1 - last[h["epoch"]]["acc"] == pytest.approx(h["train_error"]) and last[h["epoch"]]["img_s"] > 0
    with pytest.raises(TypeError, match="fit: progress must be a TrainProgress"):
        fit(cfg, progress=True)
