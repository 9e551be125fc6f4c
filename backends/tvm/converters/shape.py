"""Data movement and shape ops: Reshape, Flatten, Transpose, Concat, Split, Slice, Gather,
Squeeze, Unsqueeze, Expand, Pad, Resize, Tile, Shape, Size, Constant, ConstantOfShape, Range.

Inputs that carry shapes, indices or pads (Reshape's shape, Slice's starts ...) must be known at
compile time: initializers, ``Constant`` nodes, or ``Shape`` of a static tensor (irc's ``-O1``
folds the usual Shape/Gather/Concat arithmetic into such constants). ``Shape``, ``Size`` and
small ``Constant``/``ConstantOfShape`` results stay numpy arrays in the lowering, so the ops that
read them see plain numbers.
"""

from __future__ import annotations

import numpy as np

from backends.base import BackendError
from backends.tvm._env import relax
from backends.tvm.converters._common import ints, needs_static
from backends.tvm.converters._registry import converter
from irlib import Node

#: ConstantOfShape results up to this many elements stay numpy (foldable); larger ones are
#: built by ``relax.op.full`` at run time rather than embedded in the module.
SMALL_CONSTANT = 4096


def _axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def _int(d):
    """A TIR dimension as an int, else the TIR expression itself."""
    return int(d.value) if hasattr(d, "value") and isinstance(d.value, int) else d


# -- compile-time values ------------------------------------------------------------------
def _constant_check(node: Node) -> bool | str:
    if any(node.attr(n) is not None for n in ("sparse_value", "value_string", "value_strings")):
        return "Constant: sparse and string constants are not supported"
    return True


@converter("Constant", check=_constant_check)
def constant(cx, node: Node):
    for name in ("value", "value_float", "value_int", "value_floats", "value_ints"):
        v = node.attr(name)
        if v is None:
            continue
        if name == "value":
            return v.numpy()
        dtype = np.float32 if "float" in name else np.int64
        return np.asarray(v, dtype=dtype)
    raise BackendError("tvm: Constant: only tensor and numeric attributes are supported")


@converter("Shape", notes="static shapes become compile-time constants; start/end honoured")
def shape(cx, node: Node):
    x = cx.arg(node, 0)
    dims = [_int(d) for d in cx.dims(x)]
    rank = len(dims)
    start = node.attr("start", 0)
    end = node.attr("end", rank)
    start = min(max(_axis(start, rank), 0), rank)
    end = min(max(_axis(end, rank), 0), rank)
    picked = dims[start:end]
    if all(isinstance(d, int) for d in picked):
        return np.array(picked, dtype=np.int64)
    t = cx.emit(relax.op.shape_to_tensor(relax.op.shape_of(x)))
    return relax.op.strided_slice(t, [0], [start], [end])


@converter("Size")
def size(cx, node: Node):
    s = cx.shape(cx.arg(node, 0))
    if None in s:
        raise BackendError("tvm: Size: needs a static shape")
    return np.array(int(np.prod(s)), dtype=np.int64)


@converter("ConstantOfShape", check=needs_static(0, what="shape"))
def constant_of_shape(cx, node: Node):
    shape_ = [int(d) for d in cx.require_const(node, 0, "the shape")]
    value = node.attr("value")
    arr = value.numpy().reshape(-1) if value is not None else np.zeros(1, np.float32)
    if int(np.prod(shape_)) <= SMALL_CONSTANT:
        return np.full(shape_, arr[0], dtype=arr.dtype)
    return relax.op.full(shape_, relax.const(arr[0], str(arr.dtype)), str(arr.dtype))


@converter("Range", check=needs_static(0, 1, 2, what="start/limit/delta"))
def range_(cx, node: Node):
    start, limit, delta = (cx.require_const(node, i, n)
                           for i, n in enumerate(("start", "limit", "delta")))
    return np.arange(start.reshape(()), limit.reshape(()), delta.reshape(()), dtype=start.dtype)


# -- reshaping ----------------------------------------------------------------------------
@converter("Reshape", check=needs_static(1, what="shape"), notes="allowzero honoured")
def reshape(cx, node: Node):
    x = cx.arg(node, 0)
    target = [int(d) for d in cx.require_const(node, 1, "the shape")]
    dims = [_int(d) for d in cx.dims(x)]
    allowzero = node.attr("allowzero", 0)
    out = []
    for i, d in enumerate(target):
        out.append(dims[i] if d == 0 and not allowzero else d)
    return relax.op.reshape(x, out)


