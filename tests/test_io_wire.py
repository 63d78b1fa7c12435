"""graphflow.io's protobuf wire format, text format and CRC32C, including hostile input."""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graphflow as gf
from graphflow.io import crc as crc_mod
from graphflow.io import crc32c, text_format
from graphflow.io import messages as m
from graphflow.io.wire import MAX_DEPTH, _varint_bytes

DataLoss = gf.errors.DataLossError
# Quick in CI; GRAPHFLOW_FUZZ_EXAMPLES=100000 for a long run.
FUZZ_EXAMPLES = int(os.environ.get("GRAPHFLOW_FUZZ_EXAMPLES", "300"))


# --- CRC32C ---------------------------------------------------------------------------
@pytest.mark.parametrize("data,expected", [
    (b"", 0x00000000),
    (b"a", 0xC1D04330),
    (b"123456789", 0xE3069283),
    (bytes(32), 0x8A9136AA),                 # RFC 3720 B.4 test vectors
    (b"\xff" * 32, 0x62A8AB43),
    (bytes(range(32)), 0x46DD794E),
    (bytes(range(31, -1, -1)), 0x113FDB5C),
])
def test_crc32c_known_vectors(data, expected):
    assert crc32c(data) == expected


@pytest.mark.parametrize("n", [4095, 4096, 4097, 65536 + 13, 1 << 20])
def test_crc32c_numpy_path_matches_byte_loop(n):
    data = np.random.default_rng(n).integers(0, 256, n, dtype=np.uint8)
    slow = crc_mod._raw_python(data.tobytes(), 0xFFFFFFFF) ^ 0xFFFFFFFF
    assert crc32c(data) == slow == crc32c(data.tobytes()) == crc32c(memoryview(data))


@given(st.binary(max_size=300), st.binary(max_size=300))
def test_crc32c_continues_like_zlib(a, b):
    assert crc32c(b, crc32c(a)) == crc32c(a + b)


def test_crc32c_continues_across_numpy_sized_pieces():
    data = np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes()
    assert crc32c(data[20_000:], crc32c(data[:20_000])) == crc32c(data)


# --- binary encoding ------------------------------------------------------------------
def _sample_graph_def() -> m.GraphDef:
    t = gf.make_tensor_proto(np.arange(6, dtype=np.float32).reshape(2, 3))
    node = m.NodeDef(name="a/b", op="Const", input=["x", "y:1", "^z"], device="", attr={
        "value": m.AttrValue(tensor=t), "dtype": m.AttrValue(type=1),
        "zero": m.AttrValue(i=0), "neg": m.AttrValue(i=-5), "no": m.AttrValue(b=False),
        "f": m.AttrValue(d=0.1), "n": m.AttrValue(none=True), "s": m.AttrValue(s="é".encode()),
        "l": m.AttrValue(list=m.ListValue(i=[1, -2, 1 << 40])),
        "e": m.AttrValue(list=m.ListValue()),
        "sh": m.AttrValue(shape=m.TensorShapeProto(dim=[m.Dim(size=-1), m.Dim(size=3)])),
    })
    return m.GraphDef(node=[node], versions=m.VersionDef(producer=1, bad_consumers=[-1, 7]))


def test_round_trip_preserves_every_field_kind():
    gd = _sample_graph_def()
    data = gd.SerializeToString()
    back = m.GraphDef.FromString(data)
    assert back == gd
    attr = back.node[0].attr
    assert attr["zero"].WhichOneof("value") == "i" and attr["zero"].i == 0
    assert attr["no"].WhichOneof("value") == "b"
    assert attr["neg"].i == -5 and attr["l"].list.i == [1, -2, 1 << 40]
    assert attr["f"].d == 0.1 and attr["n"].none
    assert attr["e"].WhichOneof("value") == "list"
    assert back.versions.bad_consumers == [-1, 7]
    assert back.ByteSize() == len(data) == len(back.SerializeToString())


def test_serialization_is_canonical_and_checksummed():
    gd = _sample_graph_def()
    data = gd.SerializeToString()
    assert data == m.GraphDef.FromString(data).SerializeToString()
    # It starts with format_version (field 100) and ends with field 101 (fixed32):
    # the CRC32C of everything before it.
    assert data[:3] == _varint_bytes(100 << 3) + b"\x01"
    assert data[-6:-4] == _varint_bytes((101 << 3) | 5)
    assert struct.unpack("<I", data[-4:])[0] == crc32c(data[:-6])


