"""Phantom generation speed: 1,000 slices of 128x128 on one core (goal: at most 5 s).

Run: `python benchmarks/phantoms.py`. Prints wall and CPU seconds, measured in this run, and the
slices per second; also the same for 3 channels and 256x256, for reference.
"""
import os, resource, time
os.environ.setdefault('OMP_NUM_THREADS', '1')
import numpy as np
from segcourse.data import make_phantom

def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF); return r.ru_utime + r.ru_stime

def measure(n=1000, **kw):
    make_phantom(0, **kw)  # warm the caches (grids, upsamplers)
    w, c = time.perf_counter(), cpu_seconds()
    for i in range(n): make_phantom(np.random.default_rng([0, i]), **kw)
    return time.perf_counter() - w, cpu_seconds() - c

if __name__ == '__main__':
    goal = 5.0
    for kw in (dict(size=128), dict(size=128, channels=3), dict(size=256)):
        n = 1000 if kw.get('size') == 128 else 250
        wall, cpu = measure(n, **kw)
        extra = f'  goal <= {goal:.0f} s: {"met" if wall <= goal else "NOT met"} ({goal/wall:.1f}x margin)' if kw == dict(size=128) else ''
        print(f'{n} phantoms {kw}: {wall:.2f} s wall, {cpu:.2f} s CPU, {n/wall:.0f} slices/s{extra}')
