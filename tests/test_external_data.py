"""Models whose weights live in external-data files: reading, writing, and the choices of
``irlib.save(external_data=True / False / None)``.

ONNX keeps a tensor outside the model file when ``data_location`` is ``EXTERNAL``: the proto names a
file (relative to the model's folder), an offset and a length. irlib checks those files when it
loads a model, reads them lazily, and writes its own data file beside the saved model, atomically.
"""

from __future__ import annotations

import os
import shutil

import ml_dtypes
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import irlib
import irlib.io

IR = 10


def _model() -> onnx.ModelProto:
    """y = (x @ W + b) * dequantize(q4): a 16 KiB float weight, a tiny bias and packed int4."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((64, 64)).astype(np.float32)
    b = rng.standard_normal(64).astype(np.float32)
    q = rng.integers(-8, 8, size=(64,)).astype(ml_dtypes.int4)
    q4 = numpy_helper.from_array(np.tile(q, 40)[:2561].astype(ml_dtypes.int4), "q4")  # odd length
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]),
         helper.make_node("Add", ["xw", "b"], ["h"]),
         helper.make_node("DequantizeLinear", ["q4", "scale"], ["dq_all"]),
         helper.make_node("Slice", ["dq_all", "start", "end"], ["dq"]),
         helper.make_node("Mul", ["h", "dq"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 64])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b"), q4,
         numpy_helper.from_array(np.array([0], np.int64), "start"),
         numpy_helper.from_array(np.array([64], np.int64), "end"),
         numpy_helper.from_array(np.array(0.5, np.float32), "scale")])
    graph.initializer[0].doc_string = "the weights"
    graph.initializer[0].metadata_props.add(key="layout", value="KN")
    return helper.make_model(graph, ir_version=IR, opset_imports=[helper.make_opsetid("", 21)])


X = np.random.default_rng(1).standard_normal((2, 64)).astype(np.float32)


def _run(path: str) -> np.ndarray:
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": X})[0]


def _save_onnx_external(folder, location="weights.bin") -> str:
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "model.onnx")
    onnx.save_model(_model(), path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location=location, size_threshold=1024)
    return path


def _locations(path: str) -> dict[str, str | None]:
    """Initializer name -> external file it lives in (``None``: inline)."""
    proto = onnx.load(path, load_external_data=False)
    out = {}
    for t in proto.graph.initializer:
        info = {e.key: e.value for e in t.external_data}
        out[t.name] = info["location"] if t.data_location == TensorProto.EXTERNAL else None
    return out


def _leftovers(folder) -> list[str]:
    return [f for f in os.listdir(folder) if f.startswith(".irc-")]


# -- reading ------------------------------------------------------------------------------------
def test_external_model_runs_the_same_after_saving_elsewhere(tmp_path):
    src = _save_onnx_external(tmp_path / "src")
    expected = _run(src)
    assert _locations(src)["W"] == "weights.bin" and _locations(src)["b"] is None

    m = irlib.load(src)
    w = next(v for v in m.graph.initializers if v.name == "W").const_value
    assert w.external is not None and not w.is_decoded  # checked, not read

    dst = tmp_path / "dst" / "out.onnx"
    dst.parent.mkdir()
    irlib.save(m, dst)  # None: read with external data, so written with external data
    assert _locations(dst) == {"W": "out.onnx.data", "b": None, "q4": "out.onnx.data",
                               "start": None, "end": None, "scale": None}
    shutil.rmtree(tmp_path / "src")  # nothing of the original is needed any more
    np.testing.assert_array_equal(_run(str(dst)), expected)
    assert _leftovers(dst.parent) == []

    back = irlib.load(dst)
    for v, orig in zip(back.graph.initializers, _model().graph.initializer):
        assert v.const_value.raw_bytes() == orig.raw_data, v.name
    w2 = next(v for v in back.graph.initializers if v.name == "W").const_value
    assert (w2.doc_string, w2.metadata_props) == ("the weights", {"layout": "KN"})


def test_saving_over_the_model_it_was_read_from(tmp_path):
    """The data file is replaced while the loaded model still maps the old one: the new file is
    written aside and renamed into place, so what is written is what was read."""
    src = _save_onnx_external(tmp_path, location="model.onnx.data")
    expected = _run(src)
    m = irlib.load(src)
    irlib.save(m, src)
    np.testing.assert_array_equal(_run(src), expected)
    np.testing.assert_array_equal(
        numpy_helper.to_array(next(t for t in onnx.load(src).graph.initializer if t.name == "W")),
        numpy_helper.to_array(_model().graph.initializer[0]))


def test_missing_data_file_is_a_one_line_error_naming_it(tmp_path):
    src = _save_onnx_external(tmp_path)
    os.unlink(tmp_path / "weights.bin")
    with pytest.raises(irlib.IRLoadError) as info:
        irlib.load(src)
    msg = str(info.value)
    assert "weights.bin" in msg and "not found" in msg and "\n" not in msg


def test_truncated_data_file_is_a_one_line_error(tmp_path):
    src = _save_onnx_external(tmp_path)
    with open(tmp_path / "weights.bin", "r+b") as f:
        f.truncate(100)
    with pytest.raises(irlib.IRLoadError, match="weights.bin.*too short") as info:
        irlib.load(src)
    assert "\n" not in str(info.value)


def test_proto_with_external_data_and_no_folder(tmp_path, monkeypatch):
    """A ``ModelProto`` has no folder: its external files are looked up from the working
    directory."""
    src = _save_onnx_external(tmp_path)
    proto = onnx.load(src, load_external_data=False)
    monkeypatch.chdir(tmp_path)
    m = irlib.load(proto)
    np.testing.assert_array_equal(
        next(v for v in m.graph.initializers if v.name == "W").const_value.numpy(),
        numpy_helper.to_array(_model().graph.initializer[0]))
    monkeypatch.chdir(tmp_path.parent)
    with pytest.raises(irlib.IRLoadError, match="weights.bin"):
        irlib.load(proto)


# -- writing: the three choices -------------------------------------------------------------------
def test_external_data_false_inlines_everything(tmp_path):
    src = _save_onnx_external(tmp_path / "src")
    expected = _run(src)
    dst = tmp_path / "inline.onnx"
    irlib.save(irlib.load(src), dst, external_data=False)
    assert set(_locations(dst).values()) == {None}
    assert sorted(os.listdir(tmp_path)) == ["inline.onnx", "src"]
    np.testing.assert_array_equal(_run(str(dst)), expected)


def test_external_data_true_moves_tensors_of_1_kib_and_more(tmp_path):
    m = irlib.load(_model())
    dst = tmp_path / "m.onnx"
    irlib.save(m, dst, external_data=True, data_name="weights.data")
    locs = _locations(dst)
    assert locs["W"] == locs["q4"] == "weights.data"  # 16 KiB, 1281 bytes
    assert locs["b"] is None  # 256 bytes stay inline
    proto = onnx.load(str(dst), load_external_data=False)
    for t in proto.graph.initializer:
        if t.data_location == TensorProto.EXTERNAL:
            offset = int({e.key: e.value for e in t.external_data}["offset"])
            assert offset % 64 == 0
    np.testing.assert_array_equal(_run(str(dst)), _run_proto(_model()))


def test_external_data_true_with_nothing_large_writes_no_data_file(tmp_path):
    graph = helper.make_graph([helper.make_node("Add", ["x", "c"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
                              [numpy_helper.from_array(np.ones(2, np.float32), "c")])
    model = helper.make_model(graph, ir_version=IR, opset_imports=[helper.make_opsetid("", 17)])
    irlib.save(irlib.load(model), tmp_path / "m.onnx", external_data=True)
    assert os.listdir(tmp_path) == ["m.onnx"]


def test_external_data_none_keeps_small_inline_models_inline(tmp_path):
    irlib.save(irlib.load(_model()), tmp_path / "m.onnx")
    assert set(_locations(tmp_path / "m.onnx").values()) == {None}
    assert os.listdir(tmp_path) == ["m.onnx"]


def test_external_data_none_goes_external_past_the_threshold(tmp_path, monkeypatch):
    """The >2 GB rule, with the threshold lowered instead of writing gigabytes."""
    monkeypatch.setattr(irlib.io, "_EXTERNAL_THRESHOLD_BYTES", 10_000)
    irlib.save(irlib.load(_model()), tmp_path / "m.onnx")
    assert _locations(tmp_path / "m.onnx")["W"] == "m.onnx.data"
    np.testing.assert_array_equal(_run(str(tmp_path / "m.onnx")), _run_proto(_model()))
    monkeypatch.setattr(irlib.io, "_EXTERNAL_THRESHOLD_BYTES", 20_000)  # 16 KiB + 1.3 KiB is less
    irlib.save(irlib.load(_model()), tmp_path / "n.onnx")
    assert _locations(tmp_path / "n.onnx")["W"] is None


def test_threshold_counts_tensor_attributes(tmp_path, monkeypatch):
    big = numpy_helper.from_array(np.arange(4096, dtype=np.float32), "big")
    graph = helper.make_graph([helper.make_node("Constant", [], ["y"], value=big)], "g", [],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4096])])
    model = helper.make_model(graph, ir_version=IR, opset_imports=[helper.make_opsetid("", 17)])
    monkeypatch.setattr(irlib.io, "_EXTERNAL_THRESHOLD_BYTES", 10_000)
    irlib.save(irlib.load(model), tmp_path / "m.onnx")
    attr = onnx.load(str(tmp_path / "m.onnx"), load_external_data=False).graph.node[0].attribute[0]
    assert attr.t.data_location == TensorProto.EXTERNAL
    back = irlib.load(tmp_path / "m.onnx")
    np.testing.assert_array_equal(next(iter(back.graph)).attr("value").numpy(),
                                  np.arange(4096, dtype=np.float32))


def test_inline_save_past_the_protobuf_limit_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(irlib.io, "_PROTOBUF_LIMIT_BYTES", 10_000)
    with pytest.raises(irlib.IRError, match="2 GiB") as info:
        irlib.save(irlib.load(_model()), tmp_path / "m.onnx", external_data=False)
    assert "\n" not in str(info.value)
    assert os.listdir(tmp_path) == []


def test_data_name_must_be_a_plain_file_name(tmp_path):
    with pytest.raises(ValueError, match="plain file name"):
        irlib.save(irlib.load(_model()), tmp_path / "m.onnx", external_data=True,
                   data_name="../elsewhere.data")


# -- atomic writes --------------------------------------------------------------------------------
def test_failed_save_leaves_the_previous_files_untouched(tmp_path, monkeypatch):
    dst = tmp_path / "m.onnx"
    irlib.save(irlib.load(_model()), dst, external_data=True)
    before = {f: (tmp_path / f).read_bytes() for f in os.listdir(tmp_path)}
    assert set(before) == {"m.onnx", "m.onnx.data"}

    real = irlib.io.to_onnx

    def fails_midway(model, tensor_writer=None):
        real(model, tensor_writer)  # the data file gets written ...
        raise OSError("disk full")  # ... and then the save fails

    monkeypatch.setattr(irlib.io, "to_onnx", fails_midway)
    with pytest.raises(OSError, match="disk full"):
        irlib.save(irlib.load(_model()), dst, external_data=True)
    after = {f: (tmp_path / f).read_bytes() for f in os.listdir(tmp_path)}
    assert after == before  # no temporary file left, nothing replaced


def test_saved_files_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        irlib.save(irlib.load(_model()), tmp_path / "m.onnx", external_data=True)
    finally:
        os.umask(old)
    for f in ("m.onnx", "m.onnx.data"):
        assert os.stat(tmp_path / f).st_mode & 0o777 == 0o644, f


def _run_proto(proto: onnx.ModelProto) -> np.ndarray:
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": X})[0]


def test_tensors_stored_in_typed_fields_are_written_packed(tmp_path):
    """An int4 initializer held in ``int32_data`` (one element per int32) goes to the data file
    packed two to a byte, as ``raw_data`` would hold it."""
    model = _model()
    q4 = next(t for t in model.graph.initializer if t.name == "q4")
    values = numpy_helper.to_array(q4)
    q4.CopyFrom(helper.make_tensor("q4", TensorProto.INT4, values.shape, values, raw=False))
    assert not q4.HasField("raw_data")
    irlib.save(irlib.load(model), tmp_path / "m.onnx", external_data=True)
    assert _locations(tmp_path / "m.onnx")["q4"] == "m.onnx.data"
    np.testing.assert_array_equal(_run(str(tmp_path / "m.onnx")), _run_proto(_model()))


@pytest.mark.parametrize("location", ["../outside.bin", "/etc/hostname"])
def test_data_file_outside_the_model_folder_is_refused(tmp_path, location):
    src = _save_onnx_external(tmp_path / "m")
    proto = onnx.load(src, load_external_data=False)
    w = next(t for t in proto.graph.initializer if t.name == "W")
    next(e for e in w.external_data if e.key == "location").value = location
    shutil.copy(tmp_path / "m" / "weights.bin", tmp_path / "outside.bin")
    onnx.save_model(proto, src)
    with pytest.raises(irlib.IRLoadError, match="outside the model's folder") as info:
        irlib.load(src)
    assert location in str(info.value) and "\n" not in str(info.value)
