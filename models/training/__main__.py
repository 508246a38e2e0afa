"""Command line: python -m training {data,train,tune-entropy,average,export,verify,restore,evaluate,refine,refine-report}
(run from models/)."""

import argparse
import sys
from pathlib import Path

from .config import DEFAULT_BUNDLE


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)

    d = sub.add_parser("data", help="fetch and cache the training and evaluation photos")
    d.add_argument("--extra", action="store_true", help="also the photos that `train --photos "
                   "all` adds (enlightenment-data, about 400 MB to download)")

    t = sub.add_parser("train", help="train (resumes from the checkpoint if present)")
    from .train import add_train_args
    add_train_args(t)

    et = sub.add_parser("tune-entropy", help="train the entropy model alone (g_a and g_s "
                        "frozen) on latents cached once: many cheap steps")
    from .entropy_tune import add_tune_args
    add_tune_args(et)

    av = sub.add_parser("average", help="average the weights of checkpoints of one model "
                        "(no optimizer state; the record names what was averaged)")
    av.add_argument("ckpts", nargs="+", metavar="CKPT[:WEIGHT]", help="at least two; weight 1 "
                    "unless given")
    av.add_argument("--out", type=Path, required=True)

    e = sub.add_parser("export", help="export a checkpoint (or a random init) to an ONNX bundle")
    e.add_argument("--ckpt", type=Path, help="checkpoint file (default: <work>/ckpt/sic-lite.pt)")
    e.add_argument("--untrained", action="store_true", help="export a random init (seed 0)")
    e.add_argument("--out", type=Path, default=DEFAULT_BUNDLE)
    # The decoder's default; mean-filling measured better than sampling on every metric and
    # level for the shipped bundle (docs/results.md).
    e.add_argument("--sampling", default="mean", choices=["uniform", "mean"])
    e.add_argument("--no-verify", action="store_true")
    e.add_argument("--entropy-from", type=Path, default=None, metavar="BUNDLE",
                   help="keep that bundle's integer tables instead of tabulating the "
                        "checkpoint's density: for a checkpoint restored from it whose entropy "
                        "model did not train (restore fits the z density to the tables, close "
                        "but not exact), so every frame codes to the same bytes as before")

    v = sub.add_parser("verify", help="check a bundle's ONNX graphs against its golden tensors")
    v.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    v.add_argument("--ckpt", type=Path, help="also recompute the golden tensors with PyTorch")

    r = sub.add_parser("restore", help="rebuild a checkpoint from a bundle (weights exact, "
                       "z density fitted; no optimizer state)")
    r.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    r.add_argument("--out", type=Path, help="checkpoint to write (default: <work>/ckpt/sic-lite.pt)")
    r.add_argument("--force", action="store_true", help="overwrite an existing checkpoint")

    ev = sub.add_parser("evaluate", help="rate/quality per level on a folder of images")
    from .evaluate import add_eval_args
    add_eval_args(ev)

    rf = sub.add_parser("refine", help="experiment: optimise each picture's latent in the "
                        "encoder, then code it as sicenc would; rate and quality per level")
    from .refine import add_refine_args
    add_refine_args(rf)
    rr = sub.add_parser("refine-report", help="compare two `refine` CSVs (and estimate the "
                        "test's BD-rates against the classical codecs of an rd-eval run)")
    rr.add_argument("base", type=Path)
    rr.add_argument("test", type=Path)
    rr.add_argument("--points", type=Path, default=None, help="points.csv of scripts/rd-eval.sh")

    a = ap.parse_args(argv)
    import torch
    torch.set_num_threads(int(__import__("os").environ.get("SIC_THREADS", "2")))

    if a.cmd == "data":
        from .data import fetch_eval_photos, fetch_training_photos
        fetch_training_photos(extra=a.extra)
        fetch_eval_photos()
    elif a.cmd == "train":
        from .train import train
        train(a)
    elif a.cmd == "tune-entropy":
        from .entropy_tune import tune
        tune(a)
    elif a.cmd == "average":
        from .average import AverageError, average_checkpoints, parse_weighted
        from .train import atomic_save
        try:
            ck = average_checkpoints([parse_weighted(c) for c in a.ckpts])
        except AverageError as e:
            sys.exit(f"average: {e}")
        atomic_save(ck, a.out)
        print(f"wrote {a.out}: {ck['history'][-1]['averaged']}")
    elif a.cmd == "export":
        from .export import export_bundle, verify_against_torch, verify_bundle
        from .train import load_model_for_export
        model, training = load_model_for_export(a.ckpt, a.untrained)
        keep = None
        if a.entropy_from:
            from .export import kept_entropy
            keep = kept_entropy(model, a.entropy_from)
        meta = export_bundle(model, a.out, training, default_sampling=a.sampling, entropy=keep)
        print(f"exported {a.out} model_id {meta['model_id']}")
        if not a.no_verify:
            errs = verify_bundle(a.out)
            worst = max(errs.values())
            tw = verify_against_torch(model, a.out)
            if worst > 1e-4 or tw > 1e-4:
                sys.exit(f"verification FAILED: onnx {worst:.3e}, torch {tw:.3e}")
    elif a.cmd == "verify":
        from .export import verify_against_torch, verify_bundle
        errs = verify_bundle(a.bundle)
        worst = max(errs.values())
        if a.ckpt:
            from .train import load_model_for_export
            model, _ = load_model_for_export(a.ckpt, False)
            worst = max(worst, verify_against_torch(model, a.bundle))
        if worst > 1e-4:
            sys.exit(f"verification FAILED: {worst:.3e}")
    elif a.cmd == "restore":
        from .restore import BundleError, checkpoint_from_bundle
        from .train import atomic_save, default_ckpt
        out = a.out or default_ckpt()
        if out.exists() and not a.force:
            sys.exit(f"{out} exists (a checkpoint holds more than a bundle: Adam's moments); "
                     "pass --force to replace it")
        try:
            ck = checkpoint_from_bundle(a.bundle)
        except BundleError as e:
            sys.exit(f"restore: {e}")
        atomic_save(ck, out)
        print(f"wrote {out}")
    elif a.cmd == "evaluate":
        from .evaluate import evaluate
        evaluate(a)
    elif a.cmd == "refine":
        from .refine import run
        run(a)
    elif a.cmd == "refine-report":
        from .refine import report
        report(a)


if __name__ == "__main__":
    main()
