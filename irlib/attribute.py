"""Node attributes: a name, an ONNX attribute type and a Python value.

Values by type: FLOAT -> float, INT -> int, STRING -> str (bytes if not UTF-8), TENSOR ->
:class:`Tensor`, GRAPH -> :class:`Graph`, TYPE_PROTO -> an irlib type, and the plural types ->
tuples of those. Sparse tensors are carried as their ONNX protos. A reference attribute (inside a
function body) has ``ref_attr_name`` set and no value.

>>> Attribute.infer("kernel_shape", [3, 3])
Attribute('kernel_shape', INTS, (3, 3))
"""

from __future__ import annotations

import enum

import numpy as np

from irlib.tensor import Tensor

__all__ = ["Attribute", "AttrType"]


class AttrType(enum.IntEnum):
    UNDEFINED = 0
    FLOAT = 1
    INT = 2
    STRING = 3
    TENSOR = 4
    GRAPH = 5
    FLOATS = 6
    INTS = 7
    STRINGS = 8
    TENSORS = 9
    GRAPHS = 10
    SPARSE_TENSOR = 11
    SPARSE_TENSORS = 12
    TYPE_PROTO = 13
    TYPE_PROTOS = 14

    @property
    def is_list(self) -> bool:
        return self in _LISTS


_LISTS = {
    AttrType.FLOATS, AttrType.INTS, AttrType.STRINGS, AttrType.TENSORS, AttrType.GRAPHS,
    AttrType.SPARSE_TENSORS, AttrType.TYPE_PROTOS,
}


class Attribute:
    __slots__ = ("name", "type", "value", "doc_string", "ref_attr_name", "_source")

    def __init__(self, name: str, type: AttrType, value, doc_string: str = "",
                 ref_attr_name: str = ""):
        self.name = name
        self.type = AttrType(type)
        self.value = tuple(value) if self.type.is_list and value is not None else value
        self.doc_string = doc_string
        self.ref_attr_name = ref_attr_name
        self._source = None

    @classmethod
    def _imported(cls, source: tuple) -> Attribute:
        """The importer's attribute for a number or string ``AttributeProto``: ``source`` is
        ``(name, type, value, doc_string, serialized proto)``, ``type`` already an ``AttrType``
        and a list ``value`` already a tuple, so ``__init__``'s conversions are skipped.

        The attribute remembers ``source``: while its name, type, value (the same object) and
        doc string are the ones read, export hands the serialized proto back instead of
        writing it field by field (see :meth:`_unchanged_source`)."""
        a = object.__new__(cls)
        a.name, a.type, a.value, a.doc_string, _ = source
        a.ref_attr_name = ""
        a._source = source
        return a

    def _unchanged_source(self) -> bytes | None:
        """The serialized ``AttributeProto`` this attribute was read from, if nothing changed
        since (numbers and strings only; values are immutable, so ``is`` tells a new one)."""
        src = self._source
        if src is not None and self.value is src[2] and self.name == src[0] \
                and self.type is src[1] and self.doc_string == src[3] and not self.ref_attr_name:
            return src[4]
        return None

    @classmethod
    def infer(cls, name: str, value) -> Attribute:
        """Build an attribute, choosing its type from the Python value (like
        ``onnx.helper.make_attribute``)."""
        from irlib.graph import Graph  # local: graph imports this module

        if isinstance(value, Attribute):
            return value
        if isinstance(value, (bool, int, np.integer)):
            return cls(name, AttrType.INT, int(value))
        if isinstance(value, (float, np.floating)):
            return cls(name, AttrType.FLOAT, float(value))
        if isinstance(value, (str, bytes)):
            return cls(name, AttrType.STRING, value)
        if isinstance(value, Tensor):
            return cls(name, AttrType.TENSOR, value)
        if isinstance(value, np.ndarray):
            return cls(name, AttrType.TENSOR, Tensor(value))
        if isinstance(value, Graph):
            return cls(name, AttrType.GRAPH, value)
        if isinstance(value, (list, tuple)):
            items = list(value)
            if not items:
                raise ValueError(f"attribute {name!r}: cannot infer the type of an empty list")
            if all(isinstance(v, (bool, int, np.integer)) for v in items):
                return cls(name, AttrType.INTS, [int(v) for v in items])
            if all(isinstance(v, (int, float, np.integer, np.floating)) for v in items):
                return cls(name, AttrType.FLOATS, [float(v) for v in items])
            if all(isinstance(v, (str, bytes)) for v in items):
                return cls(name, AttrType.STRINGS, items)
            if all(isinstance(v, Tensor) for v in items):
                return cls(name, AttrType.TENSORS, items)
            if all(isinstance(v, Graph) for v in items):
                return cls(name, AttrType.GRAPHS, items)
        raise ValueError(f"attribute {name!r}: cannot infer an ONNX type for {type(value).__name__}")

    def subgraphs(self):
        """The graphs this attribute holds (none, one or several)."""
        if self.type is AttrType.GRAPH and self.value is not None:
            return (self.value,)
        if self.type is AttrType.GRAPHS and self.value is not None:
            return self.value
        return ()

    def __eq__(self, other) -> bool:
        if not isinstance(other, Attribute):
            return NotImplemented
        return (self.name, self.type, self.ref_attr_name) == (other.name, other.type, other.ref_attr_name) \
            and _value_eq(self.value, other.value)

    __hash__ = None

    def __repr__(self) -> str:
        if self.ref_attr_name:
            return f"Attribute({self.name!r}, {self.type.name}, @{self.ref_attr_name})"
        return f"Attribute({self.name!r}, {self.type.name}, {self.value!r})"


def _value_eq(a, b) -> bool:
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a.numpy(), b.numpy())
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_value_eq(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (a != a and b != b)
    return a is b or a == b
