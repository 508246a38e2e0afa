"""Export a SIC-lite model to an ONNX bundle as specified in docs/model.md, write golden
tensors and verify the graphs against PyTorch with ONNX Runtime."""

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from .config import PAD_MULTIPLE, PRECISION
from .entropy import y_scale_table, y_tables, z_tables
from .layers import with_subpixel_convs
from .tiling import tile_halos

OPSET = 17
FORMAT_VERSION = 1


class AnalysisGraph(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m.analysis(x)


class HyperSynthesisGraph(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.h_s = with_subpixel_convs(m.h_s)

    def forward(self, z_hat):
        return self.h_s(z_hat)


class SliceGraph(nn.Module):
    def __init__(self, m, k):
        super().__init__()
        self.net = m.slices[k]
        self.first = k == 0

    def forward(self, hyper, y_prev=None):
        return self.net(hyper, None if self.first else y_prev)


class SynthesisGraph(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.g_s = with_subpixel_convs(m.g_s)
        self.level_modulation = m.level_modulation

    def forward(self, y_hat, level=None):
        if self.level_modulation is None:
            return self.g_s(y_hat)
        return self.level_modulation.synthesize(self.g_s, y_hat, level)


def synthesis_inputs(model):
    """The synthesis graph's inputs, as model.json lists them."""
    return ["y_hat", "level"] if model.level_modulation is not None else ["y_hat"]


def slice_name(k):
    return f"slice_{k:02d}.onnx"


def _export(module, args, path, inputs, outputs, axes):
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(module, args, buf, opset_version=OPSET, dynamo=False,
                          input_names=inputs, output_names=outputs, dynamic_axes=axes,
                          do_constant_folding=True, export_params=True)
    import onnx
    proto = onnx.load_from_string(buf.getvalue())
    # Deterministic bytes: no producer version strings that change with the torch build,
    # no doc strings with source paths.
    proto.producer_name = "sic-lite-export"
    proto.producer_version = str(FORMAT_VERSION)
    proto.doc_string = ""
    for n in proto.graph.node:
        n.doc_string = ""
    _store_kernels_as_float16(proto.graph)
    onnx.checker.check_model(proto)
    data = proto.SerializeToString(deterministic=True)
    tmp = Path(str(path) + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def round_kernels_to_float16(model):
    """Round every convolution kernel of `model` (in place) to the nearest float16 value.

    The bundle stores kernels in float16 (`_store_kernels_as_float16`), so this is the model
    that ships; export and evaluation both call it, so figures describe the shipped weights.
    Idempotent. Biases and GDN parameters stay float32."""
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d)):
                mod.weight.copy_(mod.weight.half().float())
    return model


def _store_kernels_as_float16(graph):
    """Store each 4-D float initializer (the convolution kernels, 98 % of the bytes) as float16,
    widened back by a Cast at the head of the graph. The bundle halves; inputs, outputs and
    arithmetic stay float32 (ONNX Runtime folds the Casts when it loads the graph). The values
    must already be float16-exact (`round_kernels_to_float16`): nothing is rounded here."""
    from onnx import TensorProto, helper, numpy_helper
    wide, casts = {}, []
    for t in graph.initializer:
        if t.data_type != TensorProto.FLOAT or len(t.dims) != 4:
            continue
        a = numpy_helper.to_array(t)
        h = a.astype(np.float16)
        if not np.array_equal(h.astype(np.float32), a):
            raise ValueError(f"kernel {t.name} is not float16-exact: round_kernels_to_float16 "
                             "must run before export")
        t.CopyFrom(numpy_helper.from_array(h, t.name))
        wide[t.name] = t.name + ".f32"
        casts.append(helper.make_node("Cast", [t.name], [wide[t.name]], name=wide[t.name],
                                      to=TensorProto.FLOAT))
    for n in graph.node:
        for i, name in enumerate(n.input):
            n.input[i] = wide.get(name, name)
    nodes = casts + list(graph.node)   # the Casts first keeps the nodes topologically sorted
    del graph.node[:]
    graph.node.extend(nodes)


def export_graphs(model, out: Path):
    cfg = model.cfg
    model = model.eval().cpu()
    H = W = 128
    hw = {2: "h", 3: "w"}
    x = torch.rand(1, 3, H, W)
    y, z = model.analysis(x)
    hyper = model.h_s(torch.round(z))
    _export(AnalysisGraph(model), (x,), out / "analysis.onnx", ["x"], ["y", "z"],
            {"x": {2: "H", 3: "W"}, "y": hw, "z": {2: "hz", 3: "wz"}})
    _export(HyperSynthesisGraph(model), (torch.round(z),), out / "hyper_synthesis.onnx",
            ["z_hat"], ["hyper"], {"z_hat": {2: "hz", 3: "wz"}, "hyper": hw})
    for k, o in enumerate(cfg.offsets()):
        if k == 0:
            _export(SliceGraph(model, 0), (hyper,), out / slice_name(0), ["hyper"],
                    ["mean", "scale"], {"hyper": hw, "mean": hw, "scale": hw})
        else:
            _export(SliceGraph(model, k), (hyper, y[:, :o].contiguous()), out / slice_name(k),
                    ["hyper", "y_prev"], ["mean", "scale"],
                    {"hyper": hw, "y_prev": hw, "mean": hw, "scale": hw})
    args = (y,) if model.level_modulation is None else (y, torch.tensor([2.0]))
    _export(SynthesisGraph(model), args, out / "synthesis.onnx", synthesis_inputs(model),
            ["x_hat"], {"y_hat": hw, "x_hat": {2: "H", 3: "W"}})


def canonical_json(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def graphs_entry(cfg):
    return {"analysis": "analysis.onnx", "hyper_synthesis": "hyper_synthesis.onnx",
            "slices": [slice_name(k) for k in range(cfg.levels)], "synthesis": "synthesis.onnx"}


def compute_model_id(bundle: Path, graphs: dict, entropy: dict) -> str:
    h = hashlib.sha256()
    for f in [graphs["analysis"], graphs["hyper_synthesis"], *graphs["slices"], graphs["synthesis"]]:
        h.update((bundle / f).read_bytes())
    h.update(canonical_json(entropy))
    return h.hexdigest()[:16]


def entropy_entry(model):
    scales = y_scale_table()
    return {"precision": PRECISION,
            "z": z_tables(model.density_z, PRECISION),
            "y_scale_table": scales,
            "y": y_tables(scales, PRECISION)}


def golden_crop(path=None):
    """A real 64x64 crop from a training photo (never an evaluation photo)."""
    from PIL import Image
    from .data import default_golden_photo
    p = Path(path) if path else default_golden_photo()
    img = Image.open(p).convert("RGB")
    w, h = img.size
    left, top = (w - 64) // 2, (h - 64) // 2
    crop = np.asarray(img.crop((left, top, left + 64, top + 64)), dtype=np.float32) / 255.0
    return torch.from_numpy(crop).permute(2, 0, 1).unsqueeze(0).contiguous(), p


@torch.no_grad()
def golden_tensors(model, x, entropy):
    """Everything docs/model.md lists, computed with the coding rules at level L."""
    cfg = model.cfg
    y, z = model.analysis(x)
    zt = entropy["z"]
    med = torch.tensor([t["median"] for t in zt], dtype=torch.float32).view(1, -1, 1, 1)
    lo = torch.tensor([float(t["min"]) for t in zt]).view(1, -1, 1, 1)
    hi = torch.tensor([float(t["min"] + len(t["freqs"]) - 1) for t in zt]).view(1, -1, 1, 1)
    z_hat = torch.minimum(torch.maximum(torch.round(z - med), lo), hi) + med
    hyper = model.hyper(z_hat, y)
    scales = torch.tensor(entropy["y_scale_table"], dtype=torch.float32)
    t = {"x": x, "y": y, "z": z, "z_hat": z_hat, "hyper": hyper}
    parts = []
    for k in range(cfg.levels):
        mean, scale = model.slices[k](hyper, torch.cat(parts, 1) if parts else None)
        t[f"slice_{k:02d}.mean"] = mean
        t[f"slice_{k:02d}.scale"] = scale
        b = torch.searchsorted(scales, scale.contiguous(), right=False).clamp_max(len(scales) - 1)
        rmin = torch.tensor([float(e["min"]) for e in entropy["y"]])[b]
        rmax = torch.tensor([float(e["min"] + len(e["freqs"]) - 1) for e in entropy["y"]])[b]
        q = torch.minimum(torch.maximum(torch.round(model.slice_of(y, k) - mean), rmin), rmax)
        parts.append(q + mean)
    t["y_hat"] = torch.cat(parts, 1)
    t["x_hat"] = model.synthesize(t["y_hat"], cfg.levels)
    if model.level_modulation is not None:
        # the same latent read as if it were a level-3 fill: the modulation's rows at work
        lv = min(3, cfg.levels - 1)
        t["synthesis.level"] = torch.tensor([float(lv)])
        t["synthesis.x_hat_level"] = model.synthesize(t["y_hat"], lv)
    return t


def write_golden(out: Path, tensors: dict, source: str):
    g = out / "golden"
    g.mkdir(parents=True, exist_ok=True)
    for f in g.glob("*.bin"):
        f.unlink()
    index = {}
    for name, v in tensors.items():
        fn = name.replace(".", "_") + ".bin"
        arr = v.detach().cpu().numpy().astype("<f4", copy=False)
        (g / fn).write_bytes(np.ascontiguousarray(arr).tobytes())
        index[name] = {"file": fn, "shape": list(arr.shape)}
    (g / "golden.json").write_text(json.dumps(index, indent=1) + "\n")
    (g / "SOURCE.txt").write_text(source + "\n")


def kept_entropy(model, bundle) -> dict:
    """The integer tables of `bundle`, for a model whose entropy model is that bundle's
    (restored from it and not trained since): refused where the model's own tables differ by
    more than a fit's error (a z median off by 0.01, or another y table)."""
    old = json.loads((Path(bundle) / "model.json").read_text())["entropy"]
    own = entropy_entry(model)
    same = (old["precision"] == own["precision"] and old["y"] == own["y"]
            and old["y_scale_table"] == own["y_scale_table"] and len(old["z"]) == len(own["z"])
            and all(abs(a["median"] - b["median"]) < 0.01 for a, b in zip(old["z"], own["z"])))
    if not same:
        raise SystemExit(f"--entropy-from {bundle}: the checkpoint's entropy model is not that "
                         "bundle's (it trained since, or comes from another model)")
    return old


def export_bundle(model, out, training: dict, name="sic-lite", default_sampling="mean",
                  golden_photo=None, entropy=None):
    """Writes the bundle; `entropy`: integer tables to ship instead of the model's own
    (`kept_entropy`)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # in place, so the model the caller holds is the one shipped (golden tensors included)
    model = round_kernels_to_float16(model.eval().cpu())
    cfg = model.cfg
    export_graphs(model, out)
    entropy = entropy or entropy_entry(model)
    graphs = graphs_entry(cfg)
    meta = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "model_id": compute_model_id(out, graphs, entropy),
        "M": cfg.M, "z_channels": cfg.Cz, "hyper_channels": cfg.Ch,
        "slice_widths": list(cfg.slice_widths),
        "levels": cfg.levels,
        "pad_multiple": PAD_MULTIPLE,
        "default_sampling": default_sampling,
        "entropy": entropy,
        "graphs": graphs,
        "synthesis_inputs": synthesis_inputs(model),
        "tiling": tile_halos(model),
        "training": training,
        "architecture": cfg.to_dict(),
    }
    (out / "model.json").write_text(json.dumps(meta, indent=1) + "\n")
    x, src = golden_crop(golden_photo)
    tensors = golden_tensors(model, x, entropy)
    write_golden(out, tensors, f"64x64 centre crop of training photo {Path(src).name} "
                 "(downscaled by 2, Lanczos)")
    return meta


# ------------------------------------------------------------------------------------------
# Verification with ONNX Runtime

def _session(path):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def load_golden(bundle: Path):
    g = Path(bundle) / "golden"
    index = json.loads((g / "golden.json").read_text())
    return {k: np.fromfile(g / v["file"], dtype="<f4").reshape(v["shape"]) for k, v in index.items()}


def verify_bundle(bundle, verbose=True, extra_size=(80, 144)):
    """Run every graph on the golden inputs; return the max abs error per graph output.
    Also checks a second, non-square size for the dynamic axes and the model_id."""
    bundle = Path(bundle)
    meta = json.loads((bundle / "model.json").read_text())
    gd = load_golden(bundle)
    errs = {}

    def cmp(key, got, ref):
        e = float(np.max(np.abs(got - ref)))
        errs[key] = e
        if verbose:
            print(f"  {key:<28} max abs err {e:.3e}")

    g = meta["graphs"]
    y, z = _session(bundle / g["analysis"]).run(None, {"x": gd["x"]})
    cmp("analysis.y", y, gd["y"])
    cmp("analysis.z", z, gd["z"])
    (hyper,) = _session(bundle / g["hyper_synthesis"]).run(None, {"z_hat": gd["z_hat"]})
    cmp("hyper_synthesis.hyper", hyper, gd["hyper"])
    o = 0
    for k, (f, w) in enumerate(zip(g["slices"], meta["slice_widths"])):
        feeds = {"hyper": gd["hyper"]}
        if k:
            feeds["y_prev"] = np.ascontiguousarray(gd["y_hat"][:, :o])
        mean, scale = _session(bundle / f).run(None, feeds)
        cmp(f"slice_{k:02d}.mean", mean, gd[f"slice_{k:02d}.mean"])
        cmp(f"slice_{k:02d}.scale", scale, gd[f"slice_{k:02d}.scale"])
        assert float(scale.min()) > 0
        o += w
    level_input = "level" in meta.get("synthesis_inputs", ["y_hat"])
    syn = _session(bundle / g["synthesis"])

    def synthesis(y_hat, level):
        feeds = {"y_hat": y_hat}
        if level_input:
            feeds["level"] = np.array([level], dtype=np.float32)
        return syn.run(None, feeds)[0]

    cmp("synthesis.x_hat", synthesis(gd["y_hat"], meta["levels"]), gd["x_hat"])
    if level_input:
        lv = float(gd["synthesis.level"][0])
        cmp("synthesis.x_hat_level", synthesis(gd["y_hat"], lv), gd["synthesis.x_hat_level"])
    # dynamic shapes: a non-square size through analysis and synthesis
    Hh, Ww = extra_size
    xx = np.random.default_rng(0).random((1, 3, Hh, Ww), dtype=np.float32)
    yy, zz = _session(bundle / g["analysis"]).run(None, {"x": xx})
    assert yy.shape == (1, meta["M"], Hh // 16, Ww // 16), yy.shape
    # h_a pads y to a multiple of 4 positions itself (80 x 144 pixels: y 5 x 9, z 2 x 3)
    assert zz.shape == (1, meta["z_channels"], -(-Hh // 64), -(-Ww // 64)), zz.shape
    assert synthesis(yy, 1).shape == (1, 3, Hh, Ww)
    mid = compute_model_id(bundle, g, meta["entropy"])
    assert mid == meta["model_id"], (mid, meta["model_id"])
    # table sanity
    ent = meta["entropy"]
    for t in ent["z"] + ent["y"]:
        assert sum(t["freqs"]) == 1 << ent["precision"] and min(t["freqs"]) >= 1
    worst = max(errs.values())
    if verbose:
        print(f"  worst max abs err {worst:.3e} (limit 1e-4); model_id {mid} ok; tables ok")
    return errs


def verify_against_torch(model, bundle, verbose=True):
    """Golden tensors recomputed with the PyTorch model must match the stored ones."""
    bundle = Path(bundle)
    meta = json.loads((bundle / "model.json").read_text())
    gd = load_golden(bundle)
    t = golden_tensors(model.eval().cpu(), torch.from_numpy(gd["x"]), meta["entropy"])
    worst = max(float(np.max(np.abs(v.numpy() - gd[k]))) for k, v in t.items())
    if verbose:
        print(f"  torch vs stored golden: worst max abs err {worst:.3e}")
    return worst
