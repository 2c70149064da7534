"""`dermsev train DATASET --out MODEL_DIR`: flags override a --config file, which overrides TrainConfig's defaults."""

from __future__ import annotations

# TrainConfig fields that have a flag (the rest are set in a --config file)
FLAGS = ["epochs", "max_minutes", "image_size", "crop_size", "encoder", "batch_size", "folds", "seed", "lr",
         "supervision", "mil_pool", "augment", "film", "mixing", "precision", "half_weights"]


def add_parser(sub) -> None:
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


def run(args) -> None:
    from model.training.train import TrainConfig, train

    overrides = {k: getattr(args, k) for k in FLAGS if getattr(args, k) is not None}
    cfg = TrainConfig.from_file(args.config, **overrides) if args.config else TrainConfig(**overrides)
    summary = train(args.dataset, args.out, cfg, resume=args.resume, progress=not args.quiet)
    m = summary["val_metrics"].get("mean", {})
    print(f"wrote {args.out} (best epoch {summary['best_epoch']}, val pixel_mae {m.get('pixel_mae')}, "
          f"image_mae {m.get('image_mae')}, qwk {m.get('qwk')})")
