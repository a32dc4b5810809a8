"""The floor of the request benchmark: a bare ASGI app that reads the whole request body and answers a
constant small JSON, served like ModelDeck's scoring server (backend/serving/workers.py: its socket,
uvicorn with uvloop and httptools, one worker) but with no access log. No Python server on this stack
answers faster.

Run: .venv/bin/python -m benchmarks.floor_app --port 8000
"""

from __future__ import annotations

import argparse
from typing import Any

ANSWER = b"[7]"
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Any HTTP request: the body read to its end, then 200 with ANSWER."""
    if scope["type"] == "lifespan":
        for phase in ("startup", "shutdown"):
            await receive()
            await send({"type": f"lifespan.{phase}.complete"})
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": ANSWER})


def main() -> None:
    import uvicorn

    from backend.serving.workers import MAX_CONCURRENCY, bind

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning", access_log=False,
                            loop="uvloop", http="httptools", limit_concurrency=MAX_CONCURRENCY)
    uvicorn.Server(config).run(sockets=[bind(args.host, args.port)])


if __name__ == "__main__":
    main()
