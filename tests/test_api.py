"""API consistency: public names resolve and are documented, shared parameters mean one thing.

STYLE.md: "A parameter name means the same thing, with the same default, across the API, 2-D and
3-D alike. A test walks the API with inspect.signature to check." This is that test, plus the
contract signatures of DESIGN.md and the camera/warp contracts, and the import layering
(``import camwarp`` stays light; a layer never imports the layers above it).
A real inconsistency found here is marked ``xfail(strict=True)`` with the offender named, so
the test documents it and fails once it is fixed (then drop the mark).
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator

import pytest
import torch

MODULES = ["camwarp", "camwarp.geometry", "camwarp.warp", "camwarp.transforms", "camwarp.stn", "camwarp.camera"]
SHARED = ["mode", "padding_mode", "antialias", "align_corners", "size", "backend", "dtype", "device", "generator",
          "convention", "model", "max_iter", "out_size", "kinds", "options", "tps_grid", "return_theta"]
_EMPTY = inspect.Parameter.empty

# Defaults that differ on purpose, each stated in the contracts and in the function's own docstring
# (checked below: the docstring must name the default).
DOCUMENTED_DEFAULTS = {
    ("antialias", "camwarp.warp.crop_resize"): "DESIGN.md: crop_resize(image, box, size, antialias=True)",
    ("antialias", "camwarp.transforms.KernelOptions"): "docs/transforms.md: sample ops antialias on downscale",
    ("dtype", "camwarp.camera.read_camera"): "docs/camera_io.md: readers return float64 (exact round trips)",
    ("dtype", "camwarp.camera.read_colmap_cameras"): "docs/camera_io.md",
    ("dtype", "camwarp.camera.camera_from_dict"): "docs/camera_io.md",
    # write_colmap_cameras' ``model`` is a COLMAP model name (None: the smallest exact one), not a
    # distortion model: documented there.
    ("model", "camwarp.camera.write_colmap_cameras"): "a COLMAP model name, None = choose per camera",
}
KNOWN_BUGS: dict[str, str] = {}


def _public_objects() -> Iterator[tuple[str, object]]:
    """``(qualified name, object)`` of every function and class in the public ``__all__`` lists, once."""
    seen: set[int] = set()
    for modname in MODULES:
        module = importlib.import_module(modname)
        for name in module.__all__:
            obj = getattr(module, name)
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and id(obj) not in seen:
                seen.add(id(obj))
                public = ".".join(obj.__module__.split(".")[:2])  # camwarp.warp.api -> camwarp.warp
                yield f"{public}.{obj.__name__}", obj


def _members(cls: type) -> Iterator[tuple[type, str, object]]:
    """``(owner, name, raw attribute)`` of the public attributes camwarp defines on ``cls`` (inherited too)."""
    for attr in dir(cls):
        owner = next((k for k in cls.__mro__ if attr in vars(k)), None)
        if not attr.startswith("_") and owner is not None and owner.__module__.startswith("camwarp"):
            yield owner, attr, vars(owner)[attr]


def _callables() -> Iterator[tuple[str, Callable]]:
    """Every public function, class constructor and public method of a public class."""
    for qual, obj in _public_objects():
        yield qual, obj
        if inspect.isclass(obj):
            for _, attr, raw in _members(obj):
                if inspect.isfunction(raw) or isinstance(raw, (classmethod, staticmethod)):
                    yield f"{qual}.{attr}", getattr(obj, attr)


def _defaults() -> dict[str, dict[object, list[str]]]:
    """``{parameter name: {default repr: [where]}}`` over the whole public API (required params skipped)."""
    found: dict[str, dict[object, list[str]]] = defaultdict(lambda: defaultdict(list))
    for qual, fn in _callables():
        try:
            params = inspect.signature(fn).parameters.values()
        except (TypeError, ValueError):
            continue
        for p in params:
            if p.default is not _EMPTY and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                found[p.name][repr(p.default)].append(qual)
    return found


# --------------------------------------------------------------------------------------------------
# Names and docstrings


@pytest.mark.parametrize("modname", MODULES)
def test_all_names_resolve(modname: str) -> None:
    module = importlib.import_module(modname)
    assert module.__doc__ and module.__doc__.strip(), f"{modname} has no module docstring"
    names = module.__all__
    assert len(names) == len(set(names)), f"{modname}.__all__ repeats {[n for n in names if names.count(n) > 1]}"
    missing = [n for n in names if not hasattr(module, n)]
    assert not missing, f"{modname}.__all__ names that do not resolve: {missing}"


def test_top_level_reexports_are_the_same_objects() -> None:
    import camwarp
    import camwarp.camera
    import camwarp.geometry
    import camwarp.warp

    for name in ("warp_affine", "warp_perspective", "warp_affine3d", "crop_resize"):
        assert getattr(camwarp, name) is getattr(camwarp.warp, name), name
    for name in ("compose", "invert", "matrix_to_theta", "theta_to_matrix", "transform_points"):
        assert getattr(camwarp, name) is getattr(camwarp.geometry, name), name
    assert camwarp.Camera is camwarp.camera.Camera
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        camwarp.not_a_name  # noqa: B018


def test_public_functions_and_classes_have_docstrings() -> None:
    undocumented = [qual for qual, obj in _public_objects() if not (inspect.getdoc(obj) or "").strip()]
    assert not undocumented, f"public names without a docstring: {undocumented}"
    # A summary line first (Google style), not a blank or a bare "TODO".
    bad = [qual for qual, obj in _public_objects() if len(inspect.getdoc(obj).splitlines()[0].split()) < 3]
    assert not bad, f"docstrings without a one-line summary: {bad}"


def _undocumented_members() -> list[str]:
    out = set()
    for _, cls in _public_objects():
        for owner, attr, raw in (_members(cls) if inspect.isclass(cls) else ()):
            if isinstance(raw, property):
                doc = raw.__doc__
            elif inspect.isfunction(raw) or isinstance(raw, (classmethod, staticmethod)):
                doc = inspect.getdoc(getattr(cls, attr))  # inherits the base method's docstring
            else:
                continue
            if not (doc or "").strip():
                out.add(f"{owner.__module__}.{owner.__qualname__}.{attr}")
    return sorted(out)


def test_public_methods_and_properties_have_docstrings() -> None:
    missing = _undocumented_members()
    assert not missing, f"public methods/properties without a docstring: {missing}"


# --------------------------------------------------------------------------------------------------
# One default per shared parameter name


def _marked(name: str):
    if name in KNOWN_BUGS:
        return pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[name]))
    return name


@pytest.mark.parametrize("name", [_marked(n) for n in SHARED])
def test_shared_parameter_has_one_default(name: str) -> None:
    table = _defaults()
    assert name in table, f"no public callable has a parameter {name!r} with a default (stale SHARED list?)"
    found = {default: sorted(set(where) - {w for (n, w) in DOCUMENTED_DEFAULTS if n == name})
             for default, where in table[name].items()}
    found = {d: w for d, w in found.items() if w}
    assert len(found) == 1, f"parameter {name!r} has {len(found)} defaults: " + "; ".join(
        f"{d} in {w}" for d, w in found.items())


def test_documented_default_differences_are_documented() -> None:
    table = _defaults()
    for (name, where), why in DOCUMENTED_DEFAULTS.items():
        hits = [d for d, places in table[name].items() if where in places]
        assert len(hits) == 1, f"{where} has no default for {name!r} any more: drop it from DOCUMENTED_DEFAULTS"
        modname, attr = where.rsplit(".", 1)
        doc = inspect.getdoc(getattr(importlib.import_module(modname), attr)) or ""
        shown = hits[0].replace("torch.", "").strip("'")
        assert name in doc and shown in doc, f"{where}: default {name}={hits[0]} ({why}) is not stated in its docstring"


def test_mode_and_padding_choices_agree() -> None:
    from camwarp.stn import transformer
    from camwarp.transforms import kernels
    from camwarp.warp import api

    assert set(api.MODES) == set(transformer.MODES[2]) == set(kernels.IMAGE_MODES)
    assert set(api.MODES_3D) == set(transformer.MODES[3])
    assert set(api.PADDING_MODES) == set(transformer.PADDING_MODES) == set(kernels.PADDING_MODES)


# --------------------------------------------------------------------------------------------------
# Signatures: the contracts, 2-D vs 3-D, transforms vs Camera methods

ANY = object()  # the contract fixes the name, not the default
REQUIRED = _EMPTY
WARP = [("mode", "bilinear"), ("padding_mode", "zeros"), ("antialias", False), ("backend", None)]
SAMPLER = [("mode", "bilinear"), ("padding_mode", "zeros"), ("backend", None)]
CONTRACTS = {  # DESIGN.md section 2, the camera contract and the warp contract
    "camwarp.Camera": [("fx", REQUIRED), ("fy", REQUIRED), ("cx", REQUIRED), ("cy", REQUIRED), ("width", REQUIRED),
                       ("height", REQUIRED), ("skew", 0.0), ("dist", None), ("model", "opencv"),
                       ("convention", "opencv")],
    "camwarp.Camera.from_K": [("K", REQUIRED), ("width", REQUIRED), ("height", REQUIRED), ("dist", None),
                              ("model", "opencv"), ("convention", "opencv")],
    "camwarp.Camera.principal_point": [("convention", "opencv")],
    "camwarp.Camera.K_in": [("convention", ANY)],
    "camwarp.Camera.to": [("device", None), ("dtype", None)],
    "camwarp.Camera.transform": [("A", REQUIRED), ("size", None)],
    "camwarp.Camera.crop": [("x0", REQUIRED), ("y0", REQUIRED), ("w", REQUIRED), ("h", REQUIRED)],
    "camwarp.Camera.center_crop": [("w", REQUIRED), ("h", REQUIRED)],
    "camwarp.Camera.resize": [("w", REQUIRED), ("h", REQUIRED)],
    "camwarp.Camera.pad": [("left", REQUIRED), ("top", REQUIRED), ("right", ANY), ("bottom", ANY)],
    "camwarp.Camera.hflip": [], "camwarp.Camera.vflip": [], "camwarp.Camera.rot90": [("k", ANY)],
    "camwarp.Camera.project": [("X", REQUIRED)], "camwarp.Camera.unproject": [("uv", REQUIRED), ("depth", REQUIRED)],
    "camwarp.Camera.distort": [("xy", REQUIRED)], "camwarp.Camera.undistort": [("xy", REQUIRED)],
    "camwarp.Camera.undistort_pixels": [("uv", REQUIRED)],
    "camwarp.warp_affine": [("image", REQUIRED), ("A", REQUIRED), ("size", REQUIRED), *WARP],
    "camwarp.warp_perspective": [("image", REQUIRED), ("H", REQUIRED), ("size", REQUIRED), *WARP],
    "camwarp.warp_affine3d": [("volume", REQUIRED), ("A", REQUIRED), ("size", REQUIRED), *WARP],
    "camwarp.crop_resize": [("image", REQUIRED), ("box", REQUIRED), ("size", REQUIRED), ("mode", "bilinear"),
                            ("antialias", True)],
    "camwarp.theta_to_matrix": [("theta", REQUIRED), ("in_size", REQUIRED), ("out_size", REQUIRED),
                                ("align_corners", ANY)],
    "camwarp.matrix_to_theta": [("A", REQUIRED), ("in_size", REQUIRED), ("out_size", REQUIRED),
                                ("align_corners", ANY)],
    **{f"camwarp.warp.dispatch.sample_{op}": [(data, REQUIRED), ("src_from_dst", REQUIRED), ("size", REQUIRED),
                                              *SAMPLER]
       for op, data in (("affine", "image"), ("perspective", "image"), ("affine3d", "volume"))},
}


def _params(fn: Callable) -> list[inspect.Parameter]:
    return [p for p in inspect.signature(fn).parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


@pytest.mark.parametrize("path", sorted(CONTRACTS))
def test_contract_signature(path: str) -> None:
    params = _params(pkgutil.resolve_name(path))
    want = CONTRACTS[path]
    got = [(p.name, p.default) for p in params[:len(want)]]
    assert [n for n, _ in got] == [n for n, _ in want], f"{path}: parameters {[p.name for p in params]}"
    for (name, default), (_, actual) in zip(want, got):
        if default is not ANY:
            assert actual == default and type(actual) is type(default), f"{path}: {name}={actual!r} != {default!r}"
    extra = [p.name for p in params[len(want):] if p.default is _EMPTY]
    assert not extra, f"{path}: required parameters beyond the contract: {extra}"


def test_warp_signatures_2d_3d_agree() -> None:
    from camwarp.warp import crop_resize, warp_affine, warp_affine3d, warp_perspective

    def shape(fn: Callable, renames: dict[str, str]) -> list[tuple]:
        return [(renames.get(p.name, p.name), p.kind, p.default) for p in _params(fn)]

    base = shape(warp_affine, {})
    # Documented differences: the data is a volume in 3-D, the matrix a homography H.
    assert shape(warp_affine3d, {"volume": "image"}) == base
    assert shape(warp_perspective, {"H": "A"}) == base
    # crop_resize (DESIGN.md): a box instead of a matrix, edges act as border (no padding_mode),
    # antialias on by default.
    expected = [(n, k, True if n == "antialias" else d) for n, k, d in base if n != "padding_mode"]
    assert shape(crop_resize, {"box": "A"}) == expected
    # The dst->src samplers keep the names and defaults of the public warps (minus antialias).
    from camwarp.warp import dispatch

    for public, sampler in ((warp_affine, dispatch.sample_affine), (warp_perspective, dispatch.sample_perspective),
                            (warp_affine3d, dispatch.sample_affine3d)):
        tail = [(p.name, p.default) for p in _params(public)[2:] if p.name != "antialias"]
        assert [(p.name, p.default) for p in _params(sampler)[2:]] == tail, sampler.__name__


def test_transform_ops_follow_camera_methods() -> None:
    # docs/transforms.md: "Signatures follow the Camera methods".
    from camwarp import Camera
    from camwarp.geometry import crop_matrix, pad_matrix
    from camwarp.transforms import CenterCrop, Crop, HFlip, Pad, Resize, Rot90, VFlip

    pairs = [(Crop, Camera.crop), (CenterCrop, Camera.center_crop), (Resize, Camera.resize), (Pad, Camera.pad),
             (Rot90, Camera.rot90), (HFlip, Camera.hflip), (VFlip, Camera.vflip)]
    for op, method in pairs:
        positional = [p for p in _params(op) if p.kind is p.POSITIONAL_OR_KEYWORD]
        assert [p.name for p in positional] == [p.name for p in _params(method)], op.__name__
        if op is not Resize:  # Resize(w=None, h=None, *, shorter=, longer=): one of the forms is given
            assert [p.default for p in positional] == [p.default for p in _params(method)], op.__name__
    assert [p.name for p in _params(crop_matrix)[:2]] == ["x0", "y0"]
    assert [p.name for p in _params(pad_matrix)[:2]] == ["left", "top"]


# --------------------------------------------------------------------------------------------------
# Errors name the function the user called, and the argument


def _calls() -> dict[str, dict[str, Callable[[], object]]]:
    import camwarp
    from camwarp.stn import SpatialTransformer, sample_theta, tps_warp
    from camwarp.transforms import KernelOptions

    img, vol, eye3, eye4 = torch.rand(1, 1, 5, 5), torch.rand(1, 1, 3, 3, 3), torch.eye(3), torch.eye(4)
    theta, tps = torch.eye(2, 3)[None], torch.zeros(1, 16, 2)
    cam = camwarp.Camera(4.0, 4.0, 2.0, 2.0, 5, 5)
    return {
        "mode": {"warp_affine": lambda m: camwarp.warp_affine(img, eye3, (4, 4), mode=m),
                 "warp_perspective": lambda m: camwarp.warp_perspective(img, eye3, (4, 4), mode=m),
                 "warp_affine3d": lambda m: camwarp.warp_affine3d(vol, eye4, (2, 2, 2), mode=m),
                 "crop_resize": lambda m: camwarp.crop_resize(img, (0, 0, 2, 2), (2, 2), mode=m),
                 "sample_theta": lambda m: sample_theta(img, theta, None, mode=m),
                 "tps_warp": lambda m: tps_warp(img, tps, None, mode=m),
                 "SpatialTransformer": lambda m: SpatialTransformer(1, mode=m),
                 "KernelOptions": lambda m: KernelOptions(mode=m)},
        "padding_mode": {"warp_affine": lambda m: camwarp.warp_affine(img, eye3, (4, 4), padding_mode=m),
                         "warp_affine3d": lambda m: camwarp.warp_affine3d(vol, eye4, (2, 2, 2), padding_mode=m),
                         "sample_theta": lambda m: sample_theta(img, theta, None, padding_mode=m),
                         "SpatialTransformer": lambda m: SpatialTransformer(1, padding_mode=m),
                         "KernelOptions": lambda m: KernelOptions(padding_mode=m)},
        "size": {"warp_affine": lambda s: camwarp.warp_affine(img, eye3, s),
                 "warp_perspective": lambda s: camwarp.warp_perspective(img, eye3, s),
                 "crop_resize": lambda s: camwarp.crop_resize(img, (0, 0, 2, 2), s),
                 "Camera.transform": lambda s: cam.transform(eye3, s)},
        "backend": {"warp_affine": lambda b: camwarp.warp_affine(img, eye3, (4, 4), backend=b),
                    "warp_perspective": lambda b: camwarp.warp_perspective(img, eye3, (4, 4), backend=b),
                    "crop_resize": lambda b: camwarp.crop_resize(img, (0, 0, 2, 2), (2, 2), backend=b),
                    "warp_affine3d": lambda b: camwarp.warp_affine3d(vol, eye4, (2, 2, 2), backend=b),
                    "sample_theta": lambda b: sample_theta(img, theta, None, backend=b)},
        "align_corners": {"theta_to_matrix": lambda a: camwarp.theta_to_matrix(theta, (5, 5), (5, 5), a),
                          "matrix_to_theta": lambda a: camwarp.matrix_to_theta(eye3, (5, 5), (5, 5), a)},
    }


BAD = {"mode": "bogus", "padding_mode": "bogus", "size": (0, 4), "backend": "bogus", "align_corners": "yes"}
# A real inconsistency found here goes in ERROR_BUGS, {(arg, fn): why}, marked xfail(strict=True).
ERROR_BUGS: dict[tuple[str, str], str] = {}


def _error_cases() -> list:
    return [pytest.param(arg, fn, id=f"{arg}-{fn}", marks=[pytest.mark.xfail(strict=True, reason=ERROR_BUGS[arg, fn])]
                         if (arg, fn) in ERROR_BUGS else []) for arg, fns in _calls().items() for fn in fns]


@pytest.mark.parametrize(("arg", "fn"), _error_cases())
def test_bad_argument_error_names_function_and_argument(arg: str, fn: str) -> None:
    call = _calls()[arg][fn]
    with pytest.raises((TypeError, ValueError)) as exc:
        call(BAD[arg])
    message = str(exc.value)
    assert message.startswith(f"{fn}: ") and arg in message.split(":", 1)[1], message


# --------------------------------------------------------------------------------------------------
# Imports: `import camwarp` stays light; no layer imports a layer above it

LAYERS = ["camwarp.geometry", "camwarp.camera", "camwarp.warp", "camwarp.transforms", "camwarp.stn"]
APPS = ["camwarp.data", "camwarp.train", "camwarp.prepare", "camwarp.cli"]
HEAVY = ["matplotlib", "cv2", "kornia", "numba", "triton", "PIL", "yaml", "scipy"]
_PROBE = f"""
import importlib, json, sys
import camwarp
top = sorted(sys.modules)
layers, leaks = {LAYERS!r}, {{}}
for i, name in enumerate(layers):  # lowest first: a module loaded early by a lower layer is a leak
    importlib.import_module(name)
    leaks[name] = [m for m in layers[i + 1:] + {APPS!r} if m in sys.modules]
print(json.dumps({{"top": top, "leaks": leaks}}))
"""


@pytest.fixture(scope="module")
def probe() -> dict:
    proc = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_import_camwarp_is_light(probe: dict) -> None:
    heavy = [m for m in LAYERS[1:] + APPS + HEAVY if m in probe["top"]]
    assert not heavy, f"`import camwarp` imports {heavy}; sub-packages and heavy libraries must load lazily"


def test_layers_import_only_lower_layers(probe: dict) -> None:
    # With the re-export test, this also means camwarp.Camera / camwarp.warp_affine (which load
    # camwarp.camera / camwarp.warp) never pull in transforms, stn or the applications.
    leaks = {layer: above for layer, above in probe["leaks"].items() if above}
    assert not leaks, f"layers importing layers above them (STYLE.md 'Cutting files'): {leaks}"