def test_oneof_members_clear_each_other():
    av = m.AttrValue(i=3)
    av.s = b"x"
    assert av.WhichOneof("value") == "s" and av.i == 0
    assert av.HasField("s") and not av.HasField("i")
    av.ClearField("s")
    assert av.WhichOneof("value") is None
    with pytest.raises(AttributeError, match="no field"):
        av.bogus = 1


def test_encoding_rejects_values_out_of_range():
    with pytest.raises(gf.errors.InvalidArgumentError, match="out of range"):
        m.VersionDef(producer=1 << 40).SerializeToString()
    with pytest.raises(gf.errors.InvalidArgumentError, match="expected a str"):
        m.NodeDef(name=b"x").SerializeToString()


def test_unknown_fields_are_skipped():
    known = m.NodeDef(name="x", op="Identity").SerializeToString()
    extra = (_varint_bytes((77 << 3) | 0) + _varint_bytes(300)            # varint
             + _varint_bytes((78 << 3) | 2) + _varint_bytes(3) + b"abc"   # bytes
             + _varint_bytes((79 << 3) | 5) + b"\x00" * 4                 # fixed32
             + _varint_bytes((80 << 3) | 1) + b"\x00" * 8                 # fixed64
             + _varint_bytes((81 << 3) | 3) + _varint_bytes((1 << 3) | 0) + b"\x01"
             + _varint_bytes((81 << 3) | 4))                              # a group
    back = m.NodeDef.FromString(extra + known + extra)
    assert back.name == "x" and back.op == "Identity"


def test_unpacked_repeated_numbers_are_accepted():
    data = b"".join(_varint_bytes((3 << 3) | 0) + _varint_bytes(v) for v in (5, 6))
    assert m.ListValue.FromString(data).i == [5, 6]


def test_message_field_given_twice_is_merged():
    def field(msg):
        body = msg.SerializeToString()
        return _varint_bytes((4 << 3) | 2) + _varint_bytes(len(body)) + body

    data = field(m.VersionDef(producer=3)) + field(m.VersionDef(min_consumer=2))
    gd = m.GraphDef.FromString(data)
    assert gd.versions.producer == 3 and gd.versions.min_consumer == 2


@pytest.mark.parametrize("data,match", [
    (b"\x0a\x05ab", "claims 5 bytes but only 2 remain"),
    (b"\x0a\xff\xff\xff\xff\x0f", "claims .* bytes but only 0 remain"),
    (b"\x48\x80\x80", "data ends inside a varint"),        # unknown field 9, varint
    (b"\x48" + b"\xff" * 10 + b"\x01", "longer than 10 bytes"),
    (b"\x48" + b"\xff" * 9 + b"\x7f", "does not fit in 64 bits"),
    (b"\x08\x01", "has wire type 0, expected 2"),
    (b"\x00\x01", "invalid field number 0"),
    (b"\x0d\x00\x00\x00\x00", "has wire type 5, expected 2"),
    (b"\x0a\x02\xc3\x28", "invalid UTF-8"),
    (b"\x0a\x03\xed\xa0\x80", "invalid UTF-8"),      # an encoded surrogate
    (b"\x4e", "invalid wire type 6"),
    (b"\x7c", "invalid wire type 4"),
    (b"\x7b\x08\x01", "data ends inside a varint"),   # an unterminated group
])
def test_damaged_bytes_give_data_loss_with_offset(data, match):
    with pytest.raises(DataLoss, match=match) as info:
        m.NodeDef.FromString(data)
    assert "byte offset" in str(info.value) and "NodeDef" in str(info.value)


def test_huge_length_prefix_is_rejected_before_allocating():
    # A 10 GB tensor_content claimed in an 11-byte message.
    data = b"\x22" + _varint_bytes(10 << 30) + b"abcd"
    with pytest.raises(DataLoss, match="claims 10737418240 bytes but only 4 remain"):
        m.TensorProto.FromString(data)


def test_nesting_depth_is_bounded():
    # Unknown field 5 of a group-within-group... and real messages nested past MAX_DEPTH.
    inner = b""
    for _ in range(MAX_DEPTH + 5):
        inner = _varint_bytes((81 << 3) | 3) + inner + _varint_bytes((81 << 3) | 4)
    with pytest.raises(DataLoss, match="nested deeper"):
        m.NodeDef.FromString(inner)


