"""Training models: the run's configuration (`config`), the loop with its schedule and run folder
(`loop`), augmentation (`augment`), synthetic non-digits for the "not a digit" class (`negatives`)
and resumable checkpoints (`checkpoint`). Needs the `train` extra (torch).

May import `numbre.model`, `numbre.data` and the core; never reading, insight or a front end.
"""
