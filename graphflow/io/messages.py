"""The messages of ``graphflow.proto``, field for field (tests check the two agree)."""

from __future__ import annotations

from graphflow.io.wire import Field, Message, schema

GRAPH_FORMAT_VERSION = 1
META_GRAPH_FORMAT_VERSION = 1
CHECKPOINT_FORMAT_VERSION = 1

DATA_TYPES = {
    "DT_INVALID": 0, "DT_FLOAT": 1, "DT_DOUBLE": 2, "DT_INT32": 3, "DT_UINT8": 4,
    "DT_INT16": 5, "DT_INT8": 6, "DT_INT64": 9, "DT_BOOL": 10, "DT_HALF": 19,
}


@schema("TensorShapeProto.Dim", Field(1, "size", "int64"), Field(2, "name", "string"))
class Dim(Message):
    """One dimension: ``size`` (-1 when unknown) and an optional ``name``."""


@schema("TensorShapeProto", Field(2, "dim", "message", repeated=True, message=Dim),
        Field(3, "unknown_rank", "bool"))
class TensorShapeProto(Message):
    """A static shape: dims (size -1 when unknown) or ``unknown_rank``."""

    Dim = Dim


@schema("ExternalData", Field(1, "location", "string"), Field(2, "offset", "int64"),
        Field(3, "length", "int64"), Field(4, "crc32c", "fixed32"))
class ExternalData(Message):
    """Where a tensor's bytes live outside the message: file, offset, length, CRC32C."""


@schema("TensorProto",
        Field(1, "dtype", "enum", enum=DATA_TYPES),
        Field(2, "tensor_shape", "message", message=TensorShapeProto),
        Field(3, "version_number", "int32"),
        Field(4, "tensor_content", "bytes"),
        Field(5, "float_val", "float", repeated=True, numpy=True),
        Field(6, "double_val", "double", repeated=True, numpy=True),
        Field(7, "int_val", "int32", repeated=True, numpy=True),
        Field(10, "int64_val", "int64", repeated=True, numpy=True),
        Field(11, "bool_val", "bool", repeated=True, numpy=True),
        Field(13, "half_val", "int32", repeated=True, numpy=True),
        Field(100, "external", "message", message=ExternalData))
class TensorProto(Message):
    """A tensor value: dtype, shape and little-endian content (or an external reference)."""


@schema("AttrValue.ListValue",
        Field(2, "s", "bytes", repeated=True),
        Field(3, "i", "int64", repeated=True),
        Field(4, "f", "float", repeated=True),
        Field(5, "b", "bool", repeated=True),
        Field(6, "type", "enum", repeated=True, enum=DATA_TYPES),
        Field(7, "shape", "message", repeated=True, message=TensorShapeProto),
        Field(8, "tensor", "message", repeated=True, message=TensorProto),
        Field(100, "d", "double", repeated=True))
class ListValue(Message):
    """A list-valued attribute."""


@schema("AttrValue",
        Field(1, "list", "message", message=ListValue, oneof="value"),
        Field(2, "s", "bytes", oneof="value"),
        Field(3, "i", "int64", oneof="value"),
        Field(4, "f", "float", oneof="value"),
        Field(5, "b", "bool", oneof="value"),
        Field(6, "type", "enum", enum=DATA_TYPES, oneof="value"),
        Field(7, "shape", "message", message=TensorShapeProto, oneof="value"),
        Field(8, "tensor", "message", message=TensorProto, oneof="value"),
        Field(100, "d", "double", oneof="value"),
        Field(101, "none", "bool", oneof="value"))
class AttrValue(Message):
    """An op attribute's value; exactly one member of the ``value`` oneof is set."""

    ListValue = ListValue


@schema("NodeDef",
        Field(1, "name", "string"),
        Field(2, "op", "string"),
        Field(3, "input", "string", repeated=True),
        Field(4, "device", "string"),
        Field(5, "attr", "map", key="string", value="message", message=AttrValue))
class NodeDef(Message):
    """One op of a graph: name, op type, inputs (``x``, ``x:1``, ``^ctrl``) and attrs."""


@schema("VersionDef", Field(1, "producer", "int32"), Field(2, "min_consumer", "int32"),
        Field(3, "bad_consumers", "int32", repeated=True))
class VersionDef(Message):
    """Which graphflow wrote a graph and which versions may read it."""


@schema("GraphDef",
        Field(1, "node", "message", repeated=True, message=NodeDef),
        Field(4, "versions", "message", message=VersionDef),
        Field(100, "format_version", "uint32"),
        Field(101, "crc32c", "fixed32"),
        root_format_version=GRAPH_FORMAT_VERSION)
