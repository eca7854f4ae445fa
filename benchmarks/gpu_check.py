"""The GPU check, prepared for the day a GPU is lent (issue 26): in at most 8 minutes on one modern GPU,

1. the unit tests marked `cuda` (`pytest -m cuda`);
2. training slices per second at 256x256, batch 16: float32, AMP (bf16 where supported, else fp16 with a
   GradScaler), AMP + channels_last, and AMP + channels_last compiled, as ratios to float32 measured in one run;
3. the capstone recipe trained at 256x256 for a fixed few minutes on a packed LGG set (`--data packed:FILE.npz`,
   e.g. `segcourse pack --data lgg:lgg-dev/kaggle_3m --size 256 --out lgg-dev-256.npz`, parts of at most 64 MiB),
   and its validation Dice per patient (mean and median).

    bash benchmarks/gpu_check.sh --data packed:lgg-dev-256.npz [--minutes 4]
    bash benchmarks/gpu_check.sh --shrink      # seconds on a CPU: every part at toy size (the tests run this)

Without a GPU (and without --shrink) it says "no GPU available" and measures nothing.
"""
import argparse, os, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def say(title): print(f"\n== {title}", flush=True)


def cuda_tests(device):
    say("1. the unit tests marked cuda")
    if device.type != 'cuda': print("no GPU available: the cuda tests skip here (collected and run with -m cuda)")
    r = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-m', 'cuda', '-o', 'addopts=-p no:cacheprovider', str(ROOT/'tests')], cwd=ROOT)
    if r.returncode not in (0, 5): sys.exit(f"the cuda tests failed (exit {r.returncode})")


def throughput(device, size, batch, steps, compile_too):
    "Training slices per second of the capstone U-Net in each precision and memory format, best of 2 after a warm-up."
    import torch
    from torch.utils.data import DataLoader, TensorDataset
    from segcourse.losses import get_loss
    from segcourse.models import UNet
    from segcourse.training import amp_setup, train_one_epoch
    from lgg_quality import RECIPE  # the capstone recipe's U-Net (benchmarks/lgg_quality.py)
    say(f"2. training slices per second at {size}x{size}, batch {batch}, on {torch.cuda.get_device_name() if device.type == 'cuda' else 'the CPU'}")
    g = torch.Generator().manual_seed(0)
    ds = TensorDataset(torch.rand(batch * steps, 3, size, size, generator=g), (torch.rand(batch * steps, 1, size, size, generator=g) > 0.9).float())
    loader = DataLoader(ds, batch_size=batch, pin_memory=device.type == 'cuda')
    dtype, _ = amp_setup(True, device) if device.type == 'cuda' else (torch.bfloat16, None)  # a CPU: bf16 autocast
    cases = {'float32': dict(), f'AMP {dtype}': dict(amp_dtype=dtype), f'AMP {dtype} + channels_last': dict(amp_dtype=dtype, channels_last=True)}
    if compile_too: cases[f'AMP {dtype} + channels_last, compiled'] = dict(amp_dtype=dtype, channels_last=True, compiled=True)
    rates = {}
    for name, kw in cases.items():
        torch.manual_seed(0)
        model = UNet(in_channels=3, features=RECIPE['features']).to(device, memory_format=torch.channels_last if kw.get('channels_last') else torch.preserve_format)
        net = torch.compile(model) if kw.pop('compiled', False) else model
        opt, loss = torch.optim.Adam(model.parameters(), 1e-3), get_loss('dice_bce')
        scaler = amp_setup('fp16', device)[1] if kw.get('amp_dtype') == torch.float16 else None
        run = lambda: train_one_epoch(net, loader, loss, opt, device, progress=False, scaler=scaler, **kw)
        t = time.perf_counter(); run(); first = time.perf_counter() - t  # warm-up (and compilation)
        best = float('inf')
        for _ in range(2):
            if device.type == 'cuda': torch.cuda.synchronize()
            t = time.perf_counter(); run()
            if device.type == 'cuda': torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t)
        rates[name] = len(ds) / best
        print(f"    {name:<40s} {rates[name]:8.1f} slices/s   ratio {rates[name] / rates['float32']:5.2f}   (first epoch {first:.1f} s)", flush=True)
    return rates


def capstone(device, data, size, minutes, shrink):
    "The capstone recipe for a fixed time; the validation Dice per patient of its last checkpoint."
    from segcourse.config import RunConfig
    from segcourse.training import train_run
    from segcourse.evaluation import evaluate_checkpoint
    say(f"3. the capstone recipe at {size}x{size} for {minutes} minute(s) on {data}")
    from lgg_quality import RECIPE  # the capstone recipe's U-Net (benchmarks/lgg_quality.py)
    recipe = dict(features=RECIPE['features'], augment=True, grad_clip=1.0, lr=1e-3, batch_size=16, time_limit=minutes, fit_to_time=True, epochs=1000)
    if data.startswith(('lgg', 'packed')): recipe.update(normalize='zscore', missing_sequence=0.3, val_fraction=7 / 39)
    if shrink: recipe.update(features=(4, 8), batch_size=4, epochs=2, n_train=16, n_val=8)
    cfg = RunConfig(data=data, size=size, amp=device.type == 'cuda', **recipe)
    out = Path(tempfile.mkdtemp())/'capstone'
    result = train_run(cfg, out, device=str(device), progress=False)
    ev = evaluate_checkpoint(out/'last.pt', device=str(device))
    print(f"    {len(result['history'])} epochs in {sum(h['seconds'] for h in result['history']) / 60:.1f} min; validation Dice per patient: "
          f"mean {ev['case_dice_mean']:.4f}, median {ev['case_dice_median']:.4f} over {len(ev['per_case'])} patients")
    return ev


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--data', default=None, help='packed:FILE.npz (or lgg:PATH) for part 3; default: phantoms')
    p.add_argument('--minutes', type=float, default=4.0, help='training time of part 3')
    p.add_argument('--shrink', action='store_true', help='every part at toy size, on the CPU if there is no GPU (for the tests)')
    a = p.parse_args()
    start = time.perf_counter()
    import torch
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    print(f"torch {torch.__version__}; {'GPU ' + torch.cuda.get_device_name() if device.type == 'cuda' else 'no GPU available'}")
    if device.type != 'cuda' and not a.shrink:
        print("no GPU available: nothing measured (run with --shrink to check the script itself on a CPU)")
        return
    cuda_tests(device)
    if a.shrink: throughput(device, size=32, batch=4, steps=2, compile_too=False)
    else: throughput(device, size=256, batch=16, steps=20, compile_too=True)
    capstone(device, a.data or 'phantom', 32 if a.shrink else 256, 0.05 if a.shrink else a.minutes, a.shrink)
    print(f"\ngpu check done in {(time.perf_counter() - start) / 60:.1f} min")


if __name__ == '__main__':
    main()
