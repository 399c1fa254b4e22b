"""The paper's classifiers by name: shapes for the experiments' input sizes, layer structure,
identity at init (ST-X == X on its input), options forwarded, named errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from camwarp.stn import (CNN, FCN, MODELS, ConvLocalization, FCLocalization, SpatialTransformer, STClassifier,
                         build_model)


def _weight_layers(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("size, channels", [((28, 28), 1), ((42, 42), 1), ((60, 60), 1), ((13, 7), 3)])
def test_logits_shape_for_every_model_and_size(name, size, channels):
    model = build_model(name, "affine", size, in_channels=channels, num_classes=7)
    assert model(torch.rand(2, channels, size[1], size[0])).shape == (2, 7)


def test_classifiers_have_three_weight_layers_as_in_the_paper():
    cnn, fcn = build_model("cnn", None, (28, 28)), build_model("fcn", None, (28, 28))
    convs = [m for m in _weight_layers(cnn) if isinstance(m, nn.Conv2d)]
    assert len(_weight_layers(cnn)) == 3 and [c.kernel_size for c in convs] == [(9, 9), (9, 9)]
    assert sum(isinstance(m, nn.MaxPool2d) for m in cnn.modules()) == 2
    assert [m.out_features for m in _weight_layers(fcn)] == [128, 128, 10]
    assert cnn.transformer is None and fcn.transformer is None


@pytest.mark.parametrize("name, loc, head", [("st-cnn", ConvLocalization, CNN), ("st-fcn", FCLocalization, FCN)])
def test_st_models_start_as_their_classifier(name, loc, head):
    model = build_model(name, "projective", (42, 42))
    assert isinstance(model, STClassifier) and isinstance(model.transformer, SpatialTransformer)
    assert isinstance(model.transformer.localization, loc) and isinstance(model.classifier, head)
    assert model.transformer.transform == "projective"
    x = torch.rand(4, 1, 42, 42)
    logits, theta = model(x, return_theta=True)
    torch.testing.assert_close(logits, model.classifier(x), atol=1e-5, rtol=1e-5)
    assert theta.shape == (4, 3, 3)


def test_options_reach_the_transformer_and_classifier():
    model = build_model("st-cnn", "tps", (60, 60), st_out_size=(30, 30), tps_grid=3, max_translation=0.5,
                        channels=(8, 16), kernel_size=5, padding_mode="border")
    x = torch.rand(2, 1, 60, 60)
    assert model.transformer(x).shape == (2, 1, 30, 30)
    assert model(x, return_theta=True)[1].shape == (2, 9, 2)
    assert model.transformer.padding_mode == "border" and model.transformer.head.bounds == {"max_translation": 0.5}
    assert [m.out_channels for m in model.classifier.modules() if isinstance(m, nn.Conv2d)] == [8, 16]
    fcn = build_model("st-fcn", "affine", (28, 28), hidden=(64,), localization="cnn")
    assert isinstance(fcn.transformer.localization, ConvLocalization)
    assert [m.out_features for m in _weight_layers(fcn.classifier)] == [64, 10]
    # transformer options are ignored by the plain models (the CLI may pass them for every model)
    assert isinstance(build_model("cnn", "tps", (28, 28), tps_grid=3), CNN)


def test_the_st_model_trains_end_to_end_in_one_step():
    model = build_model("st-cnn", "affine", (28, 28))
    x, labels = torch.rand(8, 1, 28, 28), torch.arange(8)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    nn.functional.cross_entropy(model(x), labels).backward()
    assert model.transformer.head.fc.weight.grad.abs().sum() > 0
    opt.step()
    opt.zero_grad()
    nn.functional.cross_entropy(model(x), labels).backward()
    assert model.transformer.localization.features[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("call, error, match", [
    (lambda: build_model("resnet", "affine"), ValueError, "build_model: name must be one of"),
    (lambda: build_model("st-cnn", None), ValueError, "build_model: transform must be one of"),
    (lambda: build_model("st-cnn", "rigid"), ValueError, "build_model: transform must be one of"),
    (lambda: build_model("cnn", "affine", (28,)), ValueError, "build_model: in_size must have the form"),
    (lambda: build_model("cnn", "affine", (28, 28), dropout=0.5), TypeError, "unexpected keyword argument 'dropout'"),
    (lambda: build_model("fcn", None, (28, 28), hidden=(0,)), ValueError, "FCN: hidden must be"),
    (lambda: build_model("cnn", None, (28, 28), channels=(8,)), ValueError, "CNN: channels must have 2 entries"),
    (lambda: build_model("st-cnn", "affine", (28, 28), st_out_size=(0, 1)), ValueError, "st_out_size must be positive"),
    (lambda: build_model("st-fcn", "affine", (28, 28), max_angle=5.0), ValueError, "max_angle is not supported"),
])
def test_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()
