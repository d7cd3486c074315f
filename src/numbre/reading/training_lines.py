"""The line model's training inputs: synthetic lines as `numbre read` will see them.

Each line of `numbre.data.lines` (MNIST training digits and the synthesiser's
training writers) goes through the reading pipeline (`ink_map`, then the line
network's input) exactly as a user's picture does, so the network learns on
what it will be shown. Lines left blank by ink finding, or squeezed too narrow
for CTC to align their labels (many digits overlapping on a steep baseline),
are dropped. Making lines is most of the cost, so it runs in worker processes.
"""

from __future__ import annotations

import numpy as np

from numbre.parallel import index_chunks, map_in_order

CHECK_SEED_OFFSET = 1000  # the check lines come from seed + this: never the training lines
_DIGITS: dict[str | None, tuple[np.ndarray, np.ndarray]] = {}  # per process: data -> training digits


def _training_digits(data: str | None) -> tuple[np.ndarray, np.ndarray]:
    """The training part of `data` (MNIST by default), loaded once per process."""
    if data not in _DIGITS:
        from numbre.data import load_dataset

        found = load_dataset(data, quiet=True)
        _DIGITS[data] = (found.x_train, found.y_train)
    return _DIGITS[data]


def _prepared_chunk(task: tuple[str | None, int, int, int, float, float]) -> tuple[list[np.ndarray],
                                                                                 list[tuple[int, ...]]]:
    """Lines start..stop of `seed` as the network's uint8 inputs and their labels, unusable ones dropped."""
    from numbre.data.lines import make_lines
    from numbre.model.line_model import alignable
    from numbre.reading.line_reader import prepare_line
    from numbre.reading.preprocess import ink_map

    data, seed, start, stop, junk, variation = task
    images, labels = _training_digits(data)
    out_images, out_labels = [], []
    made = make_lines(stop - start, seed, images, labels, start=start, junk_share=junk, variation=variation)
    for line in made:
        prepared = prepare_line(ink_map(line.image))
        if prepared is None or not alignable(prepared.image.shape[1], len(line.labels)):
            continue
        out_images.append(np.round(prepared.image * 255).astype(np.uint8))
        out_labels.append(line.labels)
    return out_images, out_labels


def prepared_lines(count: int, seed: int, workers: int, data: str | None = None,
                   junk: float | None = None, variation: float = 0.0) -> tuple[list[np.ndarray],
                                                                               list[tuple[int, ...]]]:
    """`count` synthetic lines of `seed` through the reading pipeline, in `workers` processes
    (`variation`: the synthesised writers' letter forms, see `numbre.data.lines.make_line`)."""
    from numbre.data.lines import JUNK_SHARE

    share = JUNK_SHARE if junk is None else junk
    tasks = [(data, seed, start, stop, share, variation) for start, stop in index_chunks(count, workers * 8)]
    if workers > 1:
        _training_digits(data)  # a missing or broken data folder fails here, once, with its own message
    parts = map_in_order(_prepared_chunk, tasks, workers)
    return [i for part in parts for i in part[0]], [label for part in parts for label in part[1]]
