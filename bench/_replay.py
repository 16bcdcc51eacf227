"""A market channel that replays recorded simulator streams as fast as each client reads.

``python bench/_replay.py RECORDING [RATE]`` serves ``ws://127.0.0.1:<port>/ws/market`` and
``http://127.0.0.1:<port>/markets`` (the Gamma rows recorded with the streams) and prints the
two URLs. With a ``RATE`` (events per second, over all connections) each connection is paced
to its share of it; without one (or 0) it sends as fast as its client reads. The simulator
spends far more time making a tick than a client spends taking it;
replaying what it made lets a benchmark find the client's limit rather than the source's.

A recording (see :func:`record`) holds, per connection of the client's pool, the assets it
subscribes to and the frames the simulator sent it: the initial dump, then the changes. A
client whose initial frame names one of those asset sets gets the dump and the changes,
then the dump again and the changes again, and so on: each pass starts from the same
snapshots, so the books stay exact, and the timestamps move on by the span of the recording
at each pass, so every row a pass stores is new. PING gets PONG; operation frames are
ignored (a replayed stream never goes stale).
"""

from __future__ import annotations

import asyncio
import pickle
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import web
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

_TIMESTAMP = re.compile(rb'"timestamp":"(\d+)"')

Stream = tuple[frozenset[str], list[bytes]]

_CHUNK = 64


def _text_frame(payload: bytes) -> bytes:
    """An unmasked, final websocket text frame (RFC 6455 section 5.2), as a server sends."""
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 1 << 16:
        return bytes((0x81, 126)) + size.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + size.to_bytes(8, "big") + payload


async def record(
    ws_url: str,
    groups: Sequence[Sequence[str]],
    seconds: float,
    path: Path,
    rows: list[dict[str, Any]],
) -> dict[str, float]:
    """Subscribe one raw connection per asset group and record what each receives.

    Args:
        ws_url: The simulator's market channel.
        groups: The asset ids of each connection, as the client's pool will group them.
        seconds: How long to record.
        path: Where to write the recording.
        rows: The Gamma ``/markets`` rows to serve with it.

    Returns:
        Frames and events recorded.
    """
    streams: list[list[bytes]] = [[] for _ in groups]

    async def take(assets: Sequence[str], frames: list[bytes]) -> None:
        async with connect(ws_url, max_size=None, compression=None, ping_interval=None) as ws:
            subscribe = b'{"type":"market","assets_ids":[%s]}' % b",".join(
                b'"%s"' % a.encode() for a in assets
            )
            await ws.send(subscribe.decode())
            while True:
                frames.append(await ws.recv(decode=False))

    tasks = [asyncio.create_task(take(g, f)) for g, f in zip(groups, streams, strict=True)]
    await asyncio.sleep(seconds)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    recording: list[Stream] = [(frozenset(g), f) for g, f in zip(groups, streams, strict=True)]
    await asyncio.to_thread(path.write_bytes, pickle.dumps((recording, rows)))
    return {
        "frames": float(sum(len(f) for f in streams)),
        "events": float(sum(f.count(b'"event_type"') for s in streams for f in s)),
    }


class _Pass:
    """A stream's frames as templates: the bytes around each timestamp, and the timestamps."""

    def __init__(self, frames: list[bytes]) -> None:
        self.parts: list[tuple[list[bytes], list[int]]] = []
        self.events = [frame.count(b'"event_type"') for frame in frames]
        first = last = None
        for frame in frames:
            pieces: list[bytes] = []
            stamps: list[int] = []
            at = 0
            for match in _TIMESTAMP.finditer(frame):
                pieces.append(frame[at : match.start(1)])
                stamp = int(match.group(1))
                stamps.append(stamp)
                at = match.end(1)
                first = stamp if first is None else min(first, stamp)
                last = stamp if last is None else max(last, stamp)
            pieces.append(frame[at:])
            self.parts.append((pieces, stamps))
        self.span = (last or 0) - (first or 0) + 1_000

    def frames(self, offset: int) -> list[bytes]:
        out = []
        for pieces, stamps in self.parts:
            if not stamps:
                out.append(pieces[0])
                continue
            joined = [pieces[0]]
            for stamp, piece in zip(stamps, pieces[1:], strict=True):
                joined.append(str(stamp + offset).encode())
                joined.append(piece)
            out.append(b"".join(joined))
        return out


async def serve_recording(path: Path, rate: float) -> None:
    recording, rows = pickle.loads(await asyncio.to_thread(path.read_bytes))
    passes = {assets: _Pass(frames) for assets, frames in recording}
    share = rate / len(passes) if rate > 0 else 0.0  # events per second per connection
    loop = asyncio.get_running_loop()

    async def handler(ws: ServerConnection) -> None:
        initial = await ws.recv()
        assets = frozenset(re.findall(r'"(\d{20,})"', str(initial)))
        stream = passes.get(assets)
        if stream is None:
            await ws.close(1008, "no recording for these assets")
            return

        async def answer() -> None:
            async for message in ws:
                if message == "PING":
                    await ws.send("PONG")

        answering = asyncio.create_task(answer())
        transport = ws.transport
        began = loop.time()
        sent = 0
        try:
            number = 0
            while True:
                frames = stream.frames(number * stream.span)
                # Whole text frames written straight to the socket, many at a time: the
                # server must cost far less than the client it feeds.
                for start in range(0, len(frames), _CHUNK):
                    transport.write(b"".join(map(_text_frame, frames[start : start + _CHUNK])))
                    await ws.drain()
                    if answering.done():
                        return
                    if share:
                        sent += sum(stream.events[start : start + _CHUNK])
                        ahead = began + sent / share - loop.time()
                        if ahead > 0:
                            await asyncio.sleep(ahead)
                number += 1
        except Exception:
            pass
        finally:
            answering.cancel()

    async def markets(request: web.Request) -> web.Response:
        offset = int(request.query.get("offset", "0"))
        limit = int(request.query.get("limit", "100"))
        return web.json_response(rows[offset : offset + limit])

    app = web.Application()
    app.router.add_get("/markets", markets)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    http_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    async with serve(
        handler, "127.0.0.1", 0, max_size=None, compression=None, ping_interval=None
    ) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"ws://127.0.0.1:{port}/ws/market", flush=True)
        print(f"http://127.0.0.1:{http_port}", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    rate = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    asyncio.run(serve_recording(Path(sys.argv[1]), rate))
