"""gRPC statuses arrive intact through the gateway: a real `grpcio` server (generic handlers, bytes in and
out, no protoc) behind a Service port named `grpc` (so Meshgate speaks HTTP/2 to it), and a real
`grpcio` client over h2c. NOT_FOUND, PERMISSION_DENIED, UNIMPLEMENTED and INTERNAL, with their
messages (non-ASCII too: grpc-message is percent-encoded) and custom trailing metadata, both as
Trailers-Only (the server aborts before any message) and after streamed messages. Each case is first
checked straight against the server, so a failure through the gateway is the gateway's."""

from __future__ import annotations

from concurrent import futures

import grpc
import pytest

from conftest import documents, free_port, gateway_yaml, http_virtual_service_yaml, service_yaml, workload_entry_yaml

CODES = ["NOT_FOUND", "PERMISSION_DENIED", "UNIMPLEMENTED", "INTERNAL"]
MESSAGES = 3


def message_for(code: str) -> str:
    return f"{code.lower()} happened: détail 100% ✓"


def trailers_for(code: str) -> tuple:
    return (("x-custom-trailer", f"value-{code.lower()}"), ("x-trace-bin", b"\x00\x01\xff" + code.encode()))


def abort(context, code: str) -> None:
    context.set_trailing_metadata(trailers_for(code))
    context.abort(getattr(grpc.StatusCode, code), message_for(code))


def unary(request: bytes, context):
    code = request.decode()
    if code == "OK":
        context.set_trailing_metadata((("x-custom-trailer", "value-ok"),))
        return b"echo:" + request
    abort(context, code)


def stream(request: bytes, context):
    context.send_initial_metadata((("x-initial", "yes"),))
    for index in range(MESSAGES):
        yield b"message %d" % index
    abort(context, request.decode())


class Handler(grpc.GenericRpcHandler):
    def service(self, details):
        if details.method == "/test.Status/Unary":
            return grpc.unary_unary_rpc_method_handler(unary)
        if details.method == "/test.Status/Stream":
            return grpc.unary_stream_rpc_method_handler(stream)
        return None  # grpcio answers UNIMPLEMENTED itself, as Trailers-Only


@pytest.fixture(scope="module")
def rig(module_mesh):
    mesh = module_mesh
    address = mesh.address()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((Handler(),))
    server_port = server.add_insecure_port(f"{address}:0")
    server.start()
    port = free_port()
    config = mesh.config_dir({"grpc.yaml": documents(
        service_yaml("status", 9000, "grpc"), workload_entry_yaml("status-v1", "status", "v1", address, "grpc", server_port),
        gateway_yaml("gw", port, "HTTP"), http_virtual_service_yaml("status", "gw", "status"),
    )})
    mesh.gateway(config, {"http": port})
    channels = {"direct": grpc.insecure_channel(f"{address}:{server_port}"), "gateway": grpc.insecure_channel(f"127.0.0.1:{port}")}
    yield channels
    for channel in channels.values():
        channel.close()
    server.stop(grace=None)


def failure(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value


def check(error: grpc.RpcError, code: str, message: str, trailers: tuple, where: str) -> None:
    got = (error.code().name, error.details())
    assert got == (code, message), f"{where}: got {got}, expected {(code, message)}"
    metadata = {key: value for key, value in error.trailing_metadata() or ()}
    for key, value in trailers:
        assert metadata.get(key) == value, f"{where}: trailing metadata {key} = {metadata.get(key)!r}, expected {value!r} (all: {metadata})"


@pytest.mark.parametrize("code", CODES)
def test_trailers_only_status_arrives_intact(rig, code: str):
    for where in ("direct", "gateway"):
        call = rig[where].unary_unary("/test.Status/Unary")
        error = failure(lambda: call(code.encode(), timeout=10))
        check(error, code, message_for(code), trailers_for(code), where)


@pytest.mark.parametrize("code", CODES)
def test_status_after_streamed_messages_arrives_intact(rig, code: str):
    for where in ("direct", "gateway"):
        call = rig[where].unary_stream("/test.Status/Stream")
        responses = call(code.encode(), timeout=10)
        received = []

        def drain():
            for message in responses:
                received.append(message)

        error = failure(drain)
        assert received == [b"message %d" % i for i in range(MESSAGES)], f"{where}: {received}"
        assert dict(responses.initial_metadata()).get("x-initial") == "yes", where
        check(error, code, message_for(code), trailers_for(code), where)


def test_an_unknown_method_is_unimplemented_from_the_server(rig):
    for where in ("direct", "gateway"):
        error = failure(lambda: rig[where].unary_unary("/test.Status/Missing")(b"x", timeout=10))
        assert error.code() == grpc.StatusCode.UNIMPLEMENTED, f"{where}: {error.code()} {error.details()}"


def test_ok_with_trailing_metadata(rig):
    for where in ("direct", "gateway"):
        reply, call = rig[where].unary_unary("/test.Status/Unary").with_call(b"OK", timeout=10)
        assert reply == b"echo:OK", where
        assert call.code() == grpc.StatusCode.OK and dict(call.trailing_metadata()).get("x-custom-trailer") == "value-ok", where
