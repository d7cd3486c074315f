"""Work split over worker processes in a fixed order, so the result never depends on their number.

The synthesiser and the line model's training lines both make many independent samples, each from
its own seeded generator: split the index range into chunks, run the chunks in processes (or in
this one), and join the parts in order. Any number of workers then gives the same samples.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

import numpy as np

Task = TypeVar("Task")
Part = TypeVar("Part")


def index_chunks(count: int, pieces: int) -> list[tuple[int, int]]:
    """[start, stop) ranges splitting range(count) into at most `pieces` nearly equal, non-empty chunks."""
    bounds = np.linspace(0, count, max(1, pieces) + 1).round().astype(int)
    return [(int(start), int(stop)) for start, stop in itertools.pairwise(bounds) if stop > start]


def map_in_order(function: Callable[[Task], Part], tasks: Sequence[Task], workers: int) -> list[Part]:
    """`function` over `tasks`, in `workers` processes (in this one when it is 1), results in task order.
    `function` must be a module-level function, for the processes to find it."""
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            return list(pool.map(function, tasks))
    return [function(task) for task in tasks]
