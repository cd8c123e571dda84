"""A lean PyTorch version of the released reference-mode DDS iteration, for side-by-side CPU timing.

  python bench/bench_torch_loop.py --rosinality=/path/to/stylegan2-pytorch --size=64 --style_dim=128
  python bench/bench_torch_loop.py --rosinality=/path/to/stylegan2-pytorch --size=256 --style_dim=512

Needs torch (the ``convert`` extra) and a checkout of rosinality/stylegan2-pytorch (its ``model.py`` and
``op/``; on CPU its ops take their pure-PyTorch paths, so the CUDA extension is never built). Random
weights: a config-f Generator(size, style_dim, 8, channel_multiplier=2) and VGG16 ``features[:21]``. One
iteration = G(W+ latent, noise) -> VGG16 (relu1_1, relu1_2, relu3_2, relu4_2) on the image up-sampled to
256² -> masked feature + pixel MSE terms -> backward -> Adam -> noise re-normalisation. Leaner than the
released ``DDS_main.py`` (it computes the target features once, as dds-jax does), so it is a floor for
the original's time. Compare with ``bench/bench_dds.py --mode=reference`` at the same size / style_dim.
"""
import argparse
import sys
import time

import torch

parser = argparse.ArgumentParser()
parser.add_argument("--rosinality", required=True, help="checkout of rosinality/stylegan2-pytorch")
parser.add_argument("--size", type=int, default=64)
parser.add_argument("--style_dim", type=int, default=128)
parser.add_argument("--iters", type=int, default=3)
parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
args = parser.parse_args()
sys.path.insert(0, args.rosinality)
import torch.utils.cpp_extension as ce  # noqa: E402
ce.load = lambda *a, **k: None          # rosinality's op/ builds its CUDA kernels at import; CPU never uses them
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from model import Generator  # noqa: E402

size, style = args.size, args.style_dim
torch.manual_seed(0)
if args.threads:
    torch.set_num_threads(args.threads)
g = Generator(size, style, 8, channel_multiplier=2).eval()
for p in g.parameters():
    p.requires_grad_(False)
cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512]
layers, c = [], 3
for v in cfg:
    if v == "M":
        layers.append(nn.MaxPool2d(2, 2))
    else:
        layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU()]
        c = v
vgg = nn.Sequential(*layers).eval()
for p in vgg.parameters():
    p.requires_grad_(False)
taps = {1, 3, 13, 20}          # relu1_1, relu1_2, relu3_2, relu4_2 (features indices)


def feats(x):
    x = F.interpolate(x, size=(256, 256), mode="bilinear", align_corners=False) if x.shape[-1] != 256 else x
    out = []
    for i, layer in enumerate(vgg):
        x = layer(x)
        if i in taps:
            out.append(x)
    return out


with torch.no_grad():
    mean = g.mean_latent(1000)
    x_s = g([torch.randn(1, style)])[0]
    x_t = g([torch.randn(1, style)])[0]
mask = torch.zeros(1, 1, size, size)
mask[..., size // 4:3 * size // 4, size // 4:3 * size // 4] = 1
with torch.no_grad():
    f_s = [f * F.interpolate(mask, f.shape[-2:]) for f in feats(x_s)]
    f_t = [f * (1 - F.interpolate(mask, f.shape[-2:])) for f in feats(x_t)]
latent = mean.detach().clone().unsqueeze(1).repeat(1, g.n_latent, 1).requires_grad_(True)
noises = [n.detach().clone().requires_grad_(False) for n in g.make_noise()]
opt = torch.optim.Adam([latent], lr=0.01)


def step():
    img, _ = g([latent], input_is_latent=True, noise=noises)
    fi = feats(img)
    loss = 0.0
    for a, b, t in zip(fi, f_s, f_t):
        m = F.interpolate(mask, a.shape[-2:])
        loss = loss + F.mse_loss(a * m, b) + F.mse_loss(a * (1 - m), t)
    loss = loss + F.mse_loss(img * mask, x_s * mask) + 3 * F.mse_loss(img * (1 - mask), x_t * (1 - mask))
    opt.zero_grad()
    loss.backward()
    opt.step()
    with torch.no_grad():
        for n in noises:
            n.sub_(n.mean()).div_(n.std())


step()
t0 = time.perf_counter()
k = args.iters
for _ in range(k):
    step()
dt = (time.perf_counter() - t0) / k
print(f"torch {torch.__version__}, {size}² style {style}: {dt:.2f} s / it = {1 / dt:.3f} seed-it/s")
