"""What only a GPU can check: mixed precision in float16 (with its GradScaler) and bfloat16, channels-last, predictions
that agree with the CPU's, and checkpoints written on the GPU that load on a CPU. Marked `cuda`: they skip without a
GPU, and `benchmarks/gpu_check.sh` runs them first the day a GPU is lent."""
import math

import pytest
import torch

from segcourse.checkpoint import load_checkpoint
from segcourse.config import RunConfig
from segcourse.data import PhantomDataset
from segcourse.inference import predict
from segcourse.models import UNet
from segcourse.models.registry import model_from_checkpoint
from segcourse.training import fit, train_run

gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU here")
pytestmark = pytest.mark.cuda
TRAIN, VAL = PhantomDataset(n=16, seed=0, size=64), PhantomDataset(n=8, seed=1, size=64)


@gpu
@pytest.mark.parametrize('amp', ['fp16', 'bf16'])
@pytest.mark.parametrize('channels_last', [False, True])
def test_mixed_precision_trains_on_the_gpu(amp, channels_last):
    if amp == 'bf16' and not torch.cuda.is_bf16_supported(): pytest.skip('this GPU has no bfloat16')
    history = fit(UNet(features=(8, 16)), TRAIN, VAL, epochs=2, batch_size=8, device='cuda', amp=amp, channels_last=channels_last, progress=False)
    assert all(math.isfinite(h['train_loss']) and math.isfinite(h['val_loss']) for h in history)


@gpu
def test_gpu_predictions_agree_with_the_cpu():
    torch.manual_seed(0)
    net = UNet(features=(8, 16)).eval()
    on_cpu = predict(net, VAL, device='cpu')
    on_gpu = predict(net.to('cuda'), VAL, device='cuda')
    assert torch.allclose(on_cpu, on_gpu.cpu(), atol=1e-4)


@gpu
def test_a_gpu_run_loads_on_a_cpu(tmp_path):
    train_run(RunConfig.quick(epochs=1), tmp_path/'run', device='cuda', progress=False)
    ckpt = load_checkpoint(tmp_path/'run'/'last.pt')
    net = model_from_checkpoint(ckpt, device='cpu')
    assert next(net.parameters()).device.type == 'cpu'

