"""Training speed of `segcourse.training.loop.train_one_epoch`: images per second and peak memory, CPU and GPU,
with and without mixed precision and channels-last, as ratios measured in one run (issue 7).

    OMP_NUM_THREADS=1 python benchmarks/train.py [--batch 8] [--size 128] [--steps 4] [--repeats 3] [--features 16,32,64,128]

Cases, each the best of `repeats` epochs of `steps` batches (the machine is shared; the cases are interleaved):
(a) CPU: `train_one_epoch` against a bare loop written inline (the loop's own overhead; ratio near 1 is the goal);
(b) CPU: float32 against channels-last and against bfloat16 autocast (`amp_dtype`);
(c) GPU: float32 against AMP (bf16 where supported, else fp16 with a GradScaler) and AMP + channels-last,
    with peak memory from `torch.cuda.max_memory_allocated`; prints "no GPU available" without one;
(d) with --limit (issue 26): the machine's ceiling, a large float32 matrix product with the same threads, against
    the achieved FLOP/s of a training step (forward and backward counted as 3 forward passes, MACs from
    `model_summary`) of the capstone U-Net (8..128, 3 channels, 128x128, batch 16) and of MONAI's BasicUNet at equal
    widths; `torch.compile` against eager for the same step (compile time apart); and, with --data, the share of a
    real epoch (`fit` on that data: loading, augmentation, validation, metrics) spent outside the model.
Ratios are (reference time / case time): above 1 means the case is faster than the reference.
CPU memory is the process's peak resident set (it only grows), printed after each case.
"""
import argparse, os, resource, time

os.environ.setdefault('OMP_NUM_THREADS', '1')
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from segcourse.losses import get_loss
from segcourse.models import UNet
from segcourse.training import amp_setup, train_one_epoch
from segcourse.models.registry import model_summary
from timing import seconds


