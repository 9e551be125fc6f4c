"""Reading and writing model files.

``load`` accepts a path or a ``ModelProto``; external-data files are checked at load time and read
lazily (memory-mapped) when a pass needs the numbers. ``save`` writes atomically: the model (and its
external-data file, if any) go to temporary files in the target folder that are renamed into place
only once complete, so a failure never leaves a half-written model behind.
"""

from __future__ import annotations

import logging
import os
import tempfile

import onnx
from google.protobuf.message import DecodeError

from irlib.attribute import AttrType
from irlib.errors import IRError, IRLoadError
from irlib.from_onnx import from_onnx
from irlib.model import Model
from irlib.tensor import Tensor
from irlib.to_onnx import to_onnx

__all__ = ["load", "save", "save_proto", "atomic_write"]

#: Past this many bytes of tensor data the model cannot be one protobuf (2 GiB limit).
_EXTERNAL_THRESHOLD_BYTES = 1_800_000_000
#: A serialized protobuf message cannot exceed 2 GiB.
_PROTOBUF_LIMIT_BYTES = 2**31 - 1
#: Tensors smaller than this stay inline when writing external data.
_EXTERNAL_MIN_TENSOR_BYTES = 1024
_ALIGN = 64

log = logging.getLogger(__name__)


def load(model: str | os.PathLike | onnx.ModelProto | bytes) -> Model:
    """Read an ONNX model (a path, serialized bytes or a ``ModelProto``) into the IR."""
    if isinstance(model, onnx.ModelProto):
        return from_onnx(model)
    if isinstance(model, bytes):
        return from_onnx(_parse(model, "<bytes>"))
    path = os.fspath(model)
    if not os.path.exists(path):
        raise IRLoadError(f"{path}: no such file")
    if os.path.isdir(path):
        raise IRLoadError(f"{path}: is a directory, not an ONNX model file")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise IRLoadError(f"{path}: cannot read: {e.strerror}") from None
    proto = _parse(data, path)
    try:
        model = from_onnx(proto, base_dir=os.path.dirname(os.path.abspath(path)))
    except IRLoadError as e:
        raise IRLoadError(f"{path}: {e}") from None
    model.meta["source_path"] = os.path.abspath(path)  # for artifacts that name their source
    return model


def _parse(data: bytes, what: str) -> onnx.ModelProto:
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as e:
        reason = "truncated or corrupt protobuf" if data else "empty file"
        raise IRLoadError(f"{what}: not an ONNX model ({reason}: {e})".rstrip()) from None
    if not proto.HasField("graph") or proto.ir_version <= 0:
        if not data:
            raise IRLoadError(f"{what}: not an ONNX model (empty file)")
        raise IRLoadError(f"{what}: not an ONNX model (no graph or IR version in the protobuf)")
    return proto


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file renamed into place."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".irc-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        _set_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _set_mode(tmp: str) -> None:
    """Give a temporary file (created 0600 by ``mkstemp``) the mode a plain ``open`` would."""
    global _UMASK
    if _UMASK is None:
        _UMASK = os.umask(0o022)
        os.umask(_UMASK)
    os.chmod(tmp, 0o666 & ~_UMASK)


_UMASK: int | None = None


def save_proto(proto: onnx.ModelProto, path: str | os.PathLike) -> None:
    """Atomically write an already-built ``ModelProto`` (no external data)."""
    atomic_write(path, proto.SerializeToString())


def _tensor_bytes(model: Model) -> tuple[int, bool]:
    """Bytes of tensor data (initializers and tensor attributes, subgraphs included) and whether
    any of it was read from an external-data file."""
    total, external = 0, False

    def count(t: Tensor) -> None:
        nonlocal total, external
        external |= t.external is not None
        total += t.nbytes if t.dtype.itemsize_bits else 0

    for g in model.graph.all_graphs():
        for v in g.initializers:
            count(v.const_value)
        for n in g:
            for a in n.attributes.values():
                if a.type is AttrType.TENSOR and a.value is not None:
                    count(a.value)
                elif a.type is AttrType.TENSORS and a.value is not None:
                    for t in a.value:
                        count(t)
    return total, external


def save(model: Model, path: str | os.PathLike, external_data: bool | None = None,
         data_name: str | None = None) -> None:
    """Write ``model`` to ``path``.

    ``external_data``: ``True`` puts tensors of 1 KiB and more into one file beside the model
    (``data_name``, default ``<model file name>.data``), ``False`` keeps everything inline, and
    ``None`` (the default) chooses external data when the model was read with external data or its
    weights pass ~1.8 GB (a protobuf cannot exceed 2 GiB). Inline weights past 2 GiB are an
    :class:`IRError`. ``data_name`` is a plain file name in the model's folder. Both files are
    written to temporary files and renamed into place, the data file first; a save that writes no
    tensor externally writes no data file.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise IRLoadError(f"{path}: folder {folder} does not exist")
    total, had_external = _tensor_bytes(model)
    if external_data is None:
        external_data = had_external or total > _EXTERNAL_THRESHOLD_BYTES
    if not external_data:
        if total > _PROTOBUF_LIMIT_BYTES:
            raise IRError(f"{path}: {total} bytes of tensor data do not fit in one protobuf"
                          " (2 GiB limit); save with external_data=True or None")
        proto = to_onnx(model, tensor_writer=_inline_writer)
        atomic_write(path, proto.SerializeToString())
        return

    data_name = data_name or os.path.basename(path) + ".data"
    if os.path.basename(data_name) != data_name or data_name in ("", ".", ".."):
        raise ValueError(f"data_name {data_name!r} must be a plain file name (it lives beside {path})")
    fd, tmp_data = tempfile.mkstemp(dir=folder, prefix=".irc-", suffix=".data.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            writer = _ExternalWriter(f, data_name)
            proto = to_onnx(model, tensor_writer=writer)
        data = proto.SerializeToString()
        if writer.offset:
            _set_mode(tmp_data)
            os.replace(tmp_data, os.path.join(folder, data_name))
            log.debug("wrote %d bytes of tensor data to %s", writer.offset, data_name)
        else:
            os.unlink(tmp_data)  # every tensor stayed inline: no data file
        atomic_write(path, data)
    except BaseException:
        if os.path.exists(tmp_data):
            os.unlink(tmp_data)
        raise


def _inline_writer(tensor: Tensor, name: str) -> onnx.TensorProto:
    return tensor.to_proto(inline=True)


class _ExternalWriter:
    def __init__(self, f, location: str):
        self.f = f
        self.location = location
        self.offset = 0

    def __call__(self, tensor: Tensor, name: str) -> onnx.TensorProto:
        if tensor.dtype.itemsize_bits == 0 or tensor.nbytes < _EXTERNAL_MIN_TENSOR_BYTES:
            return tensor.to_proto(inline=True)
        pad = (-self.offset) % _ALIGN
        if pad:
            self.f.write(b"\0" * pad)
            self.offset += pad
        raw = tensor.raw_bytes()
        self.f.write(raw)
        proto = onnx.TensorProto(data_type=int(tensor.dtype), dims=tensor.shape)
        if name:
            proto.name = name
        if tensor.doc_string:
            proto.doc_string = tensor.doc_string
        for k, v in tensor.metadata_props.items():
            proto.metadata_props.add(key=k, value=v)
        proto.data_location = onnx.TensorProto.EXTERNAL
        for k, v in (("location", self.location), ("offset", str(self.offset)),
                     ("length", str(len(raw)))):
            proto.external_data.add(key=k, value=v)
        self.offset += len(raw)
        return proto
