"""Constant tensors: initializers and tensor attributes, backed by numpy and decoded lazily.

A ``Tensor`` made from a ``TensorProto`` keeps the proto and decodes it only when ``numpy()`` is
first called, as a zero-copy ``np.frombuffer`` view over ``raw_data`` where the layout allows.
Export of an untouched tensor hands the original proto back, so a load/save round trip neither
decodes nor re-encodes weights. Tensors stored in external files are read (memory-mapped) on demand.

>>> t = Tensor(np.ones((2, 3), np.float32), name="w")
>>> t.dtype, t.shape, t.nbytes
(<DType.FLOAT: 1>, (2, 3), 24)
"""

from __future__ import annotations

import math
import os

import numpy as np
import onnx
from onnx import numpy_helper

from irlib.dtypes import DType
from irlib.errors import IRLoadError

__all__ = ["Tensor", "ExternalData"]


class ExternalData:
    """Where an external tensor's bytes live: file (absolute), byte offset and length."""

    __slots__ = ("path", "offset", "length", "extra")

    def __init__(self, path: str, offset: int = 0, length: int | None = None, extra=None):
        self.path = path
        self.offset = offset
        self.length = length
        self.extra = extra or {}

    def __repr__(self) -> str:
        return f"ExternalData({self.path!r}, offset={self.offset}, length={self.length})"


