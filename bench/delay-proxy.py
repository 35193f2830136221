#!/usr/bin/env python3
"""TCP forwarder that adds a fixed one-way delay in each direction: a WAN on loopback.

Stands in for `tc netem delay` (sch_netem is not in every kernel): every chunk read is
written out DELAY_MS later, order kept, so an application round trip costs 2 × DELAY_MS
more. Bandwidth is not limited. One process serves any number of listen → target pairs,
so a fleet of 200 hosts needs one proxy, not 200.

usage: bench/delay-proxy.py --delay-ms 50 [--events FILE] LPORT:THOST:TPORT …
       bench/delay-proxy.py --delay-ms 50 --pairs FILE          (one LPORT:THOST:TPORT a line)

Listens on 127.0.0.1:LPORT and forwards to THOST:TPORT. `--events FILE` appends one line
per connection opened or closed by the client (`<monotonic s> open|close <lport>`), from which
bench/fleet.py counts how many connections were up at once. Prints `ready` on stdout once
every port listens. Stops on SIGTERM or SIGINT.
"""
import argparse
import asyncio
import signal
import sys
import time


class Events:
    """The `--events` log: one line per connection opened or closed."""

    def __init__(self, path):
        self.file = open(path, "a", buffering=1) if path else None

    def note(self, what, lport):
        if self.file:
            self.file.write(f"{time.monotonic():.6f} {what} {lport}\n")


async def pump(reader, writer, delay, on_eof=lambda: None):
    """Copy reader → writer, each chunk `delay` seconds after it was read; `on_eof()` as
    soon as the reader ends."""
    queue: asyncio.Queue = asyncio.Queue()

    async def sender():
        while True:
            due, data = await queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if data is None:
                try:
                    writer.write_eof()
                except OSError:
                    pass
                return
            writer.write(data)
            await writer.drain()

    task = asyncio.create_task(sender())
    try:
        while True:
            data = await reader.read(1 << 16)
            queue.put_nowait((time.monotonic() + delay, data or None))
            if not data:
                break
        on_eof()
        await task
    except (ConnectionError, OSError):
        on_eof()
        task.cancel()


async def handle(client_r, client_w, target, delay, lport, events):
    """One connection. It counts as closed (`--events`) when the client closes its side:
    what the client holds, not the delayed teardown behind it."""
    events.note("open", lport)
    closed = []

    def client_gone():
        if not closed:
            closed.append(True)
            events.note("close", lport)

    try:
        target_r, target_w = await asyncio.open_connection(*target)
    except OSError:
        client_w.close()
        client_gone()
        return
    try:
        await asyncio.gather(pump(client_r, target_w, delay, client_gone),
                             pump(target_r, client_w, delay), return_exceptions=True)
    except asyncio.CancelledError:
        pass  # the proxy is stopping
    for w in (client_w, target_w):
        w.close()
    client_gone()


def parse_pair(text):
    lport, thost, tport = text.strip().rsplit(":", 2)
    return int(lport), (thost, int(tport))


async def serve(pairs, delay, events):
    servers = []
    for lport, target in pairs:
        servers.append(await asyncio.start_server(
            lambda r, w, t=target, p=lport: handle(r, w, t, delay, p, events),
            "127.0.0.1", lport, backlog=1024))
    print("ready", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for s in servers:
        s.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--delay-ms", type=float, required=True, help="one-way delay, each direction")
    ap.add_argument("--events", help="append open/close lines here")
    ap.add_argument("--pairs", help="a file of LPORT:THOST:TPORT lines")
    ap.add_argument("pair", nargs="*", help="LPORT:THOST:TPORT")
    args = ap.parse_args()
    texts = list(args.pair)
    if args.pairs:
        with open(args.pairs) as f:
            texts += [line for line in f if line.strip()]
    if not texts:
        ap.error("no LPORT:THOST:TPORT to forward")
    try:
        pairs = [parse_pair(t) for t in texts]
    except ValueError:
        ap.error("a pair is LPORT:THOST:TPORT, e.g. 30001:127.0.0.1:22")
    asyncio.run(serve(pairs, args.delay_ms / 1000, Events(args.events)))


if __name__ == "__main__":
    sys.exit(main())
