"""The spool: append, read in order, acknowledge, survive reopening, fall back to memory."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fadewatch.spool import Spool, find_spools


def _line(step: int) -> bytes:
    return json.dumps({"step": step, "scalars": {"x": step}}).encode()


def _steps(entries) -> list[int]:
    return [json.loads(e.data)["step"] for e in entries]


def test_append_read_ack_in_order(tmp_path):
    spool = Spool.create(tmp_path, "proj", "name/with spaces", {"a": 1})
    for step in range(10):
        assert spool.append(_line(step))
    first = spool.read(max_records=4)
    assert _steps(first) == [0, 1, 2, 3] and [e.index for e in first] == [0, 1, 2, 3]
    spool.ack(first[-1])
    assert _steps(spool.read(max_records=100)) == list(range(4, 10))
    assert spool.read() == []
    assert spool.count_pending() == 6
    assert spool.path.parent == tmp_path and "name_with_spaces" in spool.path.name
    assert json.loads((spool.path / "run.json").read_text())["config"] == {"a": 1}


def test_reopened_spool_resumes_after_the_ack_marker(tmp_path):
    spool = Spool.create(tmp_path, "p", "n", None)
    for step in range(5):
        spool.append(_line(step))
    spool.ack(spool.read(max_records=2)[-1])
    # The writer dies without closing (as under SIGKILL): the OS has every appended line.
    again = Spool.open(spool.path)
    assert again.count_pending() == 3
    assert _steps(again.read()) == [2, 3, 4]


def test_a_torn_last_line_is_not_read(tmp_path):
    spool = Spool.create(tmp_path, "p", "n", None)
    spool.append(_line(0))
    spool.close()
    with open(spool.path / "00000000.jsonl", "ab") as f:
        f.write(b'{"step": 1, "scal')  # the process died mid-write
    again = Spool.open(spool.path)
    assert _steps(again.read()) == [0] and again.count_pending() == 1


def test_segments_roll_over_and_acked_ones_are_deleted(tmp_path):
    spool = Spool.create(tmp_path, "p", "n", None, segment_bytes=100)
    for step in range(20):
        spool.append(_line(step))
    segments = sorted(spool.path.glob("0*.jsonl"))
    assert len(segments) > 3
    entries = []
    while batch := spool.read(max_records=3):
        entries += batch
    assert _steps(entries) == list(range(20))
    spool.ack(entries[14])
    left = sorted(spool.path.glob("0*.jsonl"))
    assert len(left) < len(segments)
    assert _steps(Spool.open(spool.path).read(max_records=100)) == list(range(15, 20))


def test_rejected_records_are_kept_aside(tmp_path):
    spool = Spool.create(tmp_path, "p", "n", None)
    for step in range(3):
        spool.append(_line(step))
    entries = spool.read()
    spool.reject(entries[1:2])
    assert spool.rejected_count == 1
    assert json.loads((spool.path / "rejected.jsonl").read_text())["step"] == 1


def test_an_unwritable_dir_falls_back_to_memory(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    spool = Spool.create(blocker, "p", "n", None)
    assert "keeping records in memory" in caplog.text
    for step in range(4):
        assert spool.append(_line(step))
    entries = spool.read(max_records=3)
    assert _steps(entries) == [0, 1, 2]
    spool.ack(entries[-1])
    assert _steps(spool.read()) == [3]
    assert spool.count_pending() == 1


def test_a_failing_disk_switches_to_memory_without_losing_order(tmp_path):
    spool = Spool.create(tmp_path, "p", "n", None)
    spool.append(_line(0))
    spool.append(_line(1))
    spool._writer.close()  # the next write fails as on a full disk
    for step in range(2, 5):
        assert spool.append(_line(step))
    entries = []
    while batch := spool.read(max_records=2):
        entries += batch
    assert _steps(entries) == [0, 1, 2, 3, 4]
    assert [e.index for e in entries] == [0, 1, 2, 3, 4]


def test_the_lock_keeps_a_second_process_out(tmp_path):
    spool = Spool.create(tmp_path, "p", "n", None)
    other = Spool.open(spool.path)
    assert not other.try_lock()
    spool.close()
    assert other.try_lock()


def test_find_spools(tmp_path):
    a = Spool.create(tmp_path / "spool", "p", "a", None)
    b = Spool.create(tmp_path / "spool", "p", "b", None)
    assert find_spools(tmp_path) == sorted([a.path, b.path])
    assert find_spools(tmp_path / "spool") == sorted([a.path, b.path])
    assert find_spools(a.path) == [a.path]
    assert find_spools(tmp_path / "nothing") == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(st.one_of(st.tuples(st.just("append"), st.integers(1, 5)),
                              st.tuples(st.just("read"), st.integers(1, 4)),
                              st.just(("ack", 0)), st.just(("reopen", 0))), max_size=30))
def test_reading_after_the_ack_marker_gives_exactly_the_unacknowledged_records(tmp_path_factory, ops):
    """Whatever the interleaving, a reader (also a new one, as after a crash) sees, in order,
    exactly the records after the last acknowledged one."""
    spool = Spool.create(tmp_path_factory.mktemp("prop"), "p", "n", None, segment_bytes=64)
    path, written, acked, in_hand = spool.path, 0, 0, []
    reader = spool
    for op, n in ops:
        if op == "append":
            for _ in range(n):
                spool.append(_line(written))
                written += 1
        elif op == "read":
            in_hand += reader.read(max_records=n)
        elif op == "ack" and in_hand:
            reader.ack(in_hand[-1])
            acked = json.loads(in_hand[-1].data)["step"] + 1
            in_hand = []
        elif op == "reopen":
            reader, in_hand = Spool.open(path), []
    fresh = Spool.open(path)
    got = []
    while batch := fresh.read(max_records=7):
        got += batch
    assert _steps(got) == list(range(acked, written))
    assert fresh.count_pending() == written - acked