class Tensor:
    """A constant tensor with a name, an element type and a static shape."""

    __slots__ = (
        "name", "doc_string", "metadata_props", "_array", "_proto", "_dtype", "_shape",
        "external", "_nbytes",
    )

    def __init__(self, array, name: str = "", doc_string: str = "", dtype: DType | None = None):
        arr = array if isinstance(array, np.ndarray) else np.asarray(array)
        if arr.dtype.byteorder == ">":  # ONNX stores little-endian; keep one representation
            arr = arr.astype(arr.dtype.newbyteorder("<"))
        self._dtype = DType(dtype) if dtype is not None else DType.from_numpy(arr.dtype)
        if self._dtype is not DType.STRING and arr.dtype != self._dtype.numpy:
            arr = arr.astype(self._dtype.numpy)  # numpy() always returns the declared type
        self._array = arr
        self._proto: onnx.TensorProto | None = None
        self._shape = tuple(int(d) for d in arr.shape)
        self.name = name
        self.doc_string = doc_string
        self.metadata_props: dict[str, str] = {}
        self.external: ExternalData | None = None
        self._nbytes = None

    @classmethod
    def from_proto(cls, proto: onnx.TensorProto, base_dir: str = "") -> Tensor:
        """Wrap ``proto`` without decoding it. External data files are checked, not read."""
        t = cls.__new__(cls)
        t._array = None
        t._proto = proto
        try:
            t._dtype = DType(proto.data_type)
        except ValueError:
            raise IRLoadError(f"tensor {proto.name!r}: data type {proto.data_type} is not a known"
                              " ONNX data type") from None
        t._shape = tuple(int(d) for d in proto.dims)
        t.name = proto.name
        t.doc_string = proto.doc_string
        t.metadata_props = {p.key: p.value for p in proto.metadata_props}
        t.external = None
        t._nbytes = None
        if proto.data_location == onnx.TensorProto.EXTERNAL:
            info = {e.key: e.value for e in proto.external_data}
            location = info.pop("location", "")
            path = os.path.join(base_dir, location)
            folder = os.path.abspath(base_dir or ".")
            if location and (os.path.isabs(location) or os.path.commonpath(
                    [folder, os.path.abspath(path)]) != folder):
                raise IRLoadError(
                    f"tensor {proto.name!r}: external data file {location!r} is outside the"
                    " model's folder (refused, as onnx does)")
            if not location or not os.path.isfile(path):
                raise IRLoadError(
                    f"tensor {proto.name!r}: external data file {location!r} not found"
                    f" (looked in {base_dir or '.'})"
                )
            offset = int(info.pop("offset", 0))
            length = info.pop("length", None)
            length = int(length) if length is not None else None
            size = os.path.getsize(path)
            need = length if length is not None else t._packed_nbytes()
            if need is not None and offset + need > size:
                raise IRLoadError(
                    f"tensor {proto.name!r}: external data file {location!r} is too short"
                    f" ({size} bytes, need {offset + need})"
                )
            t.external = ExternalData(os.path.abspath(path), offset, length, info)
        return t

    # -- properties --------------------------------------------------------------------------
    @property
    def dtype(self) -> DType:
        return self._dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def size(self) -> int:
        return math.prod(self._shape)

    def _packed_nbytes(self) -> int | None:
        if self._dtype is DType.STRING:
            return None
        return (self.size * self._dtype.itemsize_bits + 7) // 8

    @property
    def nbytes(self) -> int:
        """Bytes of data as stored in ONNX (strings: sum of their lengths)."""
        if self._nbytes is None:
            n = self._packed_nbytes()
            if n is None:
                n = sum(len(s) for s in np.asarray(self.numpy()).ravel())
            self._nbytes = n
        return self._nbytes

    @property
    def is_decoded(self) -> bool:
        return self._array is not None

    # -- data --------------------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """The data as a numpy array (cached; do not mutate it in place)."""
        if self._array is None:
            self._array = self._decode()
        return self._array

    def _decode(self) -> np.ndarray:
        proto = self._proto
        if self.external is not None:
            return self._read_external()
        dt = self._dtype
        if dt is DType.STRING:
            # onnx's to_array decodes every string as UTF-8 and fails on other bytes: keep each
            # as ``str`` when it is UTF-8 and as ``bytes`` otherwise (export re-encodes both).
            arr = np.empty(len(proto.string_data), dtype=object)
            arr[:] = [_decode_string(b) for b in proto.string_data]
            return arr.reshape(self._shape)
        if (
            proto.HasField("raw_data")
            and dt.itemsize_bits >= 8
        ):
            arr = np.frombuffer(proto.raw_data, dtype=dt.numpy)
            return arr.reshape(self._shape)
        arr = numpy_helper.to_array(proto)
        if arr.dtype != dt.numpy:
            arr = arr.view(dt.numpy) if arr.dtype.itemsize == dt.numpy.itemsize else arr.astype(dt.numpy)
        return arr.reshape(self._shape)

    def _read_external(self) -> np.ndarray:
        ext = self.external
        dt = self._dtype
        if dt.itemsize_bits >= 8 and dt is not DType.STRING:
            count = self.size
            if count == 0:
                return np.zeros(self._shape, dt.numpy)
            mm = np.memmap(ext.path, dtype=dt.numpy, mode="r", offset=ext.offset, shape=(count,))
            return mm.reshape(self._shape)
        # Packed sub-byte types: let onnx unpack them from a proto holding the raw bytes.
        with open(ext.path, "rb") as f:
            f.seek(ext.offset)
            raw = f.read(ext.length if ext.length is not None else self._packed_nbytes())
        p = onnx.TensorProto(data_type=int(dt), dims=self._shape, raw_data=raw)
        return numpy_helper.to_array(p).astype(dt.numpy).reshape(self._shape)

    def raw_bytes(self) -> bytes:
        """The data packed as ONNX ``raw_data`` would hold it (little-endian; sub-byte types
        packed two or four to a byte). Strings have no raw form: ``TypeError``."""
        if self._dtype is DType.STRING:
            raise TypeError(f"tensor {self.name!r}: string tensors have no raw_data form")
        if self._proto is not None and self.external is None and self._proto.HasField("raw_data"):
            return self._proto.raw_data
        return _array_to_proto(self.numpy(), self._dtype).raw_data

    # -- export ------------------------------------------------------------------------------
    def to_proto(self, inline: bool = False) -> onnx.TensorProto:
        """A ``TensorProto`` for this tensor. Untouched imported tensors return their own proto;
        external tensors keep their external reference unless ``inline``."""
        if self._proto is not None and (self.external is None or not inline):
            proto = self._proto
            if (
                proto.name == self.name
                and proto.doc_string == self.doc_string
                and {p.key: p.value for p in proto.metadata_props} == self.metadata_props
            ):
                return proto
            proto = onnx.TensorProto()
            proto.CopyFrom(self._proto)
        else:
            proto = _array_to_proto(self.numpy(), self._dtype)
        # Set only when non-empty: ONNX's protos are proto2, where "" is a present value.
        _set_or_clear(proto, "name", self.name)
        _set_or_clear(proto, "doc_string", self.doc_string)
        del proto.metadata_props[:]
        for k, v in self.metadata_props.items():
            proto.metadata_props.add(key=k, value=v)
        return proto

    def __repr__(self) -> str:
        return f"Tensor({self.name!r}, {self._dtype.short}{list(self._shape)})"


def _decode_string(b: bytes):
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b


def _set_or_clear(proto, field: str, value: str) -> None:
    if value:
        setattr(proto, field, value)
    else:
        proto.ClearField(field)


def _array_to_proto(arr: np.ndarray, dtype: DType) -> onnx.TensorProto:
    """``arr`` as a ``TensorProto`` of ``dtype``: strings in ``string_data``, everything else
    bit-exactly in ``raw_data`` (little-endian; sub-byte types packed as ONNX packs them)."""
    if dtype is DType.STRING:
        proto = onnx.TensorProto(data_type=int(dtype), dims=arr.shape)
        proto.string_data.extend(
            s if isinstance(s, bytes) else str(s).encode("utf-8") for s in arr.ravel()
        )
        return proto
    if dtype.itemsize_bits >= 8:
        if arr.dtype != dtype.numpy:
            arr = arr.astype(dtype.numpy)
        proto = onnx.TensorProto(data_type=int(dtype), dims=arr.shape)
        proto.raw_data = np.ascontiguousarray(arr).astype(
            arr.dtype.newbyteorder("<"), copy=False).tobytes()
        return proto
    proto = numpy_helper.from_array(np.asarray(arr, dtype=dtype.numpy))
    proto.data_type = int(dtype)
    proto.ClearField("name")
    return proto
