"""The floor of the web stack for ``benchmarks/serve.py`` part 1: a minimal FastAPI app on uvicorn
(run as ``imagerag serve`` runs uvicorn, access log included) whose ``POST /api/search`` answers a
constant JSON body read from a file: no middleware, no body parsing, no search.

    python benchmarks/serve_anchor.py BODY_FILE PORT_FILE
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path


def serve_anchor(body_file: str, port_file: str) -> None:
    import uvicorn
    from fastapi import FastAPI
    from fastapi.responses import Response

    body = Path(body_file).read_bytes()
    app = FastAPI()

    @app.post("/api/search")
    async def search() -> Response:
        return Response(body, media_type="application/json")

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # as serve_app.serve_child
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="info"))
    Path(port_file + ".tmp").write_text(str(sock.getsockname()[1]))
    os.replace(port_file + ".tmp", port_file)
    server.run(sockets=[sock])


class Anchor:
    """The anchor app in a child process, answering ``body``; ``url`` once it answers."""

    def __init__(self, work: Path, body: bytes) -> None:
        import httpx

        tag = time.monotonic_ns()
        body_file, port_file = work / f"anchor-body-{tag}.json", work / f"anchor-port-{tag}"
        body_file.write_bytes(body)
        self.log = work / f"anchor-{tag}.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, __file__, str(body_file), str(port_file)],
                                         stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while True:
            try:
                self.url = f"http://127.0.0.1:{port_file.read_text()}"
                httpx.post(self.url + "/api/search", timeout=5).raise_for_status()
                return
            except (FileNotFoundError, httpx.TransportError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise SystemExit(f"the anchor app does not answer; its log:\n{self.log.read_text()}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)

    def __enter__(self) -> Anchor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    serve_anchor(*sys.argv[1:3])
