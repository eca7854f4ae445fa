"""MC-dropout sampling speed: 20 samples for a batch of 8 at 128x128 on the CPU, `predict_samples`
against a Python loop of 20 forwards (goal: at least 1.5x faster).

Run: `python benchmarks/uncertainty.py [--threads 1] [--repeats 5]`. Two U-Nets (widths 16..128,
dropout 0.1): one with dropout in every block (the default places), one with dropout in the decoder
only. For each it prints wall and CPU seconds (best of the interleaved repeats) of the loop, of one
batched forward of all 160 items, of `predict_samples`' default and their ratios to the loop, all
measured in this run; the machine's load average is printed too, since other processes slow both
sides. `UNet.forward_samples` runs the blocks before the first dropout once per image, so with
dropout in the decoder only the encoder and the bottleneck run once instead of 20 times; with dropout
everywhere nothing can be shared, and on a CPU, where convolutions are bound by memory traffic, a
bigger batch alone gains little (see the uncertainty notebook).
"""
import argparse, os, resource, time
os.environ.setdefault('OMP_NUM_THREADS', '1')
import torch
from segcourse.models import UNet
from segcourse.uncertainty.samplers import _repeated_forward, default_batch_size, mc_dropout_mode, predict_samples
from segcourse.inference import to_probabilities

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

def unshared(model, x, n, batch_size):
    "The batch repeated n times through the whole model, in pieces of `batch_size` items (no sharing)."
    with mc_dropout_mode(model), torch.inference_mode():
        return _repeated_forward(lambda b: to_probabilities(model(b)), x, n, batch_size, amp=False)

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--threads', type=int, default=1); ap.add_argument('--repeats', type=int, default=5)
    ap.add_argument('--samples', type=int, default=20); ap.add_argument('--batch', type=int, default=8)
    ap.add_argument('--size', type=int, default=128)
    a = ap.parse_args()
    torch.set_num_threads(a.threads); torch.manual_seed(0)
    x = torch.randn(a.batch, 1, a.size, a.size)
    total, default = a.samples * a.batch, default_batch_size(x)
    models = {'everywhere': UNet(features=(16, 32, 64, 128), dropout=0.1).eval(),
              'decoder': UNet(features=(16, 32, 64, 128), dropout=0.1, dropout_at='decoder').eval()}
    runs = {}
    for name, model in models.items():
        runs[name, 'loop of 20 forwards'] = lambda m=model: looped(m, x, a.samples)
        runs[name, f'unshared, pieces of {default}'] = lambda m=model: unshared(m, x, a.samples, default)
        runs[name, f'predict_samples, {total} at once'] = lambda m=model: predict_samples(m, x, n=a.samples, batch_size=total)
        runs[name, f'predict_samples default ({default})'] = lambda m=model: predict_samples(m, x, n=a.samples)
        for bs in (default // 4, default // 2):
            runs[name, f'predict_samples, pieces of {bs}'] = lambda m=model, bs=bs: predict_samples(m, x, n=a.samples, batch_size=bs)
    for fn in runs.values(): fn()  # warm up (allocator, oneDNN kernels)
    best = {k: (float('inf'), float('inf')) for k in runs}
    for _ in range(a.repeats):  # interleaved, so that a change of machine load hits every variant
        for k, fn in runs.items():
            w, c, out = timed(fn)
            best[k] = (min(best[k][0], w), min(best[k][1], c))
            assert out.shape == (a.samples, a.batch, 1, a.size, a.size)
    print(f'{a.samples} MC-dropout samples, batch {a.batch}, {a.size}x{a.size}, UNet(16..128, dropout=0.1), '
          f'{a.threads} thread(s), best of {a.repeats}; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs')
    for name in models:
        print(f'dropout {name}:')
        lw, lc = best[name, 'loop of 20 forwards']
        for (n, k), (w, c) in best.items():
            if n == name: print(f'  {k:34s} {w:6.3f} s wall {c:6.3f} s CPU   loop/this: {lw / w:4.2f}x wall, {lc / c:4.2f}x CPU')
        w, c = best[name, f'predict_samples default ({default})']
        print(f'  predict_samples default vs loop: {lw / w:.2f}x (wall), {lc / c:.2f}x (CPU); goal >= 1.5x: {"met" if lw / w >= 1.5 else "NOT met"}')
