"""``gf.io``: graph files, meta graphs and checkpoints (schema in ``graphflow.proto``).

Files are data (DESIGN principle 5): reading one never executes code, checks
every size before allocating, verifies CRC32C checksums and reports damage as
``gf.errors.DataLossError`` with the byte offset; writes are atomic.
"""

from graphflow.io.crc import crc32c
from graphflow.io.graph_io import (
    GRAPH_DEF_VERSION,
    graph_to_graph_def,
    import_graph_def,
    read_graph,
    write_graph,
)
from graphflow.io.messages import (
    AttrValue,
    CheckpointState,
    CollectionDef,
    GraphDef,
    MetaGraphDef,
    NodeDef,
    SaverDef,
    TensorProto,
    TensorShapeProto,
    VariableDef,
    VersionDef,
)
from graphflow.io.meta_graph import export_meta_graph, import_meta_graph, read_meta_graph_file
from graphflow.io.saver import (
    CheckpointReader,
    Saver,
    checkpoint_exists,
    get_checkpoint_state,
    latest_checkpoint,
    list_variables,
    load_checkpoint,
    load_variable,
    remove_checkpoint,
    update_checkpoint_state,
)
from graphflow.io.tensors import make_ndarray, make_tensor_proto

__all__ = [
    "AttrValue", "CheckpointReader", "CheckpointState", "CollectionDef", "GRAPH_DEF_VERSION",
    "GraphDef", "MetaGraphDef", "NodeDef", "Saver", "SaverDef", "TensorProto",
    "TensorShapeProto", "VariableDef", "VersionDef", "checkpoint_exists", "crc32c",
    "export_meta_graph", "get_checkpoint_state", "graph_to_graph_def", "import_graph_def",
    "import_meta_graph", "latest_checkpoint", "list_variables", "load_checkpoint",
    "load_variable", "make_ndarray", "make_tensor_proto", "read_graph", "read_meta_graph_file",
    "remove_checkpoint", "update_checkpoint_state", "write_graph",
]