@converter("Flatten")
def flatten(cx, node: Node):
    x = cx.arg(node, 0)
    dims = [_int(d) for d in cx.dims(x)]
    axis = _axis(int(node.attr("axis", 1)), len(dims))
    lead = 1
    for d in dims[:axis]:
        lead = lead * d
    return relax.op.reshape(x, [lead, -1])


@converter("Transpose")
def transpose(cx, node: Node):
    x = cx.arg(node, 0)
    perm = ints(node, "perm") or list(reversed(range(cx.rank(x))))
    return relax.op.permute_dims(x, perm)


@converter("Squeeze", check=needs_static(1, what="axes"))
def squeeze(cx, node: Node):
    x = cx.arg(node, 0)
    rank = cx.rank(x)
    axes = ints(node, "axes") if cx.opset < 13 else \
        (None if cx.const(node, 1) is None else [int(a) for a in cx.const(node, 1)])
    if axes is None:
        shape_ = cx.shape(x)
        if None in shape_:
            raise BackendError("tvm: Squeeze without axes needs a static shape")
        axes = [i for i, d in enumerate(shape_) if d == 1]
    return relax.op.squeeze(x, [_axis(a, rank) for a in axes])


@converter("Unsqueeze", check=needs_static(1, what="axes"))
def unsqueeze(cx, node: Node):
    x = cx.arg(node, 0)
    axes = ints(node, "axes") if cx.opset < 13 else \
        [int(a) for a in cx.require_const(node, 1, "the axes")]
    rank = cx.rank(x) + len(axes)
    axes = sorted(_axis(a, rank) for a in axes)
    known = cx.known_value(node.inputs[0])
    if known is not None and known.size <= SMALL_CONSTANT:
        return np.expand_dims(known, axes)
    return relax.op.expand_dims(x, axes)


@converter("Expand", check=needs_static(1, what="shape"))
def expand(cx, node: Node):
    x = cx.arg(node, 0)
    target = [int(d) for d in cx.require_const(node, 1, "the shape")]
    dims = [_int(d) for d in cx.dims(x)]
    n = max(len(dims), len(target))
    dims = [1] * (n - len(dims)) + dims
    target = [1] * (n - len(target)) + target
    out = []
    for d, t in zip(dims, target):
        if t == 1:
            out.append(d)
        elif isinstance(d, int) and d != 1 and d != t:
            raise BackendError(f"tvm: Expand: cannot broadcast dimension {d} to {t}")
        else:
            out.append(t)
    return relax.op.broadcast_to(x, out)


@converter("Tile", check=needs_static(1, what="repeats"))
def tile(cx, node: Node):
    reps = [int(r) for r in cx.require_const(node, 1, "the repeats")]
    return relax.op.tile(cx.arg(node, 0), reps)


# -- joining and splitting ----------------------------------------------------------------
@converter("Concat")
def concat(cx, node: Node):
    vals = [cx.known_value(v) for v in node.inputs]
    axis = int(node.attr("axis"))
    if all(v is not None for v in vals) and sum(v.size for v in vals) <= SMALL_CONSTANT:
        return np.concatenate(vals, axis=axis)
    args = [cx.value(v) for v in node.inputs]
    return relax.op.concat(args, axis=_axis(axis, cx.rank(args[0])))


@converter("Split", check=needs_static(1, what="split"),
           notes="split sizes as input or attribute, num_outputs")
