"""CoalescingTransport: a response's small writes leave in one piece, in order, and nothing is
held back past the end of the loop turn, a close, or LARGE bytes."""

from __future__ import annotations

import asyncio

from dockyard.coalesce import LARGE, CoalescingTransport


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.closed, "written after close"
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return sum(map(len, self.writes))


def test_head_and_body_written_in_one_turn_leave_together() -> None:
    async def run() -> list[bytes]:
        raw = RecordingTransport()
        t = CoalescingTransport(raw, asyncio.get_running_loop())
        t.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        t.write(b"{}")
        assert raw.writes == [] and t.get_write_buffer_size() == 40
        await asyncio.sleep(0)  # the end of the turn
        return raw.writes

    assert asyncio.run(run()) == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]


def test_large_writes_go_at_once_after_what_was_gathered() -> None:
    async def run() -> list[bytes]:
        raw = RecordingTransport()
        t = CoalescingTransport(raw, asyncio.get_running_loop())
        t.write(b"head")
        t.write(b"x" * LARGE)
        t.write(b"tail")
        await asyncio.sleep(0)
        return raw.writes

    assert asyncio.run(run()) == [b"head", b"x" * LARGE, b"tail"]


def test_many_small_writes_in_one_turn_are_held_at_most_large_bytes() -> None:
    async def run() -> tuple[int, int]:
        raw = RecordingTransport()
        t = CoalescingTransport(raw, asyncio.get_running_loop())
        chunk = b"y" * 1000
        most_held = 0
        for _ in range(100):  # 100 kB without yielding to the loop
            t.write(chunk)
            most_held = max(most_held, t.get_write_buffer_size() - raw.get_write_buffer_size())
        await asyncio.sleep(0)
        return most_held, len(b"".join(raw.writes))

    most_held, total = asyncio.run(run())
    assert most_held < LARGE
    assert total == 100_000


def test_close_sends_what_was_gathered_first_and_abort_drops_it() -> None:
    async def run() -> tuple[list[bytes], list[bytes]]:
        raw = RecordingTransport()
        t = CoalescingTransport(raw, asyncio.get_running_loop())
        t.write(b"last words")
        t.close()
        await asyncio.sleep(0)
        aborted = RecordingTransport()
        aborted.abort = lambda: setattr(aborted, "closed", True)  # type: ignore[method-assign]
        u = CoalescingTransport(aborted, asyncio.get_running_loop())
        u.write(b"never sent")
        u.abort()
        await asyncio.sleep(0)
        return raw.writes, aborted.writes

    closed, aborted = asyncio.run(run())
    assert closed == [b"last words"]
    assert aborted == []
