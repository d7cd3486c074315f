"""Training models: the run's configuration (`config`), the loop with its schedule and run folder
(`loop`), the device and whether bfloat16 pays on it (`device`), augmentation (`augment`),
synthetic non-digits for the "not a digit" class (`negatives`), resumable checkpoints
(`checkpoint`) and the line reader's trainer (`lines`). Needs the `train` extra (torch).

May import `numbre.model`, `numbre.data` and the core; never reading, insight or a front end.
"""
