"""Converters from irc's IR to Relax, one module per op family.

- :mod:`.elementwise`: unary math, activations, broadcasting binary ops, comparisons, Clip,
  Where, variadic Sum/Max/Min/Mean, Cast, Identity, Dropout
- :mod:`.nn`: Conv, ConvTranspose, pools, BatchNormalization, InstanceNormalization,
  LayerNormalization, LRN, Softmax/LogSoftmax
- :mod:`.linalg`: MatMul, Gemm
- :mod:`.shape`: Reshape, Flatten, Transpose, Concat, Split, Slice, Gather, Squeeze, Unsqueeze,
  Expand, Pad, Resize, Tile, Shape, Size, Constant, ConstantOfShape
- :mod:`.reduce`: Reduce*, ArgMax/ArgMin

Importing this package registers them all; nothing here imports TVM until a converter runs.
"""

from backends.tvm.converters._registry import CONVERTERS, Converter, converter, get_converter
from backends.tvm.converters import elementwise, linalg, nn, reduce, shape  # noqa: F401  (register)

__all__ = ["CONVERTERS", "Converter", "converter", "get_converter"]
