"""Element types of tensors: one enum whose values are ONNX's ``TensorProto.DataType`` codes.

Keeping the ONNX codes as the enum values makes import and export a cast, and the short
names (``f32``, ``i64`` ...) are what the text printer shows.

>>> DType.FLOAT.short
'f32'
>>> DType.from_numpy(np.dtype("int64"))
<DType.INT64: 7>
"""

from __future__ import annotations

import enum

import ml_dtypes
import numpy as np

__all__ = ["DType"]


class DType(enum.IntEnum):
    UNDEFINED = 0
    FLOAT = 1
    UINT8 = 2
    INT8 = 3
    UINT16 = 4
    INT16 = 5
    INT32 = 6
    INT64 = 7
    STRING = 8
    BOOL = 9
    FLOAT16 = 10
    DOUBLE = 11
    UINT32 = 12
    UINT64 = 13
    COMPLEX64 = 14
    COMPLEX128 = 15
    BFLOAT16 = 16
    FLOAT8E4M3FN = 17
    FLOAT8E4M3FNUZ = 18
    FLOAT8E5M2 = 19
    FLOAT8E5M2FNUZ = 20
    UINT4 = 21
    INT4 = 22
    FLOAT4E2M1 = 23
    FLOAT8E8M0 = 24
    UINT2 = 25
    INT2 = 26
    FLOAT6E2M3 = 27
    FLOAT6E3M2 = 28

    @property
    def short(self) -> str:
        """The printer's spelling: ``f32``, ``i64``, ``bool`` ..."""
        return _SHORT.get(self, self.name.lower())

    @property
    def numpy(self) -> np.dtype:
        """The numpy dtype that holds one element (sub-byte types unpacked, one per element)."""
        try:
            return _TO_NUMPY[self]
        except KeyError:
            raise TypeError(f"dtype {self.name} has no numpy equivalent") from None

    @property
    def itemsize_bits(self) -> int:
        """Storage bits per element as ONNX packs them (4 for int4, 2 for int2 ...)."""
        if self in _SUB_BYTE_BITS:
            return _SUB_BYTE_BITS[self]
        if self is DType.STRING or self is DType.UNDEFINED:
            return 0
        return self.numpy.itemsize * 8

    @property
    def is_floating(self) -> bool:
        return self in _FLOATING

    @property
    def is_integer(self) -> bool:
        return self in _INTEGER

    @classmethod
    def from_numpy(cls, dtype: np.dtype | type) -> DType:
        dtype = np.dtype(dtype)
        try:
            return _FROM_NUMPY[dtype]
        except KeyError:
            if dtype.kind in "OUS":
                return cls.STRING
            raise TypeError(f"numpy dtype {dtype} has no ONNX equivalent") from None

    @classmethod
    def from_short(cls, text: str) -> DType:
        """Inverse of :attr:`short` (``"f32"`` -> ``DType.FLOAT``)."""
        for dt in cls:
            if dt.short == text:
                return dt
        raise ValueError(f"unknown dtype {text!r}")


_SHORT = {
    DType.FLOAT: "f32", DType.DOUBLE: "f64", DType.FLOAT16: "f16", DType.BFLOAT16: "bf16",
    DType.INT8: "i8", DType.INT16: "i16", DType.INT32: "i32", DType.INT64: "i64",
    DType.UINT8: "u8", DType.UINT16: "u16", DType.UINT32: "u32", DType.UINT64: "u64",
    DType.BOOL: "bool", DType.STRING: "str", DType.COMPLEX64: "c64", DType.COMPLEX128: "c128",
    DType.INT4: "i4", DType.UINT4: "u4", DType.INT2: "i2", DType.UINT2: "u2",
    DType.FLOAT8E4M3FN: "f8e4m3fn", DType.FLOAT8E4M3FNUZ: "f8e4m3fnuz",
    DType.FLOAT8E5M2: "f8e5m2", DType.FLOAT8E5M2FNUZ: "f8e5m2fnuz", DType.FLOAT8E8M0: "f8e8m0",
    DType.FLOAT4E2M1: "f4e2m1", DType.FLOAT6E2M3: "f6e2m3", DType.FLOAT6E3M2: "f6e3m2",
}

_TO_NUMPY = {
    DType.FLOAT: np.dtype(np.float32), DType.DOUBLE: np.dtype(np.float64),
    DType.FLOAT16: np.dtype(np.float16), DType.BFLOAT16: np.dtype(ml_dtypes.bfloat16),
    DType.INT8: np.dtype(np.int8), DType.INT16: np.dtype(np.int16),
    DType.INT32: np.dtype(np.int32), DType.INT64: np.dtype(np.int64),
    DType.UINT8: np.dtype(np.uint8), DType.UINT16: np.dtype(np.uint16),
    DType.UINT32: np.dtype(np.uint32), DType.UINT64: np.dtype(np.uint64),
    DType.BOOL: np.dtype(np.bool_), DType.STRING: np.dtype(object),
    DType.COMPLEX64: np.dtype(np.complex64), DType.COMPLEX128: np.dtype(np.complex128),
    DType.FLOAT8E4M3FN: np.dtype(ml_dtypes.float8_e4m3fn),
    DType.FLOAT8E4M3FNUZ: np.dtype(ml_dtypes.float8_e4m3fnuz),
    DType.FLOAT8E5M2: np.dtype(ml_dtypes.float8_e5m2),
    DType.FLOAT8E5M2FNUZ: np.dtype(ml_dtypes.float8_e5m2fnuz),
    DType.FLOAT8E8M0: np.dtype(ml_dtypes.float8_e8m0fnu),
    DType.INT4: np.dtype(ml_dtypes.int4), DType.UINT4: np.dtype(ml_dtypes.uint4),
    DType.INT2: np.dtype(ml_dtypes.int2), DType.UINT2: np.dtype(ml_dtypes.uint2),
    DType.FLOAT4E2M1: np.dtype(ml_dtypes.float4_e2m1fn),
    DType.FLOAT6E2M3: np.dtype(ml_dtypes.float6_e2m3fn),
    DType.FLOAT6E3M2: np.dtype(ml_dtypes.float6_e3m2fn),
}
_FROM_NUMPY = {v: k for k, v in _TO_NUMPY.items() if k is not DType.STRING}
_SUB_BYTE_BITS = {
    DType.INT4: 4, DType.UINT4: 4, DType.FLOAT4E2M1: 4,
    DType.INT2: 2, DType.UINT2: 2, DType.FLOAT6E2M3: 6, DType.FLOAT6E3M2: 6,
}
_FLOATING = {
    DType.FLOAT, DType.DOUBLE, DType.FLOAT16, DType.BFLOAT16, DType.FLOAT8E4M3FN,
    DType.FLOAT8E4M3FNUZ, DType.FLOAT8E5M2, DType.FLOAT8E5M2FNUZ, DType.FLOAT8E8M0,
    DType.FLOAT4E2M1, DType.FLOAT6E2M3, DType.FLOAT6E3M2,
}
_INTEGER = {
    DType.INT8, DType.INT16, DType.INT32, DType.INT64, DType.UINT8, DType.UINT16,
    DType.UINT32, DType.UINT64, DType.INT4, DType.UINT4, DType.INT2, DType.UINT2,
}
