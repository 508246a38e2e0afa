"""Training photos from Debian packages (docs: shared/design/data.md) and the held-out
evaluation photos, cached outside git under ${SIC_WORK:-~/.cache/sic}/data."""

import io
import math
import os
import random
import struct
import subprocess
import tempfile
from pathlib import Path

import numpy as np

# package -> list of paths (relative to the unpacked root)
_MATE = "usr/share/backgrounds/mate/nature/"
_LOMIRI = "usr/share/backgrounds/"
_PLASMA = "usr/share/wallpapers/{}/contents/images/2560x1600.jpg"
_PALAPELI = "usr/share/palapeli/collection/"
_E = "usr/share/enlightenment/data/backgrounds/"
SOURCES = {
    "mate-backgrounds": [_MATE + n + ".jpg" for n in (
        "Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird",
        "RainDrops", "Storm", "TwoWings", "Wood", "YellowFlower")],
    "lomiri-wallpapers-16.04": [_LOMIRI + n + ".jpg" for n in (
        "Bridge_by_Sander_Klootwijk", "Dragonfly_by_Bolly", "Picture_0B_by_freespace",
        "Picture_1A_by_freespace", "Wine_by_Jakkub_Mede", "aitzgorri_by_Aitzol_Berasategi",
        "analogpattern_by_Peter_Nerlich", "free_by_Peter_Nerlich",
        "friends_by_Aitzol_Berasategi", "greentock_by_Peter_Nerlich",
        "life_by_Aitzol_Berasategi", "picosdeeuropa_by_Aitzol_Berasategi",
        "seeding_by_Clements_Engelhardt", "sunset_by_Aitzol_Berasategi")],
    "lomiri-wallpapers-20.04": [_LOMIRI + "Kleiber_by_Lukas_Baubkus.jpg"],
    "plasma-workspace-wallpapers": [_PLASMA.format(n) for n in (
        "FallenLeaf", "Path", "DarkestHour", "summer_1am", "EveningGlow", "ColorfulCups",
        "OneStandsOut", "ColdRipple", "BytheWater")],
    "palapeli-data": [_PALAPELI + n + ".jpg" for n in (
        "castle-maintenon", "cincinnati-bridge", "citrus-fruits", "european-honey-bee",
        "panther-chameleon-female")],
}
# Opt-in (`python -m training data --extra`, then `train --photos all`); step 128134 was the
# first shipped model trained on them (models/results/cpu-photos-all-128134.md).
EXTRA_SOURCES = {
    # 3840x2160 photos (JPEG at quality ~100) inside Edje files; the package's other
    # backgrounds (Dunes, Flat-Fan, Squiggle*, Flat-Stone-Pattern, Paper-Flower) are drawings
    # or flat textures. About 400 MB to download; BSD-2-clause.
    "enlightenment-data": [_E + n + ".edj" for n in (
        "Bamboo", "Foggy-Trees", "God-Rays", "Green-Maple", "Lichen-Branches", "Mountain",
        "Peaks", "Red-Maple", "Sea-of-Lanterns", "Snow-Trees", "Spruce-Needles",
        "Sunset-Clouds", "Sunset-Hills", "White-Flower", "Yellow-Flower")],
}
# what every run trained on before the photos of a run were recorded (step 124141 and earlier)
DATA_DESCRIPTION = ("41 photos from Debian 12 packages mate-backgrounds, lomiri-wallpapers-16.04, "
                    "lomiri-wallpapers-20.04, plasma-workspace-wallpapers, palapeli-data; "
                    "downscaled by 2 (Lanczos)")


def package_of(name: str):
    """The Debian package a training file came from (`<package>__<photo>.png`, as
    fetch_training_photos names them), or None for any other file."""
    pkg, sep, _ = Path(name).name.partition("__")
    return pkg if sep else None


def describe_photos(names) -> str:
    """'56 photos from Debian 12 packages a (12), b (3); downscaled by 2 (Lanczos)' for the
    files of a training folder; files of no package are counted as 'other files'."""
    counts = {}
    for n in names:
        pkg = package_of(n)
        counts[pkg] = counts.get(pkg, 0) + 1
    other = counts.pop(None, 0)
    parts = []
    if counts:
        parts.append("Debian 12 packages " + ", ".join(f"{k} ({v})" for k, v in counts.items()))
    if other:
        parts.append(f"other files ({other})")
    return f"{len(names)} photos from " + " and ".join(parts) + "; downscaled by 2 (Lanczos)"


class EdjeError(ValueError):
    pass


