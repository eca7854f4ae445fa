"""Opening a data set for training with and without a remembered verification (issue 27).

`load_dataset` reads every item once (`FileDataset.verify`) so that a bad file is named before training.
A clean pass is recorded in `cache_root()`; later opens of the same, unchanged files trust the record.
This measures, in one run, opening the LGG data with the capstone's settings (brain crop, 128x128):
with an empty cache (the pass runs and is recorded), then again (the record is trusted), each `--repeats`
times, alternating, and prints the ratio.

    python benchmarks/verify.py --data lgg:PATH/kaggle_3m [--repeats 3]
"""
import argparse, os, statistics, sys, tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from segcourse.config import RunConfig
from segcourse.data.registry import load_dataset
from timing import seconds


def open_seconds(cfg:RunConfig, cache:str) -> float:
    os.environ['SEGCOURSE_CACHE'] = cache
    return seconds(lambda: load_dataset(cfg))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--data', required=True, help='a data argument, e.g. lgg:PATH/kaggle_3m')
    ap.add_argument('--repeats', type=int, default=3)
    a = ap.parse_args()
    cfg = RunConfig(data=a.data, crop='brain', normalize='zscore', size=128)
    first, again = [], []
    for _ in range(a.repeats):
        cache = tempfile.mkdtemp(prefix='verify-bench-')
        first.append(open_seconds(cfg, cache)); again.append(open_seconds(cfg, cache))
    f, g = statistics.median(first), statistics.median(again)
    print(f"{a.data}: {len(load_dataset(cfg))} items; load {os.getloadavg()[0]:.1f}")
    print(f"open, verification run and recorded: {f:.2f} s (median of {a.repeats})")
    print(f"open, verification remembered:      {g:.2f} s")
    print(f"ratio: {f / g:.2f}x faster to open again")


if __name__ == '__main__':
    main()
