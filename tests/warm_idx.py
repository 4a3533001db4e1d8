"""Run the README's examples without paying Python's start-up for each one.

Every `idx` command starts by importing torch, open_clip, scikit-learn and matplotlib: about 3.5 s
of CPU, far more than most examples take on the test's small images. So tests/test_docs.py runs
them the way a fork server would: `serve` imports those once, then forks a fresh child per
command; the child takes over the caller's stdin, stdout, stderr, working directory, environment
and argv and runs idx's own entry point (`idx.cli.main:main`) or a Python example, as a new
process would, from a clean state (the parent never opens an index). The `idx` on the examples'
PATH is `shim`, which hands its arguments and file descriptors to the server and exits with the
child's exit code.

    python tests/warm_idx.py serve SOCKET        # prints "ready" once listening
    python -S tests/warm_idx.py idx ARGS...      # as `idx ARGS`, with WARM_IDX_SOCKET=SOCKET
    python -S tests/warm_idx.py python FILE      # as `python FILE`
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys

HEADER = struct.Struct(">Q")
#: Imported before forking: what `idx` commands and the Python examples spend their start-up on.
WARM = (
    "numpy",
    "torch",
    "open_clip",
    "faiss",
    "duckdb",
    "pyarrow",
    "PIL.Image",
    "sklearn.linear_model",
    "sklearn.model_selection",
    "sklearn.metrics",
    "matplotlib.pyplot",
    "openTSNE",
    "idx.cli.main",
)


def shim(request: dict) -> int:
    """Send the request with the working directory, the environment and fds 0-2; return the
    command's exit code."""
    request |= {"cwd": os.getcwd(), "env": dict(os.environ)}
    payload = json.dumps(request).encode()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(os.environ["WARM_IDX_SOCKET"])
        socket.send_fds(sock, [HEADER.pack(len(payload)) + payload], [0, 1, 2])
        answer = b""
        while len(answer) < 4:
            chunk = sock.recv(4 - len(answer))
            if not chunk:
                print("warm idx: the command's process ended without an exit code", file=sys.stderr)
                return 1
            answer += chunk
    return int.from_bytes(answer, "big", signed=True)


def serve(path: str) -> None:
    import importlib
    import signal

    for name in WARM:
        importlib.import_module(name)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children reap themselves
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(path)
        server.listen(8)
        print("ready", flush=True)
        while True:
            conn, _ = server.accept()
            if os.fork() == 0:
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                server.close()
                _child(conn)  # never returns
            conn.close()


def _child(conn: socket.socket) -> None:
    import atexit
    import traceback

    code = 1
    try:
        message, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
        (length,) = HEADER.unpack(message[: HEADER.size])
        payload = message[HEADER.size :]
        while len(payload) < length:
            payload += conn.recv(length - len(payload))
        request = json.loads(payload)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = request["argv"]
        code = _run(request)
    except BaseException:  # noqa: BLE001 - whatever happens, the caller gets an exit code
        traceback.print_exc()
    try:
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        conn.sendall(code.to_bytes(4, "big", signed=True))
    finally:
        os._exit(code)


def _run(request: dict) -> int:
    try:
        if "code" in request:
            sys.path[0] = ""  # as `python FILE` run from the working directory
            exec(compile(request["code"], sys.argv[0], "exec"), {"__name__": "__main__"})
        else:
            from idx.cli.main import main

            main()
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2])
    elif sys.argv[1] == "idx":
        sys.exit(shim({"argv": ["idx", *sys.argv[2:]]}))
    else:
        with open(sys.argv[2]) as fh:
            sys.exit(shim({"argv": [sys.argv[2]], "code": fh.read()}))