def split(cx, node: Node):
    x = cx.arg(node, 0)
    rank = cx.rank(x)
    axis = _axis(int(node.attr("axis", 0)), rank)
    sizes = ints(node, "split") if cx.opset < 13 else \
        (None if cx.const(node, 1) is None else [int(s) for s in cx.const(node, 1)])
    n = len(node.outputs)
    if sizes is None:
        dim = _int(cx.dims(x)[axis])
        if isinstance(dim, int) and dim % n:
            chunk = -(-dim // n)  # opset 18 num_outputs: the last chunk is smaller
            sizes = [chunk] * (dim // chunk) + ([dim % chunk] if dim % chunk else [])
        else:
            parts = cx.emit(relax.op.split(x, n, axis=axis))
            return [relax.TupleGetItem(parts, i) for i in range(n)]
    indices = list(np.cumsum(sizes)[:-1].astype(int))
    parts = cx.emit(relax.op.split(x, [int(i) for i in indices], axis=axis))
    return [relax.TupleGetItem(parts, i) for i in range(len(sizes))]


def _slice_check(node: Node) -> bool | str:
    return needs_static(1, 2, 3, 4, what="starts/ends/axes/steps")(node)


@converter("Slice", check=_slice_check, notes="negative steps, clamping as ONNX")
def slice_(cx, node: Node):
    x = cx.arg(node, 0)
    rank = cx.rank(x)
    if cx.opset < 10:
        starts, ends = ints(node, "starts"), ints(node, "ends")
        axes = ints(node, "axes", list(range(len(starts))))
        steps = [1] * len(starts)
    else:
        starts = [int(v) for v in cx.require_const(node, 1, "starts")]
        ends = [int(v) for v in cx.require_const(node, 2, "ends")]
        a = cx.const(node, 3)
        axes = list(range(len(starts))) if a is None else [int(v) for v in a]
        s = cx.const(node, 4)
        steps = [1] * len(starts) if s is None else [int(v) for v in s]
    dims = [_int(d) for d in cx.dims(x)]
    known = cx.known_value(node.inputs[0])
    if known is not None and known.size <= SMALL_CONSTANT:
        index = [slice(None)] * rank
        for st, en, ax, sp in zip(starts, ends, axes, steps):
            index[_axis(ax, rank)] = slice(st, en, sp)
        return known[tuple(index)]
    y = x
    fwd_axes, fwd_begin, fwd_end, fwd_step = [], [], [], []
    for st, en, ax, sp in zip(starts, ends, axes, steps):
        ax = _axis(ax, rank)
        if sp == 0:
            raise BackendError("tvm: Slice: a step of 0 is invalid")
        d = dims[ax]
        if not isinstance(d, int):
            if sp < 0:
                raise BackendError("tvm: Slice: a negative step needs a static dimension")
            lim = 2 ** 31 - 1
            fwd_axes.append(ax)
            fwd_begin.append(max(min(st, lim), -lim))
            fwd_end.append(max(min(en, lim), -lim))
            fwd_step.append(sp)
            continue
        b, e, s = slice(st, en, sp).indices(d)
        if sp > 0:
            fwd_axes.append(ax)
            fwd_begin.append(b)
            fwd_end.append(max(e, b))
            fwd_step.append(s)
        else:  # gather the picked indices: strided_slice cannot end before index 0
            picked = np.arange(b, e, s, dtype=np.int64)
            if picked.size == 0:
                raise BackendError("tvm: Slice: an empty result is not supported")
            y = cx.emit(relax.op.take(y, relax.const(picked, "int64"), axis=ax))
    if fwd_axes:
        y = relax.op.strided_slice(y, fwd_axes, fwd_begin, fwd_end, fwd_step)
    return y


@converter("Gather", notes="negative indices (constant or not)")
def gather(cx, node: Node):
    x = cx.arg(node, 0)
    rank = cx.rank(x)
    axis = _axis(int(node.attr("axis", 0)), rank)
    idx = cx.const(node, 1)
    data = cx.known_value(node.inputs[0])
    if idx is not None and data is not None and data.size <= SMALL_CONSTANT:
        return np.take(data, idx, axis=axis)
    if idx is not None:
        dim = _int(cx.dims(x)[axis])
        if isinstance(dim, int):
            norm = np.where(idx < 0, idx + dim, idx).astype(np.int64)
            return relax.op.take(x, relax.const(norm, "int64"), axis=axis)
    return relax.op.take(x, cx.arg(node, 1), axis=axis, mode="wrap")


@converter("GatherElements")
def gather_elements(cx, node: Node):
    x = cx.arg(node, 0)
    return relax.op.gather_elements(x, cx.arg(node, 1),
                                    axis=_axis(int(node.attr("axis", 0)), cx.rank(x)))


# -- padding and resizing -----------------------------------------------------------------
_PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "replicate",
              "wrap": "circular"}


def _pad_check(node: Node) -> bool | str:
    mode = node.attr("mode", "constant")
    if mode not in _PAD_MODES:
        return f"Pad: mode={mode} is not supported"
    return needs_static(1, 2, 3, what="pads/constant_value/axes")(node)


@converter("Pad", check=_pad_check, notes="constant/reflect/edge/wrap; axes (opset 18)")
def pad(cx, node: Node):
    x = cx.arg(node, 0)
    rank = cx.rank(x)
    if cx.opset < 11:
        pads = ints(node, "pads")
        value = float(node.attr("value", 0.0))
    else:
        pads = [int(v) for v in cx.require_const(node, 1, "the pads")]
        cv = cx.const(node, 2)
        value = 0.0 if cv is None or cv.size == 0 else cv.reshape(-1)[0].item()
        a = cx.const(node, 3)
        if a is not None:
            axes = [_axis(int(v), rank) for v in a]
            full = [0] * (2 * rank)
            for i, ax in enumerate(axes):
                full[ax], full[rank + ax] = pads[i], pads[len(axes) + i]
            pads = full
    if any(p < 0 for p in pads):
        raise BackendError("tvm: Pad: negative pads (cropping) are not supported")
    width = []
    for i in range(rank):
        width += [pads[i], pads[rank + i]]
    return relax.op.nn.pad(x, width, pad_mode=_PAD_MODES[node.attr("mode", "constant")],
                           pad_value=value)


_RESIZE_COORD = {"half_pixel", "align_corners", "asymmetric", "pytorch_half_pixel",
                 "tf_half_pixel_for_nn"}
_NEAREST = {"round_prefer_floor": "round_prefer_floor", "round_prefer_ceil": "round_prefer_ceil",
            "floor": "floor", "ceil": "ceil"}


def _resize_check(node: Node) -> bool | str:
    x = node.inputs[0]
    shape = getattr(x.type, "shape", None) if x is not None else None
    if shape is None or len(shape) != 4:
        return "Resize: only 4-D (NCHW) inputs are supported"
    ct = node.attr("coordinate_transformation_mode", "half_pixel")
    if ct not in _RESIZE_COORD:
        return f"Resize: coordinate_transformation_mode={ct} is not supported"
    if node.attr("antialias", 0):
        return "Resize: antialias=1 is not supported"
    if node.attr("axes") is not None or node.attr("keep_aspect_ratio_policy", "stretch") != "stretch":
        return "Resize: axes and keep_aspect_ratio_policy are not supported"
    return needs_static(1, 2, 3, what="roi/scales/sizes")(node)


@converter("Resize", check=_resize_check,
           notes="4-D NCHW; nearest/linear/cubic; scales giving whole output sizes, or sizes")
def resize(cx, node: Node):
    if cx.opset < 11:
        raise BackendError("tvm: Resize before opset 11 is not supported")
    x = cx.arg(node, 0)
    dims = cx.static_shape(x, node)
    sizes = cx.const(node, 3)
    scales = cx.const(node, 2)
    if sizes is not None and sizes.size:
        out = [int(s) for s in sizes]
    elif scales is not None and scales.size:
        out = []
        for d, s in zip(dims, scales):
            exact = d * float(s)
            if abs(exact - round(exact)) > 1e-6:
                raise BackendError(f"tvm: Resize: scale {float(s)} of size {d} does not give a"
                                   " whole output size; give sizes instead")
            out.append(int(round(exact)))
    else:
        raise BackendError("tvm: Resize: needs scales or sizes")
    if out[:2] != dims[:2]:
        raise BackendError("tvm: Resize: only the spatial (H, W) dimensions can be resized")
    mode = node.attr("mode", "nearest")
    method = {"nearest": "nearest_neighbor", "linear": "linear", "cubic": "cubic"}[mode]
    rounding = _NEAREST.get(node.attr("nearest_mode", "round_prefer_floor"), "round")
    return relax.op.image.resize2d(
        x, out[2:], roi=[0.0, 0.0, 0.0, 0.0], layout="NCHW", method=method,
        coordinate_transformation_mode=node.attr("coordinate_transformation_mode", "half_pixel"),
        rounding_method=rounding if method == "nearest_neighbor" else "",
        cubic_alpha=float(node.attr("cubic_coeff_a", -0.75)),
        cubic_exclude=int(node.attr("exclude_outside", 0)),
        extrapolation_value=float(node.attr("extrapolation_value", 0.0)))