def test_checksum_detects_flips_truncation_and_trailing_data():
    data = _sample_graph_def().SerializeToString()
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10
    with pytest.raises(DataLoss):
        m.GraphDef.FromString(bytes(flipped))
    with pytest.raises(DataLoss, match="checksum"):
        m.GraphDef.FromString(data[:-6])  # the checksum field cut off entirely
    with pytest.raises(DataLoss):
        m.GraphDef.FromString(data[:-1])
    with pytest.raises(DataLoss, match="must come last"):
        m.GraphDef.FromString(data + b"\x48\x01")


def test_newer_format_version_is_refused():
    gd = m.GraphDef()
    m.GraphDef._FORMAT_VERSION = 99
    try:
        data = gd.SerializeToString()
    finally:
        m.GraphDef._FORMAT_VERSION = m.GRAPH_FORMAT_VERSION
    with pytest.raises(gf.errors.InvalidArgumentError, match="newer graphflow"):
        m.GraphDef.FromString(data)


# --- text format ----------------------------------------------------------------------
def test_text_round_trip():
    gd = _sample_graph_def()
    text = str(gd)
    assert 'name: "a/b"' in text and "type: DT_FLOAT" in text and "none: true" in text
    back = text_format.parse(text, m.GraphDef())
    assert back == gd


def test_text_parser_accepts_protobuf_syntax_variants():
    text = """
    # a comment
    node < name: 'x' op: "Const" input: ["a", "b:1"]
      attr { key: "v" value: { f: -inf } } attr { key: "w" value { s: "\\x41\\102" "C" } }
    >;
    versions { producer: 0x10 bad_consumers: [1, 2] }
    """
    gd = text_format.parse(text, m.GraphDef())
    node = gd.node[0]
    assert node.name == "x" and node.input == ["a", "b:1"]
    assert node.attr["v"].f == float("-inf") and node.attr["w"].s == b"ABC"
    assert gd.versions.producer == 16 and gd.versions.bad_consumers == [1, 2]


@pytest.mark.parametrize("text,match", [
    ("nodes {}", "no field named 'nodes'"),
    ("node { name: 1 }", "quoted string"),
    ("node { name: \"x\"", "expected '}'"),
    ("versions { producer: 99999999999 }", "out of range"),
    ("node { attr { key: \"a\" value { type: DT_NOPE } } }", "unknown value 'DT_NOPE'"),
    ("node { name: \"\\q\" }", "invalid escape"),
    ("node { name: \"\\377\" }", "invalid UTF-8"),
    ("node @", "unexpected character"),
    ("node {" * 1000, "no field named 'node'"),
])
def test_text_parser_errors_name_line_and_column(text, match):
    with pytest.raises(DataLoss, match=match) as info:
        text_format.parse(text, m.GraphDef(), source="g.pbtxt")
    assert "g.pbtxt:1:" in str(info.value)


# --- fuzzing ----------------------------------------------------------------------------
_ROOTS = [m.GraphDef, m.MetaGraphDef, m.CheckpointIndex, m.NodeDef, m.AttrValue,
          m.TensorProto]
_SEED = _sample_graph_def().SerializeToString()


def _decode_everything(data: bytes) -> None:
    for cls in _ROOTS:
        try:
            msg = cls.FromString(data)
        except gf.errors.OpError:
            continue
        msg.SerializeToString()


@settings(max_examples=FUZZ_EXAMPLES)
@given(st.binary(max_size=200))
def test_fuzz_random_bytes_only_raise_graphflow_errors(data):
    _decode_everything(data)


@settings(max_examples=FUZZ_EXAMPLES)
@given(st.lists(st.tuples(st.integers(0, len(_SEED) - 1), st.integers(0, 255)),
                min_size=1, max_size=4),
       st.integers(0, len(_SEED)))
def test_fuzz_mutated_graph_def_only_raises_graphflow_errors(edits, cut):
    data = bytearray(_SEED)
    for pos, byte in edits:
        data[pos] = byte
    _decode_everything(bytes(data[:cut]) if cut % 3 == 0 else bytes(data))


@settings(max_examples=FUZZ_EXAMPLES // 2)
@given(st.text(alphabet="node{}<>:[],;\"'\\# \n0123456789-.abcdefxyz_", max_size=120))
def test_fuzz_text_parser_only_raises_graphflow_errors(text):
    try:
        text_format.parse(text, m.GraphDef())
    except gf.errors.OpError:
        pass
