"""Holds N idle WebSockets open on URL with TOKEN (Python's `websockets`),
prints "open N" once they are all open, then waits for stdin to close.

    python tests/interop/hold_websockets.py ws://127.0.0.1:8000/ws TOKEN 5000
"""

import asyncio
import sys

import websockets


async def main(url, token, count):
    sockets = []
    for start in range(0, count, 200):
        batch = [
            websockets.connect(url, additional_headers={"Authorization": f"Bearer {token}"},
                               open_timeout=30, ping_interval=None, max_queue=1)
            for _ in range(start, min(count, start + 200))
        ]
        sockets += await asyncio.gather(*batch)
    print(f"open {len(sockets)}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    alive = sum(1 for s in sockets if s.close_code is None)
    print(f"alive {alive}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
