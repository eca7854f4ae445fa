"""Timing helpers of the benchmark scripts (each runs as `python benchmarks/NAME.py`, which puts this folder on the path).

The machine may be shared: the best of several calls is the figure least disturbed by other work, and cases
compared with each other are timed interleaved, so that a burst of other load falls on all of them alike.
"""
import time


def seconds(f) -> float:
    "Wall seconds of one call of `f`."
    start = time.perf_counter(); f()
    return time.perf_counter() - start


def best_time(f, repeats:int) -> float:
    "Best wall time of `repeats` calls of `f`, in seconds."
    return min(seconds(f) for _ in range(repeats))


def best_times(fs:dict, repeats:int) -> dict:
    "Best wall time of `repeats` calls of each function of `fs`, in seconds, the calls interleaved."
    times = {k: [] for k in fs}
    for _ in range(repeats):
        for k, f in fs.items(): times[k].append(seconds(f))
    return {k: min(v) for k, v in times.items()}


def timed(f) -> tuple:
    "`(result, wall seconds, CPU seconds of this process)` of one call of `f`."
    wall, cpu = time.perf_counter(), time.process_time()
    out = f()
    return out, time.perf_counter() - wall, time.process_time() - cpu
