"""Architecture constants of SIC-lite (kept in one place so export and training agree)."""

from dataclasses import dataclass, field, asdict
from pathlib import Path


@dataclass(frozen=True)
class ModelConfig:
    N: int = 128                # channels of g_a / g_s
    M: int = 256                # latent channels
    Nh: int = 128               # channels inside h_a / h_s
    Cz: int = 64                # hyper-latent channels (z_channels)
    Ch: int = 128               # hyper feature channels (hyper_channels)
    # narrow first slices keep level 1 near 0.1 bpp; wider late slices carry the detail
    slice_widths: tuple = (16, 16, 24, 32, 32, 40, 48, 48)
    slice_hidden: int = 128     # width of the slice parameter networks
    scale_min: float = 0.11     # lower bound of every predicted scale
    # g_s told the level: per-level channel gains and offsets after each inverse GDN
    # (model.LevelModulation); False for bundles exported before it
    level_modulation: bool = False
    # with the modulation, a small level-conditioned residual conv block after each of those
    # stages (model.LevelAdapter), this many hidden channels; 0 for none
    level_adapter: int = 0

    @property
    def levels(self) -> int:
        return len(self.slice_widths)

    def offsets(self):
        out, o = [], 0
        for s in self.slice_widths:
            out.append(o)
            o += s
        return out

    def to_dict(self):
        d = asdict(self)
        d["slice_widths"] = list(self.slice_widths)
        return d

    @staticmethod
    def from_dict(d):
        d = dict(d)
        d["slice_widths"] = tuple(d["slice_widths"])
        return ModelConfig(**d)


# the picture is padded to this; g_a halves it 4 times (h_a pads its input itself)
PAD_MULTIPLE = 16
PRECISION = 16
# the shipped bundle, next to this package
DEFAULT_BUNDLE = Path(__file__).resolve().parent.parent / "sic-lite"
