"""A real ML Metadata gRPC server on loopback: MLMD's own C++ store behind its own service.

    python -m kubeflow.mlmd_server --port 0 --db FILE    # prints the port, serves until killed

Kubeflow Pipelines' driver and launcher talk to MLMD's `MetadataStoreService` over gRPC.
ml-metadata's Python package carries both halves of that server: the C++ `MetadataStore`
(the pybind module `metadata_store_serialized`, which takes and returns serialized
protos, as `MetadataStore._pywrap_cc_call` uses it) and the service's definition
(`metadata_store_service_pb2`). Every RPC of the service is served here by handing its
request bytes to the C++ method of the same name, over a SQLite file (or an in-memory
store), and answering with that method's response bytes, or its status as the gRPC
status. The three RPCs the C++ module does not bind answer UNIMPLEMENTED.
"""
import argparse
import contextlib
import signal
import sys
import threading
from concurrent import futures
from typing import Iterator, Optional

import grpc
from ml_metadata.metadata_store.pywrap.metadata_store_extension import (
    metadata_store as metadata_store_serialized)
from ml_metadata.proto import metadata_store_pb2, metadata_store_service_pb2

SERVICE = metadata_store_service_pb2.DESCRIPTOR.services_by_name["MetadataStoreService"]
_STATUS_CODES = {code.value[0]: code for code in grpc.StatusCode}


def connection_config(db: Optional[str]) -> metadata_store_pb2.ConnectionConfig:
    """A SQLite store in the file `db`, created if missing; in memory if None."""
    config = metadata_store_pb2.ConnectionConfig()
    if db is None:
        config.fake_database.SetInParent()
    else:
        config.sqlite.filename_uri = db
        config.sqlite.connection_mode = (
            metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE)
    return config


def _handler(store, method_name: str, lock: threading.Lock):
    method = getattr(metadata_store_serialized, method_name, None)

    def call(request: bytes, context: grpc.ServicerContext) -> bytes:
        if method is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED,
                          f"{method_name} is not bound by ml-metadata's C++ store module")
        # One store, one connection: calls are serialized as in-process clients' are.
        with lock:
            response, error_message, status_code = method(store, request)
        if status_code != 0:
            context.abort(_STATUS_CODES.get(status_code, grpc.StatusCode.UNKNOWN),
                          error_message.decode("utf-8"))
        return response

    # No (de)serializers: the bytes go to the C++ store as they came.
    return grpc.unary_unary_rpc_method_handler(call)


def create_server(db: Optional[str] = None, port: int = 0) -> tuple[grpc.Server, int]:
    """An MLMD gRPC server on 127.0.0.1 (port 0: any free one), not yet started."""
    migration = metadata_store_pb2.MigrationOptions(enable_upgrade_migration=False)
    store = metadata_store_serialized.CreateMetadataStore(
        connection_config(db).SerializeToString(), migration.SerializeToString())
    lock = threading.Lock()
    handlers = {method.name: _handler(store, method.name, lock) for method in SERVICE.methods}
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler(SERVICE.full_name, handlers)])
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    if bound == 0:
        raise OSError(f"cannot listen on 127.0.0.1:{port}")
    return server, bound


@contextlib.contextmanager
def running_server(db: Optional[str] = None) -> Iterator[str]:
    """Serves MLMD in this process while the block runs; yields its "127.0.0.1:PORT"."""
    server, port = create_server(db)
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubeflow.mlmd_server", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free one)")
    parser.add_argument("--db", help="SQLite file of the store (default: in memory)")
    args = parser.parse_args(argv)
    server, port = create_server(args.db, args.port)
    # Before the port is out: whoever reads it may stop the server at once.
    signal.signal(signal.SIGTERM, lambda *_: server.stop(grace=None))
    server.start()
    print(port, flush=True)
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        server.stop(grace=None)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
