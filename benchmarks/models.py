"""Model speed (issue 4): forward+backward images per second and peak memory for every segcourse model.

CPU: 128x128, batch 8, fp32, with and without `channels_last`, one torch thread. GPU (where there is
one): 256x256, batch 16, fp32 and bf16 autocast + `channels_last`. Where MONAI is installed, its
`BasicUNet` (the same architecture as our U-Net: double conv blocks, max pooling, transposed convs,
concatenated skips) at matching widths, and its `UNet` (strided convs, residual units) at our default
widths, are measured in the same run and reported as ratios. Goal: our U-Net no slower than MONAI's
at equal widths.

Each configuration runs in its own subprocess, so "peak MB" is that process's peak resident memory
during the warm-up and timed steps minus its resident memory just before them (activations,
gradients and workspace; the weights are already there). MACs (multiply-accumulates of one forward
pass per image, from `segcourse.models.registry.model_summary`) say how much work each design does. On a shared machine wall-clock speed depends on the other
load, so speed is also given per CPU-second of this process (with 1 thread, the speed on a core of its
own); ratios use the CPU-second figures.

    python benchmarks/models.py [--steps 3] [--pairs 3] [--compile]

`--compile` also checks `torch.compile` (inductor, `fullgraph=True`: no graph breaks) on each model's
forward pass and times it: 15-60 s of compilation per model on 2 cores, which is why it is not a test.
"""
import argparse, json, os, resource, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _rss_mb() -> float:
    with open('/proc/self/statm') as f: return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20


def build(name: str):
    import torch
    from segcourse.models.registry import get_model
    torch.manual_seed(0)
    if name == 'monai_basicunet':  # = segcourse UNet(features=(16, 32, 64, 128, 256)): 4 poolings
        from monai.networks.nets import BasicUNet
        return BasicUNet(spatial_dims=2, in_channels=1, out_channels=1, features=(16, 32, 64, 128, 256, 16),
                         act='relu', norm='batch', bias=False)
    if name == 'monai_unet':  # MONAI's own design at our default widths
        from monai.networks.nets import UNet
        return UNet(spatial_dims=2, in_channels=1, out_channels=1, channels=(16, 32, 64, 128), strides=(2, 2, 2),
                    num_res_units=2, norm='batch')
    if name == 'unet5': return get_model('unet', features=(16, 32, 64, 128, 256))
    return get_model(name)


def measure(name: str, channels_last: bool, device: str, size: int, batch: int, steps: int, bf16: bool) -> dict:
    "Images/s (wall and per CPU-second) and peak memory of forward+backward steps, in this process."
    import torch
    torch.set_num_threads(1)
    model = build(name).to(device).train()
    x = torch.randn(batch, 1, size, size, device=device)
    y = (torch.rand(batch, 1, size, size, device=device) > 0.9).float()
    if channels_last: model, x = model.to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last)
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def step():
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            out = model(x)
            out = out[-1] if isinstance(out, (list, tuple)) else out
            loss = loss_fn(out.float(), y)
        loss.backward()
        model.zero_grad(set_to_none=True)

    if device == 'cuda': torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
    rss0 = _rss_mb()
    step()  # warm-up: allocations, kernel choice (counted in the peak)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps): step()
    if device == 'cuda': torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device == 'cuda'
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss0)
    from segcourse.models.registry import model_summary
    macs = model_summary(model, (1, 1, size, size))['macs']
    return dict(model=name, channels_last=channels_last, bf16=bf16, params=sum(p.numel() for p in model.parameters()), macs=macs,
                img_s=steps * batch / wall, img_cpu_s=steps * batch / cpu, peak_mb=max(peak, 0.0))


