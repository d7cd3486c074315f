"""Re-derive `numbre.reading.read_line.Scoring`: random search for the constants that read the most
lines exactly.

    python scripts/tune_read_line.py                  # seeds 11-14 to tune, 15 held out; ~5 minutes
    python scripts/tune_read_line.py --trials 2000 --lines 200

Lines of 2-8 MNIST test digits are drawn with `numbre.data.drawn` as benchmarks/drawn_accuracy.py
draws them (apart, touching, broken, touching and broken; styles in turn), `--lines` per kind and
seed. The costly part, cutting each line into candidates and reading them all with the network, does
not depend on the constants, so it runs once per line; each trial then only scores the candidates
and runs the dynamic program. A line counts as read exactly when the chosen digits spell the truth
and none of them is rejected (by the model's rejection rule or as a doubtful cut), as
`Recognizer.read` decides.

Prints exact match per seed for the shipped constants and for the best trial; a leave-one-seed-out
figure (each seed scored by the trial best on the others: how well the search generalises); and
both on the held-out seed, which the search never sees. Then the best constants, to round and copy
into `Scoring` if they do better on the held-out seed.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from dataclasses import dataclass

import numpy as np

from numbre.data import load_dataset
from numbre.data.drawn import NUMBER_KINDS, written_numbers
from numbre.reading.preprocess import ink_map
from numbre.reading.read_line import (
    SCORING,
    Scoring,
    best_log_probability,
    best_path,
    candidates,
    doubtful_cuts,
    segment_scores,
)
from numbre.reading.recognize import Recognizer

# Where each constant is searched: (low, high, log scale).
RANGES = {"bonus": (0.0, 1.5, False), "short": (0.4, 0.9, False), "short_weight": (0.5, 20.0, True),
          "wide": (0.5, 1.2, False), "wide_weight": (0.1, 10.0, True), "gap_weight": (0.5, 20.0, True),
          "cut_weight": (0.05, 2.0, True)}


@dataclass(frozen=True)
class Line:
    """One drawn line, read as far as the constants allow: what every trial needs to score it."""

    truth: str
    spans: np.ndarray
    slices: int
    geometry: np.ndarray
    log_p: np.ndarray
    digits: np.ndarray  # per candidate, its most likely digit
    refused: np.ndarray  # per candidate, rejected by the model's rule or a doubtful cut


def drawn_lines(recognizer: Recognizer, mnist, seed: int, per_kind: int) -> list[Line]:
    rng = np.random.default_rng(seed)
    lines = []
    for options in NUMBER_KINDS.values():
        for truth, image in written_numbers(mnist.x_test, mnist.y_test, rng, per_kind, **options):
            found = ink_map(image)
            cut = None if found.empty else candidates(found.ink)
            if cut is None:
                lines.append(Line(truth, np.zeros((0, 2), int), 0, np.zeros((0, 5)), np.zeros(0),
                                  np.zeros(0, int), np.zeros(0, bool)))
                continue
            logits = recognizer.model.logits(cut.images)
            log_p = best_log_probability(logits, recognizer.rejector)
            probabilities, reasons = recognizer.rejector.decide(logits, cut.images)
            refused = np.array([reason is not None for reason in reasons])
            refused |= doubtful_cuts(cut.geometry, log_p)
            lines.append(Line(truth, cut.spans, cut.slices, cut.geometry, log_p,
                              probabilities.argmax(axis=1), refused))
    return lines


def exact(lines: list[Line], scoring: Scoring) -> float:
    """Share of `lines` read exactly with these constants."""
    right = 0
    for line in lines:
        if line.slices == 0:
            continue
        chosen = best_path(line.spans, line.slices, segment_scores(line.geometry, line.log_p, scoring))
        right += (not line.refused[chosen].any()
                  and "".join(str(digit) for digit in line.digits[chosen].tolist()) == line.truth)
    return right / len(lines)


def random_scoring(rng: np.random.Generator) -> Scoring:
    values = {}
    for name, (low, high, log) in RANGES.items():
        drawn = np.exp(rng.uniform(np.log(low), np.log(high))) if log else rng.uniform(low, high)
        values[name] = float(drawn)
    return Scoring(**values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13, 14], help="seeds to tune on")
    parser.add_argument("--holdout", type=int, default=15, help="seed never tuned on (default: 15)")
    parser.add_argument("--lines", type=int, default=100, help="lines per kind and seed (default: 100)")
    parser.add_argument("--trials", type=int, default=600, help="random constants tried (default: 600)")
    parser.add_argument("--model", default=None, help="ONNX model (default: the shipped one)")
    args = parser.parse_args()
    recognizer = Recognizer.load(args.model)
    started = time.perf_counter()
    mnist = load_dataset(quiet=True)
    by_seed = {seed: drawn_lines(recognizer, mnist, seed, args.lines)
               for seed in [*args.seeds, args.holdout]}
    print(f"{sum(map(len, by_seed.values()))} lines drawn and read in {time.perf_counter() - started:.0f} s")
    rng = np.random.default_rng(0)
    trials = [SCORING, *(random_scoring(rng) for _ in range(args.trials))]
    # scores[t, s]: exact match of trial t on tuning seed s
    scores = np.array([[exact(by_seed[seed], trial) for seed in args.seeds] for trial in trials])
    best = int(scores.mean(axis=1).argmax())
    held_out_cv = []
    for column, _seed in enumerate(args.seeds):
        others = np.delete(scores, column, axis=1).mean(axis=1)
        held_out_cv.append(scores[int(others.argmax()), column])
    print("\n| constants | " + " | ".join(f"seed {seed}" for seed in args.seeds) + " | mean | held-out seed "
          f"{args.holdout} |\n|---|" + "---:|" * (len(args.seeds) + 2))
    for name, index in (("shipped (Scoring())", 0), (f"best of {args.trials} trials", best)):
        row = " | ".join(f"{value:.1%}" for value in scores[index])
        held_out = exact(by_seed[args.holdout], trials[index])
        print(f"| {name} | {row} | {scores[index].mean():.1%} | {held_out:.1%} |")
    print("\nleave-one-seed-out (each seed scored by the trial best on the others): "
          f"{np.mean(held_out_cv):.1%}")
    constants = dataclasses.asdict(trials[best])
    print("\nbest constants:", ", ".join(f"{key}={value:.3g}" for key, value in constants.items()))


if __name__ == "__main__":
    main()