def largest_jpeg_in_edje(blob: bytes) -> bytes:
    """The biggest JPEG image stored in an Edje file (an EET archive: a big-endian directory of
    named entries). Edje keeps a photo background as its JPEG bytes, one entry per size."""
    if len(blob) < 12:
        raise EdjeError("too short for an EET header")
    magic, n, _ = struct.unpack(">III", blob[:12])
    if magic != 0x1EE70F42:
        raise EdjeError(f"not an EET file (magic {magic:#x})")
    if 12 + 24 * n > len(blob):
        raise EdjeError(f"directory of {n} entries runs past the end")
    best = b""
    for i in range(n):
        off, size, data_size, _, _, flags = struct.unpack(">6I", blob[12 + 24 * i:36 + 24 * i])
        if flags or size != data_size or off + size > len(blob):
            continue   # compressed, ciphered or broken entries are not stored images
        data = blob[off:off + size]
        if data[:3] == b"\xff\xd8\xff" and len(data) > len(best):
            best = data
    if not best:
        raise EdjeError("no JPEG image inside")
    return best


def _open_photo(path: Path):
    from PIL import Image
    if path.suffix == ".edj":
        return Image.open(io.BytesIO(largest_jpeg_in_edje(path.read_bytes())))
    return Image.open(path)


GOLDEN_PHOTO = "palapeli-data__european-honey-bee.png"


def work_dir() -> Path:
    return Path(os.environ.get("SIC_WORK", Path.home() / ".cache" / "sic"))


def train_dir() -> Path:
    return work_dir() / "data" / "train"


def eval_dir() -> Path:
    return work_dir() / "data" / "eval"


def default_golden_photo() -> Path:
    return train_dir() / GOLDEN_PHOTO


