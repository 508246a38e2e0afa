"""The held-out development photos (never trained on), written once as PNG.

Sources are files bundled inside Python packages (scikit-image, scikit-learn, matplotlib), so
nothing is downloaded. See shared/design/data.md: report results as measured on these photos."""

from pathlib import Path

import numpy as np

# name -> loader; the first two are the --quick subset
ALL = ("astronaut", "coffee", "chelsea", "motorcycle_left", "rocket", "china", "flower",
       "grace_hopper")
QUICK = ("chelsea", "coffee")


def _load(name: str) -> np.ndarray:
    if name in ("astronaut", "coffee", "chelsea", "rocket"):
        import skimage.data
        img = getattr(skimage.data, name)()
    elif name == "motorcycle_left":
        import skimage.data
        img = skimage.data.stereo_motorcycle()[0]
    elif name in ("china", "flower"):
        from sklearn.datasets import load_sample_image
        img = load_sample_image(name + ".jpg")
    elif name == "grace_hopper":
        import matplotlib.cbook
        from PIL import Image
        with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
            img = np.asarray(Image.open(f).convert("RGB"))
    else:
        raise KeyError(name)
    img = np.asarray(img)
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return np.ascontiguousarray(img[..., :3].astype(np.uint8))


def prepare(dest: Path, names=ALL) -> dict:
    """Write each photo as dest/NAME.png (once); return {name: path}."""
    from PIL import Image
    dest.mkdir(parents=True, exist_ok=True)
    out = {}
    for n in names:
        p = dest / f"{n}.png"
        if not p.exists():
            tmp = p.with_suffix(".tmp.png")
            Image.fromarray(_load(n)).save(tmp)
            tmp.replace(p)
        out[n] = p
    return out


def read_rgb(path) -> np.ndarray:
    from PIL import Image
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))
