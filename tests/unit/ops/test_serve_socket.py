"""The socket ``lakeforge serve`` binds before it prints its URL: listening already (a client that connects while
the app starts waits for its answer rather than being refused), and a busy port refused with the fix."""

from __future__ import annotations

import socket

import pytest

from lakeforge.errors import LakeforgeError
from lakeforge.ops.serve import _listen


def test_the_port_accepts_connections_as_soon_as_it_is_bound() -> None:
    server = _listen("127.0.0.1", 0)
    try:
        port = server.getsockname()[1]
        # nothing accepts yet (uvicorn has not started): the connection waits in the backlog, it is not refused
        client = socket.create_connection(("127.0.0.1", port), timeout=5)
        try:
            client.sendall(b"ping")
            accepted, _ = server.accept()
            with accepted:
                assert accepted.recv(4) == b"ping"
        finally:
            client.close()
    finally:
        server.close()


def test_a_busy_port_is_an_error_that_names_it_and_the_fix() -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        with pytest.raises(LakeforgeError) as error:
            _listen("127.0.0.1", port)
        assert f"127.0.0.1:{port}" in error.value.message
        assert "--port" in (error.value.hint or "")
    finally:
        taken.close()