def run_isolated(**kw) -> dict:
    "Run `measure` in a fresh subprocess (clean peak-memory figure)."
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    out = subprocess.run([sys.executable, __file__, '--one', json.dumps(kw)], capture_output=True, text=True, env=env)
    if out.returncode: raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def compile_check(names) -> None:
    import torch
    torch.set_num_threads(1)
    print('\ntorch.compile (inductor, fullgraph=True), forward pass, eval, batch 8 at 128x128:')
    for name in names:
        model = build(name).eval()
        x = torch.randn(8, 1, 128, 128)
        t0 = time.perf_counter()
        compiled = torch.compile(model, fullgraph=True)
        with torch.no_grad():
            y = compiled(x)
            t_compile = time.perf_counter() - t0
            ok = torch.allclose(y, model(x), atol=1e-4)
            times = {}
            for label, f in (('eager', model), ('compiled', compiled)):
                c0 = time.process_time()
                for _ in range(3): f(x)
                times[label] = (time.process_time() - c0) / 3
        print(f'  {name:10s} compile {t_compile:5.1f} s, same output: {ok}, '
              f'compiled/eager speed {times["eager"] / times["compiled"]:.2f}x')
        torch._dynamo.reset()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--steps', type=int, default=3, help='timed forward+backward steps per configuration')
    ap.add_argument('--compile', action='store_true', help='also time torch.compile (slow: about 2 min)')
    ap.add_argument('--pairs', type=int, default=3, help='extra interleaved runs of each segcourse/MONAI pair (median ratio)')
    ap.add_argument('--one', help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(**json.loads(args.one)))); return

    import torch
    try:
        import monai  # noqa: F401
        have_monai = True
    except ImportError:
        have_monai = False
    ours = ['unet', 'segnet', 'unetpp', 'transunet']
    names = ours + (['unet5', 'monai_basicunet', 'monai_unet'] if have_monai else [])
    print(f'CPU, 128x128, batch 8, forward+backward, fp32, 1 thread, {args.steps} steps (torch {torch.__version__})')
    print(f"{'model':16s} {'params':>9s} {'GMACs/img':>9s} {'layout':>14s} {'img/s':>7s} {'img/CPU-s':>10s} {'peak MB':>8s}")
    res = {}
    for name in names:
        for cl in (False, True):
            r = run_isolated(name=name, channels_last=cl, device='cpu', size=128, batch=8, steps=args.steps, bf16=False)
            res[name, cl] = r
            print(f"{name:16s} {r['params']:>9,d} {r['macs'] / 1e9:9.2f} {'channels_last' if cl else 'contiguous':>14s} "
                  f"{r['img_s']:7.1f} {r['img_cpu_s']:10.1f} {r['peak_mb']:8.0f}")
    print('\nchannels_last speed-up (img/CPU-s, channels_last / contiguous):')
    print('  ' + ', '.join(f"{n} {res[n, True]['img_cpu_s'] / res[n, False]['img_cpu_s']:.2f}x" for n in names))
    if have_monai:
        print('\nsegcourse vs MONAI (img/CPU-s ratio, > 1: ours faster; peak memory ratio, < 1: ours smaller):')
        for ours_name, theirs, note in (('unet5', 'monai_basicunet', 'same architecture, widths 16..256'),
                                        ('unet', 'monai_unet', 'different designs, widths 16..128')):
            for cl in (False, True):
                a, b = res[ours_name, cl], res[theirs, cl]
                print(f"  {ours_name} / {theirs} ({note}, {'channels_last' if cl else 'contiguous'}): "
                      f"speed {a['img_cpu_s'] / b['img_cpu_s']:.2f}x, memory {a['peak_mb'] / max(b['peak_mb'], 1):.2f}x")
        if args.pairs:  # the machine may be shared: alternate the two models and take the median ratio
            print(f'  interleaved, {args.pairs} runs each, median img/CPU-s ratio:')
            for ours_name, theirs in (('unet5', 'monai_basicunet'), ('unet', 'monai_unet')):
                for cl in (False, True):
                    ratios = []
                    for _ in range(args.pairs):
                        kw = dict(channels_last=cl, device='cpu', size=128, batch=8, steps=args.steps, bf16=False)
                        a, b = run_isolated(name=ours_name, **kw), run_isolated(name=theirs, **kw)
                        ratios.append(a['img_cpu_s'] / b['img_cpu_s'])
                    print(f"    {ours_name} / {theirs} ({'channels_last' if cl else 'contiguous'}): "
                          f"{sorted(ratios)[len(ratios) // 2]:.2f}x (runs: {', '.join(f'{r:.2f}' for r in ratios)})")
    else:
        print('\nMONAI is not installed: no comparison (pip install monai)')
    if torch.cuda.is_available():
        print('\nGPU, 256x256, batch 16, forward+backward:')
        for name in names:
            for cl, bf16 in ((False, False), (True, True)):
                r = run_isolated(name=name, channels_last=cl, device='cuda', size=256, batch=16, steps=10, bf16=bf16)
                print(f"  {name:16s} {'bf16+channels_last' if bf16 else 'fp32':>18s} {r['img_s']:8.1f} img/s {r['peak_mb']:8.0f} MB")
    else:
        print('\nGPU: no GPU available')
    if args.compile: compile_check(ours)


if __name__ == '__main__':
    main()
