"Sliding-window inference: shapes, blending, bad arguments, and equality with MONAI's implementation."
import pytest, torch
from torch import nn

from segcourse.inference import sliding_window_inference, predict_volume, importance_map, window_slices

torch.set_num_threads(1)

def _net(dim, cin=1, cout=2, seed=0):
    torch.manual_seed(seed)
    Conv = nn.Conv2d if dim == 2 else nn.Conv3d
    return nn.Sequential(Conv(cin, 3, 3, padding=1), nn.ReLU(), Conv(3, cout, 3, padding=1)).eval()

@pytest.mark.parametrize('size', [(37, 29), (16, 16), (5, 40)])
def test_whole_image_window_is_one_forward_2d(size):
    net, x = _net(2), torch.randn(2, 1, *size)
    with torch.no_grad(): ref = net(x)
    for blend in ('gaussian', 'constant'):
        torch.testing.assert_close(sliding_window_inference(net, x, size, blend=blend), ref, atol=1e-5, rtol=0)

def test_whole_volume_window_is_one_forward_3d():
    net, x = _net(3), torch.randn(1, 1, 7, 9, 11)
    with torch.no_grad(): ref = net(x)
    torch.testing.assert_close(sliding_window_inference(net, x, (7, 9, 11)), ref, atol=1e-5, rtol=0)

@pytest.mark.parametrize('size,roi', [((33, 17), (8, 8)), ((9, 31), (12, 5)), ((3, 3), (8, 8))])
def test_odd_shapes_2d(size, roi):
    out = sliding_window_inference(_net(2), torch.randn(3, 1, *size), roi, overlap=0.4, sw_batch_size=3)
    assert out.shape == (3, 2, *size)

@pytest.mark.parametrize('size,roi', [((7, 13, 9), (4, 8, 8)), ((3, 5, 4), (6, 6, 6))])
def test_odd_shapes_3d(size, roi):
    out = sliding_window_inference(_net(3), torch.randn(2, 1, *size), roi, overlap=0.5)
    assert out.shape == (2, 2, *size)

def test_slice_by_slice_equals_per_slice():
    net, vol = _net(2), torch.randn(2, 1, 5, 14, 11)
    out = sliding_window_inference(net, vol, (8, 8), overlap=0.5, sw_batch_size=5)
    assert out.shape == (2, 2, 5, 14, 11)
    for d in range(5):
        torch.testing.assert_close(out[:, :, d], sliding_window_inference(net, vol[:, :, d], (8, 8), overlap=0.5), atol=1e-6, rtol=0)
    torch.testing.assert_close(sliding_window_inference(net, vol, 8, overlap=0.5, slice_by_slice=True), out)

@pytest.mark.parametrize('blend', ['gaussian', 'constant'])
def test_normalised_weights_are_one(blend):
    class Const(nn.Module):
        def forward(self, x): return torch.full((x.shape[0], 1) + x.shape[2:], -2.5)
    for shape, roi in [((1, 1, 23, 31), (7, 9)), ((1, 1, 9, 10, 11), (4, 5, 6)), ((1, 1, 4, 5), (9, 9))]:
        out = sliding_window_inference(Const(), torch.randn(shape), roi, overlap=0.7, blend=blend)
        torch.testing.assert_close(out, torch.full((1, 1) + shape[2:], -2.5), atol=1e-5, rtol=0)
    # the sum of weights over windows is positive everywhere, so the division is safe
    total = torch.zeros(23, 31)
    w = importance_map((7, 9), blend)
    for s in window_slices((23, 31), (7, 9), 0.7): total[s] += w
    assert total.min() > 0

def test_buffer_on_cpu_and_batches_do_not_change_result():
    net, x = _net(2), torch.randn(2, 1, 30, 26)
    a = sliding_window_inference(net, x, (10, 12), overlap=0.5, sw_batch_size=1)
    b = sliding_window_inference(net, x, (10, 12), overlap=0.5, sw_batch_size=7, buffer_device='cpu', device='cpu')
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)

def test_image_smaller_than_window_reflect_pad():
    net, x = _net(2), torch.randn(1, 1, 6, 5)
    out = sliding_window_inference(net, x, (9, 9), pad_mode='reflect')
    with torch.no_grad(): ref = net(nn.functional.pad(x, (2, 2, 1, 2), mode='reflect'))[:, :, 1:7, 2:7]
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)

@pytest.mark.parametrize('kwargs,msg', [
    (dict(roi_size=(8, -1)), 'roi_size must be'), (dict(roi_size=(8,)), 'roi_size must be'),
    (dict(roi_size=8.5), 'roi_size must be'), (dict(roi_size=8, overlap=-0.1), 'overlap must be'),
    (dict(roi_size=8, overlap=(0.5, 0.5, 0.5)), 'overlap must be'), (dict(roi_size=8, blend='gauss'), "did you mean 'gaussian'"),
    (dict(roi_size=8, pad_mode='zero'), 'pad_mode'), (dict(roi_size=8, sw_batch_size=0), 'sw_batch_size'),
    (dict(roi_size=8, sigma_scale=0), 'sigma_scale'), (dict(roi_size=8, slice_by_slice=True), 'slice_by_slice needs a volume'),
])
def test_bad_arguments(kwargs, msg):
    with pytest.raises(ValueError, match=msg.replace('(', r'\(')):
        sliding_window_inference(_net(2), torch.randn(1, 1, 20, 20), **kwargs)

def test_model_changing_size_is_an_error():
    with pytest.raises(ValueError, match='keep the spatial size'):
        sliding_window_inference(nn.MaxPool2d(2), torch.randn(1, 1, 20, 20), 8)

def test_predict_volume_restores_mode_and_layout():
    net = _net(2).train()
    case = torch.randn(1, 4, 12, 10)
    p = predict_volume(net, case, (8, 8), overlap=0.5)
    assert net.training and p.shape == (2, 4, 12, 10) and 0 <= p.min() and p.max() <= 1
    assert predict_volume(net, case[None], activation='none').shape == (1, 2, 4, 12, 10)

# --- MONAI peer -------------------------------------------------------------------------------------
CASES = [((2, 1, 37, 29), (16, 12), 0.25), ((1, 1, 50, 41), (20, 20), 0.5), ((1, 1, 13, 30), (16, 8), 0.6),
         ((1, 1, 9, 17, 14), (6, 8, 8), 0.25), ((1, 1, 11, 10, 20), (8, 12, 6), 0.5)]

@pytest.mark.parametrize('shape,roi,overlap', CASES)
@pytest.mark.parametrize('blend', ['gaussian', 'constant'])
@pytest.mark.parametrize('pad_mode', ['constant', 'replicate'])
def test_equals_monai(shape, roi, overlap, blend, pad_mode):
    inferers = pytest.importorskip('monai.inferers', reason='monai is not installed (pip install monai)')
    net, x = _net(len(roi)), torch.randn(shape)
    for sigma in (0.125, 0.3):
        ours = sliding_window_inference(net, x, roi, overlap=overlap, blend=blend, sw_batch_size=3,
                                        pad_mode=pad_mode, sigma_scale=sigma)
        with torch.no_grad():
            theirs = inferers.sliding_window_inference(x, roi, 3, net, overlap=overlap, mode=blend,
                                                       sigma_scale=sigma, padding_mode=pad_mode)
        torch.testing.assert_close(ours, torch.as_tensor(theirs), atol=1e-5, rtol=0)