class GraphDef(Message):
    """A serialized graph (TF1's ``tf.GraphDef``)."""


@schema("VariableDef",
        Field(1, "variable_name", "string"),
        Field(2, "initializer_name", "string"),
        Field(3, "snapshot_name", "string"),
        Field(6, "initial_value_name", "string"),
        Field(7, "trainable", "bool"))
class VariableDef(Message):
    """A Variable, by the names of its ops and tensors."""


@schema("CollectionDef.NodeList", Field(1, "value", "string", repeated=True))
class NodeList(Message):
    """Names of tensors (``x:0``) or operations (``train``)."""


@schema("CollectionDef.BytesList", Field(1, "value", "bytes", repeated=True))
class BytesList(Message):
    """Byte strings (Python ``str`` items are stored UTF-8 encoded)."""


@schema("CollectionDef.Int64List", Field(1, "value", "int64", repeated=True))
class Int64List(Message):
    """Integers."""


@schema("CollectionDef.FloatList", Field(1, "value", "float", repeated=True))
class FloatList(Message):
    """Floats."""


@schema("CollectionDef.VariableList",
        Field(1, "value", "message", repeated=True, message=VariableDef))
class VariableList(Message):
    """Variables."""


@schema("CollectionDef",
        Field(1, "node_list", "message", message=NodeList, oneof="kind"),
        Field(2, "bytes_list", "message", message=BytesList, oneof="kind"),
        Field(3, "int64_list", "message", message=Int64List, oneof="kind"),
        Field(4, "float_list", "message", message=FloatList, oneof="kind"),
        Field(100, "variable_list", "message", message=VariableList, oneof="kind"))
class CollectionDef(Message):
    """The items of one graph collection."""

    NodeList = NodeList
    BytesList = BytesList
    Int64List = Int64List
    FloatList = FloatList
    VariableList = VariableList


@schema("SaverDef",
        Field(4, "max_to_keep", "int32"),
        Field(6, "keep_checkpoint_every_n_hours", "float"),
        Field(7, "version", "int32"),
        Field(100, "variables", "map", key="string", value="string"))
class SaverDef(Message):
    """How a Saver was configured, and which variables it saves under which keys."""


@schema("MetaGraphDef.MetaInfoDef",
        Field(1, "meta_graph_version", "string"),
        Field(4, "tags", "string", repeated=True),
        Field(100, "graphflow_version", "string"))
class MetaInfoDef(Message):
    """Information about a meta graph."""


@schema("MetaGraphDef",
        Field(1, "meta_info_def", "message", message=MetaInfoDef),
        Field(2, "graph_def", "message", message=GraphDef),
        Field(3, "saver_def", "message", message=SaverDef),
        Field(4, "collection_def", "map", key="string", value="message",
              message=CollectionDef),
        Field(100, "format_version", "uint32"),
        Field(101, "crc32c", "fixed32"),
        root_format_version=META_GRAPH_FORMAT_VERSION)
class MetaGraphDef(Message):
    """A graph with its collections and saver: enough to resume training from files."""

    MetaInfoDef = MetaInfoDef


@schema("CheckpointEntry", Field(1, "name", "string"),
        Field(2, "tensor", "message", message=TensorProto))
class CheckpointEntry(Message):
    """One saved tensor: its key and a TensorProto pointing into the data file."""


@schema("CheckpointIndex",
        Field(1, "entry", "message", repeated=True, message=CheckpointEntry),
        Field(2, "data_file", "string"),
        Field(3, "data_size", "int64"),
        Field(4, "global_step", "int64"),
        Field(100, "format_version", "uint32"),
        Field(101, "crc32c", "fixed32"),
        root_format_version=CHECKPOINT_FORMAT_VERSION)
class CheckpointIndex(Message):
    """The ``.index`` file of a checkpoint."""


@schema("CheckpointState",
        Field(1, "model_checkpoint_path", "string"),
        Field(2, "all_model_checkpoint_paths", "string", repeated=True),
        Field(3, "all_model_checkpoint_timestamps", "double", repeated=True),
        Field(4, "last_preserved_timestamp", "double"))
class CheckpointState(Message):
    """The ``checkpoint`` file of a checkpoint directory (text form)."""


ALL_MESSAGES = (Dim, TensorShapeProto, ExternalData, TensorProto, ListValue, AttrValue,
                NodeDef, VersionDef, GraphDef, VariableDef, NodeList, BytesList, Int64List,
                FloatList, VariableList, CollectionDef, SaverDef, MetaInfoDef, MetaGraphDef,
                CheckpointEntry, CheckpointIndex, CheckpointState)
