"""Classifiers of the STN paper's distorted-MNIST experiments: CNN, FCN, ST-CNN, ST-FCN.

Following Jaderberg et al. (2015), Sec. 4.1 and Appendix A: every classifier has three weight
layers, ReLUs and a softmax (the models return logits; use ``F.cross_entropy``):

- FCN: ``Flatten, FC 128, ReLU, FC 128, ReLU, FC classes``.
- CNN: ``Conv 9x9 (C->32), ReLU, MaxPool 2, Conv 9x9 (32->64), ReLU, MaxPool 2, Flatten, FC classes``
  (a side too small for a 9x9 kernel is zero-padded just enough, as in the localization nets).
- ST-CNN / ST-FCN: a :class:`SpatialTransformer` in front of the CNN / FCN. The ST-CNN's
  localization network is the seed's small CNN (:class:`ConvLocalization`), the ST-FCN's a
  fully-connected one (:class:`FCLocalization`, two layers of 32). ``st_out_size`` (default the
  input size) sets the transformer's output, and the classifier is built for that size.

The paper gives the layer types and counts; filter counts and widths are our choice (all models of
one input size have a comparable number of parameters; ``docs/stn.md`` lists them).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .. import _checks
from .heads import FAMILIES
from .localization import _check_channels, _check_pair, _check_widths, _conv_plan
from .transformer import SpatialTransformer

__all__ = ["MODELS", "FCN", "CNN", "STClassifier", "build_model"]

MODELS = ("cnn", "fcn", "st-cnn", "st-fcn")
_ST_KEYS = ("max_scale", "max_translation", "max_angle", "tps_grid", "mode", "padding_mode", "backend",
            "localization")


class FCN(nn.Module):
    """Fully-connected classifier: ``Flatten, (FC, ReLU) x len(hidden), FC num_classes`` -> logits.

    Args:
        in_channels: ``C``; in_size: ``(W, H)``; num_classes: outputs; hidden: default ``(128, 128)``.

    Example:
        >>> FCN(1, (28, 28))(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    def __init__(self, in_channels: int, in_size: Sequence[int], num_classes: int = 10,
                 hidden: Sequence[int] = (128, 128)) -> None:
        super().__init__()
        fn = "FCN"
        in_channels = _check_channels(in_channels, fn)
        W, H = _checks.check_size(in_size, fn, "in_size")
        (num_classes,) = _check_widths(num_classes, fn, "num_classes")
        widths = (in_channels * W * H, *_check_widths(hidden, fn, "hidden"))
        layers: list[nn.Module] = [nn.Flatten()]
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.Linear(widths[-1], num_classes))
        self.transformer = None

    def forward(self, x: Tensor) -> Tensor:
        """Return logits ``(N, num_classes)`` of images ``(N, C, H, W)``."""
        return self.net(x)


class CNN(nn.Module):
    """Convolutional classifier: two ``k x k`` convolutions with ReLU and 2x2 max pooling, then FC -> logits.

    Args:
        in_channels: ``C``; in_size: ``(W, H)``; num_classes: outputs.
        channels: filters of the two convolutions, default ``(32, 64)``.
        kernel_size: ``k``, default 9.

    Example:
        >>> CNN(1, (42, 42))(torch.zeros(2, 1, 42, 42)).shape
        torch.Size([2, 10])
    """

    def __init__(self, in_channels: int, in_size: Sequence[int], num_classes: int = 10,
                 channels: Sequence[int] = (32, 64), kernel_size: int = 9) -> None:
        super().__init__()
        fn = "CNN"
        in_channels = _check_channels(in_channels, fn)
        size = _checks.check_size(in_size, fn, "in_size")
        (num_classes,) = _check_widths(num_classes, fn, "num_classes")
        c1, c2 = _check_pair(channels, fn, "channels")
        (k,) = _check_widths(kernel_size, fn, "kernel_size")
        pad1, pool1, mid = _conv_plan(size, k)
        pad2, pool2, (w, h) = _conv_plan(mid, k)
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, c1, k, padding=pad1), nn.ReLU(), nn.MaxPool2d(pool1),
            nn.Conv2d(c1, c2, k, padding=pad2), nn.ReLU(), nn.MaxPool2d(pool2),
            nn.Flatten(), nn.Linear(c2 * w * h, num_classes))
        self.transformer = None

    def forward(self, x: Tensor) -> Tensor:
        """Return logits ``(N, num_classes)`` of images ``(N, C, H, W)``."""
        return self.net(x)


