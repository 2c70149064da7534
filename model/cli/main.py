"""`dermsev`: synth, train, evaluate, predict, explain, export, bench.

Bad input ends with exit status 2 and one line on stderr, never a traceback
(set DERMSEV_DEBUG=1 to see one).
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dermsev", description="Score skin disease severity from photographs, sign by sign.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("synth", help="write a synthetic skin dataset")
    s.add_argument("out")
    s.add_argument("--n", type=int, default=200)
    s.add_argument("--size", type=int, default=256)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--channels", type=int, default=3)
    s.add_argument("--image-level-only", action="store_true")

    t = sub.add_parser("train", help="train a model on a dataset, write MODEL_DIR")
    t.add_argument("dataset")
    t.add_argument("--out", required=True)
    t.add_argument("--config", help="YAML/JSON file of training settings (flags win)")
    for flag, typ in [("--epochs", int), ("--max-minutes", float), ("--image-size", int), ("--crop-size", int), ("--encoder", str),
                      ("--batch-size", int), ("--folds", int), ("--seed", int), ("--lr", float)]:
        t.add_argument(flag, type=typ)
    t.add_argument("--supervision", choices=["auto", "pixel", "image"])
    t.add_argument("--mil-pool", choices=["mean", "max", "lse", "noisy-and"])
    t.add_argument("--augment", choices=["none", "geometric", "full"])
    t.add_argument("--film", choices=["none", "deepest", "all"])
    t.add_argument("--mixing", choices=["auto", "on", "off"])
    t.add_argument("--precision", choices=["auto", "fp32", "bf16"])
    t.add_argument("--half-weights", action="store_true", default=None, help="store weights as float16")
    t.add_argument("--resume", action="store_true", help="continue a killed run from its checkpoint")
    t.add_argument("--quiet", action="store_true")

    e = sub.add_parser("evaluate", help="metrics of MODEL_DIR on a dataset split")
    e.add_argument("model_dir")
    e.add_argument("dataset")
    e.add_argument("--split", default="test", choices=["test", "val", "train", "all"])
    e.add_argument("--json", dest="json_out")
    e.add_argument("--seed", type=int, help="split seed when the manifest has no split column "
                   "(default: the seed the model was trained with)")

    pr = sub.add_parser("predict", help="score images")
    pr.add_argument("model_dir", help="MODEL_DIR, or 'demo' for the bundled model")
    pr.add_argument("images", nargs="+", help="image files or folders")
    pr.add_argument("--age", type=float)
    pr.add_argument("--sex", type=str.upper, choices=["F", "M"])
    pr.add_argument("--out", help="FILE.csv or FILE.json (default: a table on stdout)")
    pr.add_argument("--maps", help="folder for per-sign severity map PNGs")
    pr.add_argument("--tta", action="store_true", help="report a score range under test-time augmentation")
    pr.add_argument("--backend", default="auto", choices=["auto", "torch-fp32", "torch-bf16", "onnx"])

    x = sub.add_parser("explain", help="channel importance and saliency maps")
    x.add_argument("model_dir")
    x.add_argument("images", nargs="*")
    x.add_argument("--json", dest="json_out")
    x.add_argument("--maps", help="folder for saliency PNGs")
    x.add_argument("--method", default="gradient", choices=["gradient", "jacobian"])
    x.add_argument("--dataset", help="a dataset for the ablation importance (its val split)")
    x.add_argument("--probe", action="store_true",
                   help="with --dataset: also what each channel carries on its own (trains a small probe per channel)")
    x.add_argument("--probe-steps", type=int, default=300, help="training steps per probe (default 300)")

    ex = sub.add_parser("export", help="write MODEL_DIR/model.onnx")
    ex.add_argument("model_dir")

    b = sub.add_parser("bench", help="latency and throughput")
    b.add_argument("model_dir")
    b.add_argument("--json", dest="json_out")
    b.add_argument("--repeats", type=int, default=10)
    return p


def _resolve_model(path: str | None):
    from model.nets.modeldir import DEMO_DIR

    return DEMO_DIR if path in (None, "demo") else path


def run(args: argparse.Namespace) -> int:
    if args.command == "synth":
        from model.synth.generator import generate

        path = generate(args.out, n=args.n, size=args.size, seed=args.seed, channels=args.channels,
                        image_level_only=args.image_level_only, progress=True)
        print(f"wrote {args.n} images to {path}")
    elif args.command == "train":
        from model.training.train import TrainConfig, train

        names = ["epochs", "max_minutes", "image_size", "crop_size", "encoder", "batch_size", "folds", "seed", "lr",
                 "supervision", "mil_pool", "augment", "film", "mixing", "precision", "half_weights"]
        overrides = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
        cfg = TrainConfig.from_file(args.config, **overrides) if args.config else TrainConfig(**overrides)
        summary = train(args.dataset, args.out, cfg, resume=args.resume, progress=not args.quiet)
        m = summary["val_metrics"].get("mean", {})
        print(f"wrote {args.out} (best epoch {summary['best_epoch']}, val pixel_mae {m.get('pixel_mae')}, "
              f"image_mae {m.get('image_mae')}, qwk {m.get('qwk')})")
    elif args.command == "evaluate":
        from model.scoring.evaluate import evaluate_cli

        evaluate_cli(_resolve_model(args.model_dir), args.dataset, args.split, args.json_out, args.seed)
    elif args.command == "predict":
        from model.cli.predict import predict_cli

        predict_cli(_resolve_model(args.model_dir), args.images, age=args.age, sex=args.sex, out=args.out,
                    maps=args.maps, tta=args.tta, backend=args.backend)
    elif args.command == "explain":
        from model.cli.explain import explain_cli

        explain_cli(_resolve_model(args.model_dir), args.images, json_out=args.json_out, maps=args.maps,
                    method=args.method, dataset=args.dataset, probe=args.probe,
                    probe_steps=args.probe_steps)
    elif args.command == "export":
        from model.inference.export import export_onnx

        path = export_onnx(_resolve_model(args.model_dir))
        print(f"wrote {path}")
    elif args.command == "bench":
        from model.inference.bench import bench_cli

        bench_cli(_resolve_model(args.model_dir), json_out=args.json_out, repeats=args.repeats)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from model.errors import DermsevError

    try:
        return run(args)
    except DermsevError as exc:
        print(f"dermsev {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dermsev {args.command}: interrupted", file=sys.stderr)
        return 130
    except (OSError, MemoryError) as exc:
        if os.environ.get("DERMSEV_DEBUG"):
            raise
        print(f"dermsev {args.command}: error: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
