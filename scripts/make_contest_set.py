"""Write the web page's contest set: the MNIST test digits the shipped model finds hardest.

    python scripts/make_contest_set.py              # -> src/numbre/web/contest_set/contest.{png,json}
    python scripts/make_contest_set.py --count 60 --model other.onnx --out /tmp/contest

Run it again whenever the shipped model changes: the same model and data always write the same
bytes, so `git diff` shows whether anything changed. The server does not depend on it being fresh
(it asks the served model for its answers when the set was made by another one), but the digits
are only "the hardest" for the model that picked them. The listing records the command, the
dataset checksum, the test-set index of each digit and the model's weights digests.

Reading MNIST needs the data cache (`numbre data fetch`); the web server never does: it reads the
two small files this writes.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "src" / "numbre" / "web" / "contest_set"
DEFAULT_COUNT = 60


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write the contest set: the test digits a model finds hardest.")
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT,
                        help=f"how many digits (default: {DEFAULT_COUNT})")
    parser.add_argument("--model", default=None,
                        help="the model that picks and answers them (default: the shipped model)")
    parser.add_argument("--data", default=None,
                        help="an MNIST-format IDX folder or .npz (default: MNIST from the cache)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"the folder to write into (default: {DEFAULT_OUT.relative_to(ROOT)})")
    args = parser.parse_args(argv)

    from numbre.data import load_dataset
    from numbre.errors import NumbreError
    from numbre.insight.contest import hardest_digits, save_contest_set
    from numbre.reading.recognize import Recognizer

    arguments = argv if argv is not None else sys.argv[1:]
    command = shlex.join(["python", "scripts/make_contest_set.py", *arguments])
    started = time.perf_counter()
    try:
        recognizer = Recognizer.load(args.model)
        dataset = load_dataset(args.data, quiet=True)
        contest = hardest_digits(recognizer, dataset, args.count, command)
        sprite, listing = save_contest_set(contest, args.out)
    except NumbreError as error:
        print(f"make_contest_set: {error}", file=sys.stderr)
        return 2
    wrong = int((~contest.model_right).sum())
    print(f"{len(contest)} digits from {dataset.name} ({len(dataset.y_test):,} test images), "
          f"{wrong} of them misread by {contest.answers.model['architecture']}; "
          f"wrote {sprite} and {listing} in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
