"""The usage spool: an append-only local journal, and its replay once a store is back."""

import asyncio

import pytest

from infra.spool import Spool


class _Sink:
    """Takes batches, or refuses them while `down` (as a store that is away)."""

    def __init__(self) -> None:
        self.down = False
        self.batches: list[list[bytes]] = []

    async def __call__(self, records: list[bytes]) -> None:
        if self.down:
            raise ConnectionError("store away")
        self.batches.append(records)

    @property
    def records(self) -> list[bytes]:
        return [r for batch in self.batches for r in batch]


def _lines(spool: Spool) -> list[bytes]:
    return [line for path in spool.files() for line in path.read_bytes().splitlines()]


def test_each_record_is_one_line_on_disk_as_soon_as_append_returns(tmp_path):
    spool = Spool(tmp_path / "spool")
    spool.append(b'{"n":1}')
    spool.append(b'{"n":2}\n')
    # Written through to the file (not buffered in the process): a crash now loses nothing.
    assert _lines(spool) == [b'{"n":1}', b'{"n":2}']
    assert spool.pending() == 2
    [path] = spool.files()
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)


def test_replay_hands_every_record_over_in_batches_and_removes_the_file(tmp_path):
    spool = Spool(tmp_path)
    for n in range(5):
        spool.append(b"r%d" % n)
    sink = _Sink()

    assert asyncio.run(spool.replay(sink, batch_size=2)) == 5

    assert sink.batches == [[b"r0", b"r1"], [b"r2", b"r3"], [b"r4"]]
    assert spool.files() == []
    # Appending after a replay starts a new file.
    spool.append(b"r5")
    assert _lines(spool) == [b"r5"]


def test_a_failed_replay_keeps_the_records_for_the_next_round(tmp_path):
    spool = Spool(tmp_path)
    spool.append(b"a")
    spool.append(b"b")
    sink = _Sink()
    sink.down = True

    assert asyncio.run(spool.replay(sink)) == 0
    assert spool.pending() == 2

    sink.down = False
    assert asyncio.run(spool.replay(sink)) == 2
    assert sink.records == [b"a", b"b"]
    assert spool.pending() == 0


def test_a_file_still_being_written_by_another_process_is_left_alone(tmp_path):
    writer, replayer = Spool(tmp_path), Spool(tmp_path)  # two processes' spools, one directory
    writer.append(b"theirs")
    sink = _Sink()

    assert asyncio.run(replayer.replay(sink)) == 0
    assert sink.records == []

    # Once the other process seals its file (or exits, which drops its lock), it is replayable.
    writer.seal()
    assert asyncio.run(replayer.replay(sink)) == 1
    assert sink.records == [b"theirs"]


def test_files_left_by_a_process_that_died_are_replayed(tmp_path):
    (tmp_path / "usage-host-4242-1.jsonl").write_bytes(b"old1\nold2\n")
    sink = _Sink()
    assert asyncio.run(Spool(tmp_path).replay(sink)) == 2
    assert sink.records == [b"old1", b"old2"]
    assert list(tmp_path.iterdir()) == []


def test_no_directory_means_nothing_to_replay(tmp_path):
    spool = Spool(tmp_path / "never-created")
    assert asyncio.run(spool.replay(_Sink())) == 0
    assert not (tmp_path / "never-created").exists()


def test_a_spool_that_cannot_be_written_raises_instead_of_losing_silently(tmp_path):
    not_a_directory = tmp_path / "file"
    not_a_directory.write_bytes(b"")
    with pytest.raises(OSError):
        Spool(not_a_directory).append(b"x")