def data(n, size, channels=3, seed=0):
    "Random images and lesion-like masks (a disc per image), as a `TensorDataset`."
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing='ij')
    c = torch.randint(size // 4, 3 * size // 4, (n, 2), generator=g)
    masks = (((yy - c[:, :1, None]) ** 2 + (xx - c[:, 1:, None]) ** 2) < (size // 8) ** 2).float()[:, None]
    return TensorDataset(torch.rand(n, channels, size, size, generator=g) + masks, masks)


def bare_epoch(model, loader, loss_fn, opt, device):
    "The minimal loop: what `train_one_epoch` must not be much slower than."
    model.train()
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    return loss.item()


def setup(features, device, channels_last=False, seed=0):
    torch.manual_seed(seed)
    model = UNet(in_channels=3, features=features).to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    return model, torch.optim.Adam(model.parameters(), 1e-3)


def measure(cases, repeats, device):
    "Best seconds per epoch of each case (interleaved), and peak memory per case (MiB)."
    times, peaks = {k: [] for k in cases}, {}
    for f in cases.values(): f()  # warm-up (allocator, cuDNN autotuning)
    for _ in range(repeats):
        for k, f in cases.items():
            if device.type == 'cuda': torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
            t = time.perf_counter(); f()
            if device.type == 'cuda': torch.cuda.synchronize()
            times[k].append(time.perf_counter() - t)
            peaks[k] = (torch.cuda.max_memory_allocated() if device.type == 'cuda'
                        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2**20
    return {k: min(v) for k, v in times.items()}, peaks


def report(title, times, peaks, n_images, reference, memory_label):
    print(f"\n{title}")
    for k, t in times.items():
        print(f"    {k:<34s} {n_images / t:8.1f} images/s   {memory_label} {peaks[k]:8.0f} MiB   ratio {times[reference] / t:5.2f}")


def matmul_flops(n=2048, repeats=5):
    "FLOP/s of the best of `repeats` float32 `n x n` matrix products: the ceiling of these threads."
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(seconds(lambda: a @ b) for _ in range(repeats))
    return 2 * n ** 3 / best


def step_seconds(model, batch, size, channels, steps, repeats, compiled=False):
    "Best seconds per training step (Adam, Dice+BCE) over `repeats` runs of `steps`; with `compiled`, also the first call's seconds."
    opt, loss_fn = torch.optim.Adam(model.parameters(), 1e-3), get_loss('dice_bce')
    ds = data(batch, size, channels)
    x, y = ds.tensors
    net = torch.compile(model) if compiled else model
    def step():
        loss = loss_fn(net(x), y); opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    first = seconds(step)  # compilation happens here
    best = min(seconds(lambda: [step() for _ in range(steps)]) / steps for _ in range(repeats))
    return best, first


def limit(a):
    "(d) utilisation against the matmul ceiling, compile against eager, and the share of an epoch outside the model."
    from segcourse.models import UNet
    channels, size, batch = 3, a.size, a.limit_batch
    ceiling = matmul_flops()
    print(f"\n(d) the machine's limit: float32 matmul 2048x2048 with {torch.get_num_threads()} thread(s): {ceiling / 1e9:.1f} GFLOP/s "
          f"(load {os.getloadavg()[0]:.1f})")
    models = {'segcourse UNet 8..128': lambda: UNet(in_channels=channels, features=(8, 16, 32, 64, 128))}
    try:
        from monai.networks.nets import BasicUNet
        models['MONAI BasicUNet 8..128'] = lambda: BasicUNet(spatial_dims=2, in_channels=channels, out_channels=1, features=(8, 16, 32, 64, 128, 8))
    except ImportError: print("    MONAI is not installed: its BasicUNet is left out")
    results = {}
    for name, make in models.items():
        torch.manual_seed(0)
        macs = model_summary(make(), (batch, channels, size, size))['macs']
        eager, _ = step_seconds(make(), batch, size, channels, a.steps, a.repeats)
        row = dict(eager=eager, flops=3 * 2 * macs / eager)
        if a.compile:
            try: row['compiled'], row['first'] = step_seconds(make(), batch, size, channels, a.steps, a.repeats, compiled=True)
            except Exception as e: row['compile_error'] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
        results[name] = row
        print(f"    {name:<24s} {2 * macs / 1e9 / batch:6.2f} GFLOP per image forward, step {eager * 1e3:7.1f} ms, "
              f"achieved {row['flops'] / 1e9:6.1f} GFLOP/s = {row['flops'] / ceiling:5.1%} of the ceiling")
        if 'compile_error' in row: print(f"        torch.compile failed on this model: {row['compile_error']}")
        elif a.compile:
            print(f"        torch.compile: step {row['compiled'] * 1e3:7.1f} ms, ratio {eager / row['compiled']:.2f} "
                  f"(first step {row['first']:.0f} s, the compilation; less where inductor's cache is warm)")
    if a.data:
        epoch_outside(a, results['segcourse UNet 8..128'])
    return results


def epoch_outside(a, unet):
    "The share of a real `fit` epoch (capstone recipe, on `--data`) that is not the model's forward and backward passes."
    from segcourse.config import RunConfig
    from segcourse.data.registry import load_splits
    from segcourse.training.runs import fit_arguments
    from segcourse.training import fit
    from segcourse.models import UNet
    cfg = RunConfig(data=a.data, size=a.size, features=(8, 16, 32, 64, 128), augment=True, missing_sequence=0.3, normalize='zscore',
                    crop='brain', grad_clip=1.0, lr=1e-3, epochs=2, batch_size=a.limit_batch, val_fraction=7 / 39)
    splits = load_splits(cfg)
    args = {**fit_arguments(cfg, 3), 'epochs': 2, 'progress': False, 'detailed': True, 'amp': False}
    history = fit(UNet(in_channels=3, features=cfg.features), splits['train'], splits['val'], **args)
    epoch = history[-1]['seconds']  # the second epoch: caches warm
    from segcourse.training.loaders import training_loader
    steps = len(training_loader(splits['train'], a.limit_batch, cfg.lesion_share, 0, cfg.seed))  # the batches fit draws per epoch
    model_time = steps * unet['eager'] + len(splits['val']) / a.limit_batch * unet['eager'] / 3  # validation: a forward pass, about a third of a step
    print(f"    a real epoch on {cfg.data} ({len(splits['train'])} training, {len(splits['val'])} validation slices): {epoch:.1f} s; "
          f"{steps} training steps; the model's passes about {model_time:.1f} s (an estimate from the step above); "
          f"outside the model (loading, augmentation, validation metrics): about {max(0.0, 1 - model_time / epoch):.0%}")
    if a.compile:
        gained = (1800 - unet['first']) / (epoch - steps * (unet['eager'] - unet['compiled'])) / (1800 / epoch)
        print(f"    epochs in 30 minutes at this pace: eager {1800 / epoch:.0f}, compiled about {(1800 - unet['first']) / (epoch - steps * (unet['eager'] - unet['compiled'])):.0f} "
              f"(x{gained:.2f}, the compile time paid once)")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--batch', type=int, default=8); p.add_argument('--size', type=int, default=128)
    p.add_argument('--steps', type=int, default=4); p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--features', default='16,32,64,128')
    p.add_argument('--limit', action='store_true', help='(d) only: utilisation against the matmul ceiling (issue 26)')
    p.add_argument('--limit-batch', type=int, default=16, help='(d): batch of the capstone recipe')
    p.add_argument('--compile', action='store_true', help='(d): also torch.compile against eager')
    p.add_argument('--data', help='(d): a data argument for a real epoch, e.g. lgg:/path/to/kaggle_3m')
    a = p.parse_args()
    if a.limit: return limit(a)
    features = tuple(int(x) for x in a.features.split(','))
    ds = data(a.batch * a.steps, a.size)
    loader = DataLoader(ds, batch_size=a.batch)
    loss_fn = get_loss('dice_bce')
    n = len(ds)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU thread(s), batch {a.batch}, {a.size}x{a.size}, "
          f"U-Net {features}, {a.steps} steps per epoch, best of {a.repeats}")

    cpu = torch.device('cpu')
    m_seg, o_seg = setup(features, cpu); m_bare, o_bare = setup(features, cpu)
    m_cl, o_cl = setup(features, cpu, channels_last=True); m_bf, o_bf = setup(features, cpu)
    cases = {
        'bare loop (reference)': lambda: bare_epoch(m_bare, loader, loss_fn, o_bare, cpu),
        'train_one_epoch float32': lambda: train_one_epoch(m_seg, loader, loss_fn, o_seg, cpu, progress=False),
        'train_one_epoch channels_last': lambda: train_one_epoch(m_cl, loader, loss_fn, o_cl, cpu, progress=False, channels_last=True),
        'train_one_epoch bf16 autocast': lambda: train_one_epoch(m_bf, loader, loss_fn, o_bf, cpu, progress=False, amp_dtype=torch.bfloat16),
    }
    times, peaks = measure(cases, a.repeats, cpu)
    report('(a, b) CPU', times, peaks, n, 'bare loop (reference)', 'peak RSS')
    print(f"    train_one_epoch overhead against the bare loop: ratio {times['bare loop (reference)'] / times['train_one_epoch float32']:.2f}; "
          f"channels_last vs float32: {times['train_one_epoch float32'] / times['train_one_epoch channels_last']:.2f}; "
          f"bf16 vs float32: {times['train_one_epoch float32'] / times['train_one_epoch bf16 autocast']:.2f}")

    if not torch.cuda.is_available():
        print("\n(c) GPU: no GPU available (torch.cuda.is_available() is False); no GPU figures measured")
        return
    gpu = torch.device('cuda')
    gloader = DataLoader(ds, batch_size=a.batch, pin_memory=True)
    amp_dtype, scaler = amp_setup(True, gpu)
    (m32, o32), (mamp, oamp), (mcl, ocl) = setup(features, gpu), setup(features, gpu), setup(features, gpu, channels_last=True)
    scaler2 = amp_setup(True, gpu)[1]
    cases = {
        'float32 (reference)': lambda: train_one_epoch(m32, gloader, loss_fn, o32, gpu, progress=False),
        f'AMP {amp_dtype}': lambda: train_one_epoch(mamp, gloader, loss_fn, oamp, gpu, progress=False, amp_dtype=amp_dtype, scaler=scaler),
        f'AMP {amp_dtype} + channels_last': lambda: train_one_epoch(mcl, gloader, loss_fn, ocl, gpu, progress=False, amp_dtype=amp_dtype,
                                                                      scaler=scaler2, channels_last=True),
    }
    times, peaks = measure(cases, a.repeats, gpu)
    report(f'(c) GPU {torch.cuda.get_device_name()}', times, peaks, n, 'float32 (reference)', 'peak allocated')


if __name__ == '__main__':
    main()
