"""Data loading and augmentation speed (issue 3): augmented 256x256 LGG-format items per second.

Goal: a `DataLoader` with 2 workers over an `LGGDataset` whose decoded slices are cached in memory
(uint8), with the default paired augmentation, delivers at least 500 items/s on 2 CPU cores.
Also measured, in the same run: the same loader without augmentation, reading from disk without the
cache, and the batched augmentation (`batch=True`) on the CPU and, where one exists, on the GPU.

Data: the real LGG files (`lgg-dev`, else `lgg-sample`) under env `SEGCOURSE_SHARED_DATA` or
`../shared/data` beside the repository; otherwise synthetic files written in the LGG layout.

    python benchmarks/data.py [--items 1024] [--workers 2] [--batch 32]
"""
import argparse, gc, os, resource, sys, tempfile, time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from segcourse.lgg import LGGDataset, write_lgg_case
from segcourse.transforms import default_augmentation


def lgg_root(tmp: Path) -> tuple:
    "The real LGG folder if present, else a synthetic one in `tmp`."
    shared = Path(os.environ.get('SEGCOURSE_SHARED_DATA') or Path(__file__).resolve().parents[2]/'shared'/'data')
    for name in ('lgg-dev', 'lgg-sample'):
        if (shared/name/'kaggle_3m').is_dir(): return shared/name/'kaggle_3m', f'real ({name})'
    rng = np.random.default_rng(0)
    for c in range(4):
        imgs = rng.integers(0, 256, (32, 256, 256, 3), dtype=np.uint8)
        masks = (rng.random((32, 256, 256)) < 0.01).astype(np.uint8)
        write_lgg_case(tmp/'kaggle_3m', f'TCGA_XX_{c:04d}_20000101', imgs, masks)
    return tmp/'kaggle_3m', 'synthetic'


def _cpu_seconds() -> float:
    "CPU time of this process and its reaped children (DataLoader workers once shut down)."
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def items_per_second(ds, n_items: int, workers: int, batch: int) -> tuple:
    """`(items/s wall, items per CPU-second)` through a DataLoader, from start to shutdown.

    On a shared machine the wall figure depends on the other load; items per CPU-second times the
    number of cores is what the loader delivers on cores of its own."""
    c0, t0 = _cpu_seconds(), time.perf_counter()
    dl = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, generator=torch.Generator().manual_seed(0))
    seen = 0
    while seen < n_items:
        for x, y in dl:
            seen += len(x)
            if seen >= n_items: break
    del dl; gc.collect()
    wall, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
    return seen / wall, seen / cpu


def batched_per_second(device: str, batch: int, repeats: int = 5) -> float:
    aug = default_augmentation(seed=0, batch=True)
    x = torch.rand(batch, 3, 256, 256, device=device)
    y = (torch.rand(batch, 1, 256, 256, device=device) < 0.01).float()
    aug(x, y)
    if device == 'cuda': torch.cuda.synchronize()
    c0, t0 = time.process_time(), time.perf_counter()
    for _ in range(repeats): aug(x, y)
    if device == 'cuda': torch.cuda.synchronize()
    return repeats * batch / (time.perf_counter() - t0), repeats * batch / (time.process_time() - c0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--items', type=int, default=1024)
    ap.add_argument('--workers', type=int, default=2)
    ap.add_argument('--batch', type=int, default=32)
    a = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root, kind = lgg_root(Path(tmp))
        aug = default_augmentation(seed=0)
        cached = LGGDataset(root, cache=True, transform=aug)
        t0 = time.perf_counter(); nbytes = cached.preload(); t_load = time.perf_counter() - t0
        print(f"data: {kind}, {len(cached)} slices of 256x256; preload {t_load:.1f} s, cache {nbytes / 2**20:.0f} MiB "
              f"({nbytes / len(cached) / 1024:.0f} KiB per slice; full LGG set of 3,929 slices: {nbytes / len(cached) * 3929 / 2**30:.2f} GiB)")
        aug_cached = items_per_second(cached, a.items, a.workers, a.batch)
        cached.transform = None
        plain_cached = items_per_second(cached, a.items, a.workers, a.batch)
        disk = LGGDataset(root, transform=aug)
        aug_disk = items_per_second(disk, min(a.items, 512), a.workers, a.batch)
    cores = a.workers
    print(f"DataLoader, {a.workers} workers, batch {a.batch} (load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores):")
    print(f"{'':26}{'items/s (wall)':>16}{'items/CPU-s':>13}{f'on {cores} own cores':>18}")
    for name, (wall, per_cpu) in [('cached + augmentation', aug_cached), ('cached, no augmentation', plain_cached),
                                  ('disk + augmentation', aug_disk)]:
        print(f"  {name:<24}{wall:>16.0f}{per_cpu:>13.0f}{per_cpu * cores:>18.0f}")
    goal = aug_cached[1] * cores
    print(f"goal >= 500 augmented items/s on {cores} cores: {'met' if goal >= 500 else 'NOT met'} ({goal:.0f}, from CPU time; "
          f"{aug_cached[0]:.0f} measured wall-clock on this shared machine)")
    print(f"augmentation costs {plain_cached[1] / aug_cached[1]:.1f}x the CPU of loading alone; "
          f"the cache makes augmented loading {aug_cached[1] / aug_disk[1]:.1f}x cheaper than decoding TIFFs")
    cpu = batched_per_second('cpu', a.batch)
    print(f"batched augmentation (batch=True, {a.batch}x3x256x256), CPU 1 thread: {cpu[0]:.0f} items/s wall, {cpu[1]:.0f} items/CPU-s")
    if torch.cuda.is_available():
        gpu = batched_per_second('cuda', a.batch)
        print(f"batched augmentation on the GPU: {gpu[0]:.0f} items/s ({gpu[0] / cpu[0]:.0f}x the CPU wall figure)")
    else: print("batched augmentation on the GPU: no GPU here")


if __name__ == '__main__':
    main()
