"""numbre.parallel: chunks that cover every index once, and results in task order whatever the number
of processes (the synthesiser's and the training lines' sets must not depend on it)."""

from __future__ import annotations

import os

import pytest

from numbre.parallel import index_chunks, map_in_order


@pytest.mark.parametrize(("count", "pieces"), [(0, 4), (1, 8), (7, 3), (1000, 16), (10, 1)])
def test_chunks_cover_every_index_once_and_none_is_empty(count: int, pieces: int) -> None:
    chunks = index_chunks(count, pieces)
    covered = [index for start, stop in chunks for index in range(start, stop)]
    assert covered == list(range(count))
    assert all(stop > start for start, stop in chunks) and len(chunks) <= max(1, pieces)
    if count >= pieces:
        sizes = [stop - start for start, stop in chunks]
        assert max(sizes) - min(sizes) <= 1


def square_with_pid(value: int) -> tuple[int, int]:
    return value * value, os.getpid()


def test_results_come_back_in_task_order_from_other_processes() -> None:
    alone = map_in_order(square_with_pid, list(range(20)), 1)
    shared = map_in_order(square_with_pid, list(range(20)), 2)
    assert [value for value, _ in alone] == [value for value, _ in shared] == [n * n for n in range(20)]
    assert {pid for _, pid in alone} == {os.getpid()}
    assert os.getpid() not in {pid for _, pid in shared}
