"""Architecture constants of SIC-lite (kept in one place so export and training agree)."""

from dataclasses import dataclass, field, asdict


@dataclass(frozen=True)
class ModelConfig:
    N: int = 64                 # channels of g_a / g_s
    M: int = 256                # latent channels
    Nh: int = 128               # channels inside h_a / h_s
    Cz: int = 64                # hyper-latent channels (z_channels)
    Ch: int = 128               # hyper feature channels (hyper_channels)
    slice_widths: tuple = (32,) * 8
    slice_hidden: int = 128     # width of the slice parameter networks
    scale_min: float = 0.11     # lower bound of every predicted scale

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


PAD_MULTIPLE = 64
PRECISION = 16