def fetch_training_photos(dest: Path = None, verbose=True, extra=False):
    """apt-get download + dpkg-deb -x each package, downscale by 2 (Lanczos), save PNG.
    With `extra`, the packages of EXTRA_SOURCES too."""
    from PIL import Image
    dest = Path(dest or train_dir())
    dest.mkdir(parents=True, exist_ok=True)
    debs = work_dir() / "data" / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    count = 0
    for pkg, files in {**SOURCES, **(EXTRA_SOURCES if extra else {})}.items():
        todo = [f for f in files if not (dest / _out_name(pkg, f)).exists()]
        if not todo:
            count += len(files)
            continue
        have = sorted(debs.glob(f"{pkg}_*.deb"))
        if not have:
            try:
                subprocess.run(["apt-get", "download", pkg], cwd=debs, check=True)
            except (subprocess.CalledProcessError, FileNotFoundError) as e:
                raise SystemExit(f"apt-get download {pkg} failed ({e}); on a fresh Debian 12 "
                                 "run `apt-get update` first (the package lists are needed)")
            have = sorted(debs.glob(f"{pkg}_*.deb"))
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["dpkg-deb", "-x", str(have[-1]), tmp], check=True)
            for f in todo:
                src = Path(tmp) / f
                try:
                    img = _open_photo(src).convert("RGB")
                except EdjeError as e:
                    raise SystemExit(f"{pkg}: {f}: {e}")
                w, h = img.size
                img = img.resize((w // 2, h // 2), Image.LANCZOS)
                out = dest / _out_name(pkg, f)
                img.save(str(out) + ".tmp.png")
                os.replace(str(out) + ".tmp.png", out)
                count += 1
                if verbose:
                    print(f"  {out.name}: {w}x{h} -> {w // 2}x{h // 2}")
    if verbose:
        print(f"{count} training photos in {dest}" + ("" if extra else " (the original set)"))
    return dest


def _out_name(pkg, f):
    p = Path(f)
    stem = p.parts[-4] if p.name == "2560x1600.jpg" else p.stem
    return f"{pkg}__{stem}.png"


def fetch_eval_photos(dest: Path = None, verbose=True):
    """The held-out development photos shipped inside scikit-image, scikit-learn and
    matplotlib, written once as PNG."""
    from PIL import Image
    dest = Path(dest or eval_dir())
    dest.mkdir(parents=True, exist_ok=True)
    import skimage.data as sd
    loaders = {"astronaut": sd.astronaut, "coffee": sd.coffee, "chelsea": sd.chelsea,
               "motorcycle_left": lambda: sd.stereo_motorcycle()[0], "rocket": sd.rocket}
    for n, load in loaders.items():
        out = dest / f"skimage_{n}.png"
        if not out.exists():
            Image.fromarray(np.asarray(load())[..., :3]).convert("RGB").save(out)
    from sklearn.datasets import load_sample_image
    for n in ("china.jpg", "flower.jpg"):
        out = dest / f"sklearn_{Path(n).stem}.png"
        if not out.exists():
            Image.fromarray(load_sample_image(n)).convert("RGB").save(out)
    import matplotlib.cbook as cb
    out = dest / "matplotlib_grace_hopper.png"
    if not out.exists():
        with cb.get_sample_data("grace_hopper.jpg") as fh:
            Image.open(fh).convert("RGB").save(out)
    if verbose:
        print(f"{len(list(dest.glob('*.png')))} evaluation photos in {dest}")
    return dest


def photo_files(folder: Path, photos=None):
    """The PNG and JPEG photos in `folder`. `photos` is `--photos` of train and tune-entropy:
    "original" leaves out the EXTRA_SOURCES packages; "all" keeps them and stops when there
    are none (the flag would change nothing, and a fresh machine lacks them); None: every file."""
    files = [p for p in sorted(Path(folder).iterdir())
             if p.suffix.lower() in (".png", ".jpg", ".jpeg")]
    extra = [p for p in files if package_of(p.name) in EXTRA_SOURCES]
    if photos == "original":
        files = [p for p in files if p not in extra]
    elif photos == "all" and not extra:
        raise SystemExit(f"--photos all: none of the extra photos are in {folder}: run "
                         "`python -m training data --extra` (or train with --photos original)")
    if not files:
        raise SystemExit(f"no training photos in {folder}: run `python -m training data`")
    return files


def crops_to_float(crops):
    """uint8 NHWC crops -> float NCHW in [0, 1], on whatever device they are."""
    return crops.permute(0, 3, 1, 2).float().div_(255.0).contiguous()


class CropDataset:
    """All photos (PNG or JPEG) in memory (uint8); random crops with horizontal/vertical flips.

    With rescale < 1 each crop is cut `crop / s` pixels wide and shrunk to `crop` (Lanczos), s
    log-uniform in [rescale, 1]: the half-size photos are mostly smooth macro and landscape
    shots, and shrinking them further gives crops with the detail density of everyday photos.
    `photos`: which photos of the folder, as in `photo_files`."""

    def __init__(self, folder: Path, crop=128, seed=0, rescale=1.0, photos=None):
        from PIL import Image
        files = photo_files(folder, photos)
        self.names = [p.name for p in files]
        self.images = [np.asarray(Image.open(p).convert("RGB")) for p in files]
        if not 0.0 < rescale <= 1.0:
            raise SystemExit(f"--rescale must be in (0, 1], not {rescale}")
        self.crop = crop
        self.rescale = rescale
        self.rng = random.Random(seed)
        # sample photos in proportion to their area
        areas = np.array([im.shape[0] * im.shape[1] for im in self.images], dtype=np.float64)
        self.weights = list(areas / areas.sum())
        self.pool = None
        self.ahead = None   # (RNG state before it was drawn, futures of its crops)

    def batch(self, n):
        """n crops as floats (N, 3, crop, crop) in [0, 1]."""
        return crops_to_float(self.batch_u8(n))

    def batch_u8(self, n):
        """n crops as they are stored, uint8 (N, crop, crop, 3): a quarter of the bytes to copy
        to a GPU, which converts them itself.

        The batch after this one is drawn at once and cut on the pool while the caller trains
        on this one, so a GPU step does not wait for the shrinking. Every random draw happens on
        this thread, in order: the batches are the same as without the look-ahead, and a saved
        `state()` (taken before the batch in flight was drawn) replays them."""
        import torch
        if self.ahead is not None and len(self.ahead[1]) != n:
            self.rng.setstate(self.ahead[0])   # drawn for another size: draw it again
            self.ahead = None
        if self.ahead is None:
            self.ahead = self._start(n)
        _, cuts = self.ahead
        self.ahead = self._start(n)
        return torch.from_numpy(np.stack([c.result() for c in cuts]))

    def _start(self, n):
        state = self.rng.getstate()
        pool = self._pool()
        return state, [pool.submit(self._cut, self._plan()) for _ in range(n)]

    def _plan(self):
        """One crop's photo, region size, corner and flips."""
        im = self.rng.choices(self.images, self.weights)[0]
        h, w, _ = im.shape
        size = self.crop
        if self.rescale < 1.0:
            s = math.exp(self.rng.uniform(math.log(self.rescale), 0.0))
            size = round(self.crop / s)
        size = min(size, h, w)   # a photo smaller than the region: its whole width, resized
        t = self.rng.randrange(h - size + 1)
        l = self.rng.randrange(w - size + 1)
        return im, size, t, l, self.rng.random() < 0.5, self.rng.random() < 0.5

    def _cut(self, plan):
        im, size, t, l, flip_h, flip_v = plan
        c = im[t:t + size, l:l + size]
        if size != self.crop:
            from PIL import Image
            c = np.asarray(Image.fromarray(c).resize((self.crop, self.crop), Image.LANCZOS))
        if flip_h:
            c = c[:, ::-1]
        if flip_v:
            c = c[::-1]
        return c

    def _pool(self):
        # SIC_DATA_THREADS: a GPU machine's spare cores keep batch 32 of shrunk 256² crops
        # (about 130 ms on one core) from stalling the GPU
        if self.pool is None:
            from concurrent.futures import ThreadPoolExecutor
            v = os.environ.get("SIC_DATA_THREADS", "0")
            if not v.isdigit():
                raise SystemExit(f"SIC_DATA_THREADS must be a whole number, not {v!r}")
            n = int(v) or min(8, os.cpu_count() or 1)
            self.pool = ThreadPoolExecutor(max_workers=n)
        return self.pool

    def state(self):
        return self.ahead[0] if self.ahead is not None else self.rng.getstate()

    def set_state(self, s):
        self.ahead = None
        self.rng.setstate(s)
