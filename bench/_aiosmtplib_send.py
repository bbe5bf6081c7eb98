"""aiosmtplib's side of bench/own_parts.py: runs in the benchmarks' throwaway virtualenv.

    python _aiosmtplib_send.py PORT MESSAGES.jsonl   -> prints messages/s

Sends every message (``[sender, recipients, raw]`` per line) over one connection.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import aiosmtplib


async def _send(port: int, items: list[tuple[str, list[str], bytes]]) -> float:
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=30, start_tls=False)
    started = time.perf_counter()
    async with client:
        for sender, recipients, raw in items:
            errors, _ = await client.sendmail(sender, recipients, raw)
            assert not errors, errors
    return len(items) / (time.perf_counter() - started)


def main() -> None:
    port, path = int(sys.argv[1]), sys.argv[2]
    with open(path) as lines:
        items = [(s, r, raw.encode()) for s, r, raw in map(json.loads, lines)]
    print(f"{asyncio.run(_send(port, items)):.1f}")


if __name__ == "__main__":
    main()
