import argparse
import datetime
import os
import shlex
import sys
import time
from pathlib import Path

import torch

from . import report, run


def main(argv=None):
    repo = Path(__file__).resolve().parents[2]
    ap = argparse.ArgumentParser(prog="python -m evaluation",
                                 description="Rate-distortion-perception evaluation (SIC vs classical codecs)")
    ap.add_argument("--quick", action="store_true", help="2 photos, fewer settings")
    ap.add_argument("--out", help="output folder (CSV, bitstreams); default out/rd, "
                    "with --quick out/rd-quick")
    ap.add_argument("--docs", help="where results.md and results/ go; default docs/, with --quick "
                    "the --out folder (a quick run never overwrites docs/results.md)")
    ap.add_argument("--work", default=os.environ.get("SIC_WORK", str(Path.home() / ".cache" / "sic")))
    ap.add_argument("--model", default=str(repo / "models" / "sic-lite"), help="SIC model bundle")
    ap.add_argument("--images", type=lambda s: s.split(","), help="comma-separated subset")
    ap.add_argument("--codecs", type=lambda s: s.split(","),
                    help="subset of jpeg,webp,x264,x265,jpeg2000,sic")
    ap.add_argument("--sic-levels", help="comma-separated levels (default: all)")
    ap.add_argument("--no-sic", action="store_true", help="classical codecs only")
    ap.add_argument("--seed", type=int, default=1, help="sicdec seed for sampled decodes")
    ap.add_argument("--sic-rdo-lambda", type=float, default=None,
                    help="sicenc rdo-lambda (default: the element's default)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads for the metrics")
    ap.add_argument("--reuse", action="store_true",
                    help="keep classical-codec points of the previous run in --out (same settings)")
    ap.add_argument("--report-only", action="store_true", help="rebuild the report from the CSV")
    ap.add_argument("--command", help="command line to print in results.md")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    if args.out is None:
        args.out = str(repo / "out" / ("rd-quick" if args.quick else "rd"))
    if args.docs is None:
        args.docs = args.out if args.quick else str(repo / "docs")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    docs = Path(args.docs).resolve()
    model_dir = Path(args.model).resolve()
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    t0 = time.time()

    def log(msg):
        print(msg, flush=True)

    import json
    if args.report_only:
        rows = run.read_csv(out / "points.csv")
        meta = json.loads((out / "run.json").read_text())
        seconds = meta.get("seconds", 0.0)
        started = meta.get("started", started)
    else:
        rows, meta = run.evaluate(args, repo, model_dir, out, log)
        seconds = time.time() - t0
        meta["seconds"] = seconds
        meta["started"] = started
        (out / "run.json").write_text(json.dumps(meta, indent=1))
    command = args.command or meta.get("command") or (
        "scripts/rd-eval.sh" + (" --quick" if meta["quick"] else ""))
    if not args.report_only:
        meta["command"] = command
        (out / "run.json").write_text(json.dumps(meta, indent=1))
    md = report.write_results(rows, meta, repo, model_dir, docs, command, out, started, seconds)
    log(f"wrote {out / 'points.csv'} and {md}")
    if meta["problems"]:
        log("problems:\n  " + "\n  ".join(meta["problems"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