class STClassifier(nn.Module):
    """A spatial transformer followed by a classifier: ``classifier(transformer(x))`` -> logits.

    ``forward(x, return_theta=True)`` returns ``(logits, theta)``; ``.transformer`` and
    ``.classifier`` are the two parts (e.g. ``model.transformer(x)`` for the rectified digits).
    """

    def __init__(self, transformer: SpatialTransformer, classifier: nn.Module) -> None:
        super().__init__()
        self.transformer = transformer
        self.classifier = classifier

    def forward(self, x: Tensor, return_theta: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Return logits ``(N, num_classes)`` (and theta) for images ``(N, C, H, W)``."""
        y, theta = self.transformer(x, return_theta=True)
        logits = self.classifier(y)
        return (logits, theta) if return_theta else logits


def build_model(name: str, transform: str | None = "affine", in_size: Sequence[int] = (28, 28),
                in_channels: int = 1, num_classes: int = 10, **kw: object) -> nn.Module:
    """Build one of the paper's classifiers by name; it returns logits ``(N, num_classes)``.

    Args:
        name: ``"cnn"``, ``"fcn"``, ``"st-cnn"`` or ``"st-fcn"``.
        transform: the transformer's family (``heads.FAMILIES``); ignored (may be None) for ``cnn``/``fcn``.
        in_size: input ``(W, H)`` (28x28 for R/P/E, 42x42 for RTS, 60x60 cluttered).
        in_channels: ``C``, default 1.
        num_classes: default 10.
        **kw: classifier options ``hidden`` (FCN widths), ``channels`` and ``kernel_size`` (CNN);
            transformer options ``st_out_size`` and those of :class:`SpatialTransformer`
            (``max_scale``, ``max_translation``, ``max_angle``, ``tps_grid``, ``mode``,
            ``padding_mode``, ``backend``, ``localization``), ignored for ``cnn``/``fcn``.

    Returns:
        The ``nn.Module``; ``model.transformer`` is its :class:`SpatialTransformer` (None for cnn/fcn).

    Raises:
        ValueError: unknown name or family; TypeError: an unknown keyword.

    Example:
        >>> model = build_model("st-cnn", "affine", (42, 42))
        >>> model(torch.zeros(2, 1, 42, 42)).shape, type(model.transformer).__name__
        (torch.Size([2, 10]), 'SpatialTransformer')
    """
    fn = "build_model"
    _checks.check_choice(name, fn, "name", MODELS)
    in_size = _checks.check_size(in_size, fn, "in_size")
    classifier_keys = ("hidden",) if name.endswith("fcn") else ("channels", "kernel_size")
    other = ("hidden", "channels", "kernel_size", "st_out_size", *_ST_KEYS)
    unknown = sorted(set(kw) - set(other))
    if unknown:
        raise TypeError(f"{fn}: unexpected keyword argument {unknown[0]!r} (accepted: {', '.join(other)})")
    if transform is not None or name.startswith("st-"):
        _checks.check_choice(transform, fn, "transform", FAMILIES)
    ckw = {k: kw[k] for k in classifier_keys if k in kw}
    size = in_size
    transformer = None
    if name.startswith("st-"):
        st_out = kw.get("st_out_size")
        size = in_size if st_out is None else _checks.check_size(st_out, fn, "st_out_size")
        skw = {k: kw[k] for k in _ST_KEYS if k in kw}
        skw.setdefault("localization", "cnn" if name == "st-cnn" else "fcn")
        transformer = SpatialTransformer(in_channels, transform, out_size=size, in_size=in_size, **skw)
    classifier = (CNN if name.endswith("cnn") else FCN)(in_channels, size, num_classes, **ckw)
    return classifier if transformer is None else STClassifier(transformer, classifier)
