"""benchmarks/gpu_check.sh, prepared for the day a GPU is lent, run shrunk on the CPU so that it cannot rot (issue 26)."""
import os, subprocess
from pathlib import Path

import torch


def test_the_gpu_check_runs_shrunk_on_a_cpu():
    "benchmarks/gpu_check.sh --shrink: every part at toy size, here on the CPU, so that the script cannot rot before a GPU is lent."
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, OMP_NUM_THREADS='1', SEGCOURSE_THREADS='1', TQDM_DISABLE='1', MPLBACKEND='Agg')
    r = subprocess.run(['bash', str(root/'benchmarks'/'gpu_check.sh'), '--shrink'], capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    for part in ('1. the unit tests marked cuda', '2. training slices per second', 'ratio', '3. the capstone recipe', 'validation Dice per patient', 'gpu check done'):
        assert part in r.stdout, r.stdout[-2000:]
    if not torch.cuda.is_available(): assert 'no GPU available' in r.stdout
