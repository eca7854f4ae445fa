"""MC-dropout sampling speed: 20 samples for a batch of 8 at 128x128 on the CPU, one batched forward
(the batch repeated 20 times, `predict_samples`) against a Python loop of 20 forwards (goal: batched
at least 1.5x faster).

Run: `python benchmarks/uncertainty.py [--threads 1] [--repeats 5]`. Prints wall and CPU seconds of
both (best of the interleaved repeats), their ratio, and the ratio for other `batch_size` chunks
and `predict_samples`' default, all measured in this run; the machine's load average is printed too,
since other processes slow both sides. On a CPU the convolutions are bound by memory traffic, so the
one big batch is not faster there (see the uncertainty notebook); the goal is one for GPUs.
"""
import argparse, os, resource, time
os.environ.setdefault('OMP_NUM_THREADS', '1')
import torch
from segcourse.unet import UNet
from segcourse.uncertainty import default_batch_size, mc_dropout_mode, predict_samples, to_probabilities

def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF); return r.ru_utime + r.ru_stime

def timed(fn):
    w, c = time.perf_counter(), cpu_seconds()
    out = fn()
    return time.perf_counter() - w, cpu_seconds() - c, out

def looped(model, x, n):
    "The plain way: n forward passes of the batch, one after the other."
    with mc_dropout_mode(model), torch.inference_mode():
        return torch.stack([to_probabilities(model(x)) for _ in range(n)])

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--threads', type=int, default=1); ap.add_argument('--repeats', type=int, default=5)
    ap.add_argument('--samples', type=int, default=20); ap.add_argument('--batch', type=int, default=8)
    ap.add_argument('--size', type=int, default=128)
    a = ap.parse_args()
    torch.set_num_threads(a.threads); torch.manual_seed(0)
    model = UNet(features=(16, 32, 64, 128), dropout=0.1).eval()
    x = torch.randn(a.batch, 1, a.size, a.size)
    total = a.samples * a.batch
    runs = {'loop': lambda: looped(model, x, a.samples)}
    for bs in (total, total // 2, 4 * a.batch, None):
        runs[f'batched (batch_size={bs})'] = lambda bs=bs: predict_samples(model, x, n=a.samples, batch_size=bs)
    for fn in runs.values(): fn()  # warm up (allocator, oneDNN kernels)
    best = {k: (float('inf'), float('inf')) for k in runs}
    for _ in range(a.repeats):  # interleaved, so that a change of machine load hits every variant
        for k, fn in runs.items():
            w, c, out = timed(fn)
            best[k] = (min(best[k][0], w), min(best[k][1], c))
            assert out.shape == (a.samples, a.batch, 1, a.size, a.size)
    print(f'{a.samples} MC-dropout samples, batch {a.batch}, {a.size}x{a.size}, UNet(16..128, dropout=0.1), '
          f'{a.threads} thread(s), best of {a.repeats}; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs')
    lw, lc = best['loop']
    for k, (w, c) in best.items():
        print(f'  {k:28s} {w:6.3f} s wall {c:6.3f} s CPU   loop/this: {lw / w:4.2f}x wall, {lc / c:4.2f}x CPU')
    w, c = best[f'batched (batch_size={total})']
    print(f'one batched forward vs loop: {lw / w:.2f}x (wall), {lc / c:.2f}x (CPU); goal >= 1.5x: {"met" if lw / w >= 1.5 else "NOT met"}')
    w, c = best['batched (batch_size=None)']
    print(f'predict_samples default (batch_size=None: {default_batch_size(x)} items per pass on a CPU) vs loop: {lw / w:.2f}x (wall), {lc / c:.2f}x (CPU)')
