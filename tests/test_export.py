"""`dtrain export`: every example spec's model exports to pt2 and gives the model's outputs; TorchScript and
ONNX (where the onnx extra is installed) too, with the preprocessing and class names inside."""

from __future__ import annotations

import importlib.util
import json
import warnings
import zipfile
from pathlib import Path

import pytest
import torch

from declarative.assembly.record import checkpoint_extras
from declarative.assembly.tasks import resolve_task
from declarative.assembly.trained import load_trained
from declarative.inference.export import METADATA, export_trained
from declarative.model.builder import build_model, plan_model
from declarative.spec.validate import load_spec
from declarative.training.checkpoint import save_checkpoint
from test_combined import PETS, dtrain, write_pets
from test_predict import _train

SPECS = sorted((Path(__file__).resolve().parents[1] / "specs").glob("*.yaml"))


# Example specs whose data files are made by the tests that use them (specs/data holds digits.npz alone).
_MADE = {"news.csv": ("test_text", "write_news"), "series.csv": ("test_targets_and_series", "write_series")}


def _with_data(spec_file: Path, folder: Path) -> Path:
    """The spec itself, or a copy of it in `folder` beside the data files it reads that the tests make."""
    import importlib

    text = spec_file.read_text()
    made = [name for name in _MADE if f"data/{name}" in text]
    if not made:
        return spec_file
    (folder / "data").mkdir(exist_ok=True)
    for name in made:
        module, function = _MADE[name]
        getattr(importlib.import_module(module), function)(folder / "data" / name)
    (folder / spec_file.name).write_text(text)
    return folder / spec_file.name


def checkpoint_of(spec_file: Path, folder: Path) -> Path:
    """A checkpoint as `dtrain run` writes it, of the spec's freshly initialised model (the example specs'
    sources describe their samples, or their data files are made here)."""
    spec = load_spec(_with_data(spec_file, folder), semantic=False)
    for component in spec.data.transforms:  # a run records the statistics it computed; stand-ins here
        if component.kwargs.get("mean") == "auto":
            component.kwargs = {**component.kwargs, "mean": [0.5], "std": [0.25]}
    plan = plan_model(spec)
    torch.manual_seed(0)
    model = build_model(spec, plan)
    spec = resolve_task(spec, plan.output_shape)
    path = folder / f"{spec_file.stem}.ckpt"
    save_checkpoint({**checkpoint_extras(spec), "state_dict": model.state_dict()}, path)
    return path


@pytest.mark.parametrize("spec_file", SPECS, ids=[p.stem for p in SPECS])
def test_every_example_spec_exports_to_pt2_with_the_models_outputs(spec_file, tmp_path):
    trained = load_trained(checkpoint_of(spec_file, tmp_path))
    exported = export_trained(trained, "pt2", tmp_path / "model.pt2")
    assert exported.max_abs_diff <= 1e-4
    # the file stands alone: torch.export.load, a batch of another size, the model's outputs
    program = torch.export.load(tmp_path / "model.pt2").module()
    dtype = getattr(torch, exported.input_dtype)
    x = (torch.randint(0, 17, (5, *exported.input_shape)) if not dtype.is_floating_point
         else torch.rand(5, *exported.input_shape)).to(dtype)
    with torch.no_grad():
        expected = trained.model(trained.preprocess(x) if exported.preprocess else x)
    torch.testing.assert_close(program(x), expected, atol=1e-4, rtol=1e-4)


def test_export_takes_raw_images_with_the_class_names_as_metadata_in_every_format(tmp_path):
    write_pets(tmp_path / "pets")
    result = _train(tmp_path, "pets", PETS, "trainer.max_epochs=1")
    out = dtrain("export", "runs/pets/version_0", "--output", "pets.pt2", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == "exported pets.pt2 (pt2): takes [N, 3, 16, 16] uint8, preprocessing included"
    assert out.stdout.splitlines()[1].startswith("checked against the checkpoint's model: max abs difference ")
    with zipfile.ZipFile(tmp_path / "pets.pt2") as archive:
        entry = next(name for name in archive.namelist() if name.endswith(METADATA))
        metadata = json.loads(archive.read(entry))
    assert metadata["class_names"] == ["cat", "dog", "eel"] and metadata["task"] == "multiclass"

    # the exported program on raw uint8 images gives what predict gives on them
    trained = load_trained(result.best_model_path)
    images = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    with torch.no_grad():
        expected = trained.model(trained.preprocess(images))
    torch.testing.assert_close(torch.export.load(tmp_path / "pets.pt2").module()(images), expected)

    out = dtrain("export", result.best_model_path, "-f", "torchscript", "-o", "pets.ts", "--no-preprocess",
                 cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "takes [N, 3, 16, 16] float32" in out.stdout and "preprocessing" not in out.stdout
    files = {METADATA: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, and says so
        scripted = torch.jit.load(str(tmp_path / "pets.ts"), _extra_files=files)
    assert json.loads(files[METADATA])["preprocess"] is False
    with torch.no_grad():
        torch.testing.assert_close(scripted(trained.preprocess(images)), expected)

    out = dtrain("export", result.best_model_path, "-f", "onnx", "-o", "pets.onnx", cwd=tmp_path)
    if importlib.util.find_spec("onnxscript") is None or importlib.util.find_spec("onnx") is None:
        assert out.returncode == 1 and "pip install -e '.[onnx]'" in out.stderr, out.stderr
        pytest.skip("the onnx extra is not installed (pip install -e '.[onnx]'): its message was checked")
    assert out.returncode == 0, out.stderr
    import onnx

    model = onnx.load(str(tmp_path / "pets.onnx"))
    assert json.loads({p.key: p.value for p in model.metadata_props}[METADATA])["class_names"] == ["cat", "dog", "eel"]
    if importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(tmp_path / "pets.onnx"), providers=["CPUExecutionProvider"])
        got = session.run(None, {session.get_inputs()[0].name: images.numpy()})[0]
        torch.testing.assert_close(torch.from_numpy(got), expected, atol=1e-4, rtol=1e-4)


POOLED = """\
name: pooled
data:
  source: {Synthetic: {shape: [1, 8, 8], size: 16, num_classes: 3}}
model:
  input: [1, 8, 8]
  layers:
    - Conv2d: {out_channels: 2, kernel_size: 3}
    - AdaptiveMaxPool2d: {output_size: 4}   # 6x6 to 4x4: no decomposition to max_pool2d
    - Flatten
    - Linear: {out_features: 3}
optimizer: {SGD: {lr: 0.1}}
"""


def test_a_layer_that_cannot_be_exported_is_named_with_torchs_reason(tmp_path):
    if importlib.util.find_spec("onnxscript") is None:
        pytest.skip("the onnx extra is not installed (pip install -e '.[onnx]')")
    (tmp_path / "pooled.yaml").write_text(POOLED)
    checkpoint = checkpoint_of(tmp_path / "pooled.yaml", tmp_path)
    out = dtrain("export", checkpoint, "--format", "onnx", cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr.strip().startswith(f"{checkpoint}: AdaptiveMaxPool2d (layer 1) cannot be exported to onnx: "
                                         "No ONNX function found for <OpOverload(op='aten.adaptive_max_pool2d'"), \
        out.stderr
    assert not (tmp_path / "pooled.onnx").exists()
