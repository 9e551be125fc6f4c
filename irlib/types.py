"""Types of values: tensors with (possibly symbolic) shapes, and ONNX's container types.

A dimension is an ``int`` (static), a ``str`` (a symbolic name such as ``"batch"``) or ``None``
(unknown). A shape is a tuple of dimensions; a ``TensorType`` whose ``shape`` is ``None`` has an
unknown rank.

>>> t = TensorType(DType.FLOAT, ("N", 3, 224, 224))
>>> str(t)
'f32[N,3,224,224]'
>>> t.is_static
False
"""

from __future__ import annotations

import dataclasses
import math
from typing import Union

from irlib.dtypes import DType

__all__ = [
    "Dim", "Shape", "TensorType", "SparseTensorType", "SequenceType", "OptionalType",
    "MapType", "OpaqueType", "Type", "format_shape",
]

Dim = Union[int, str, None]
Shape = tuple  # tuple[Dim, ...]


def format_shape(shape: Shape | None) -> str:
    if shape is None:
        return "[*]"
    return "[" + ",".join("?" if d is None else str(d) for d in shape) + "]"


@dataclasses.dataclass(frozen=True)
class TensorType:
    """A dense tensor: element type and shape (``None`` = unknown rank)."""

    dtype: DType
    shape: Shape | None = None
    denotation: str = ""
    #: ONNX's per-dimension denotations (``"DATA_BATCH"`` ...), one per dimension, ``""`` where a
    #: dimension has none; ``None`` when no dimension has one. An annotation: not compared.
    dim_denotations: tuple[str, ...] | None = dataclasses.field(
        default=None, compare=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "dtype", DType(self.dtype))
        if self.shape is not None:
            object.__setattr__(self, "shape", tuple(self.shape))
        if self.dim_denotations is not None:
            object.__setattr__(self, "dim_denotations", tuple(self.dim_denotations))

    @property
    def rank(self) -> int | None:
        return None if self.shape is None else len(self.shape)

    @property
    def is_static(self) -> bool:
        """True when the rank and every dimension are known integers."""
        return self.shape is not None and all(isinstance(d, int) for d in self.shape)

    @property
    def numel(self) -> int | None:
        return math.prod(self.shape) if self.is_static else None

    @property
    def nbytes(self) -> int | None:
        """Bytes of the tensor's data when static (sub-byte types rounded up)."""
        n = self.numel
        if n is None or self.dtype is DType.STRING:
            return None
        return (n * self.dtype.itemsize_bits + 7) // 8

    def __str__(self) -> str:
        return f"{self.dtype.short}{format_shape(self.shape)}"


@dataclasses.dataclass(frozen=True)
class SparseTensorType:
    dtype: DType
    shape: Shape | None = None
    denotation: str = ""
    dim_denotations: tuple[str, ...] | None = dataclasses.field(
        default=None, compare=False, repr=False)

    def __str__(self) -> str:
        return f"sparse<{DType(self.dtype).short}{format_shape(self.shape)}>"


@dataclasses.dataclass(frozen=True)
class SequenceType:
    elem: "Type | None"
    denotation: str = ""

    def __str__(self) -> str:
        return f"seq<{self.elem}>"


@dataclasses.dataclass(frozen=True)
class OptionalType:
    elem: "Type | None"
    denotation: str = ""

    def __str__(self) -> str:
        return f"optional<{self.elem}>"


@dataclasses.dataclass(frozen=True)
class MapType:
    key: DType
    value: "Type | None"
    denotation: str = ""

    def __str__(self) -> str:
        return f"map<{DType(self.key).short},{self.value}>"


@dataclasses.dataclass(frozen=True)
class OpaqueType:
    domain: str = ""
    name: str = ""
    denotation: str = ""

    def __str__(self) -> str:
        return f"opaque<{self.domain}.{self.name}>"


Type = Union[TensorType, SparseTensorType, SequenceType, OptionalType, MapType, OpaqueType]
