"""`dermsev train DATASET --out MODEL_DIR`: flags override a --config file, which overrides TrainConfig's defaults."""

from __future__ import annotations

# TrainConfig fields that have a flag (the rest are set in a --config file)
FLAGS = ["epochs", "max_minutes", "image_size", "crop_size", "encoder", "batch_size", "folds", "seed", "lr",
         "lr_schedule", "supervision", "mil_pool", "augment", "white_balance", "normalise_exposure", "film", "mixing", "precision", "half_weights", "sync_batchnorm"]


def add_parser(sub) -> None:
    t = sub.add_parser("train", help="train a model on a dataset, write MODEL_DIR")
    t.add_argument("dataset")
    t.add_argument("--out", required=True)
    t.add_argument("--config", help="YAML/JSON file of training settings (flags win)")
    for flag, typ in [("--epochs", int), ("--max-minutes", float), ("--image-size", int), ("--crop-size", int), ("--encoder", str),
                      ("--batch-size", int), ("--folds", int), ("--seed", int), ("--lr", float)]:
        t.add_argument(flag, type=typ)
    t.add_argument("--lr-schedule", choices=["cosine", "constant", "wsd"],
                   help="after the warm-up: cosine to 0, constant, or wsd (constant, then linear to 0 over the last fifth)")
    t.add_argument("--supervision", choices=["auto", "pixel", "image"])
    t.add_argument("--mil-pool", choices=["mean", "max", "lse", "noisy-and"])
    t.add_argument("--augment", choices=["none", "flips", "geometric", "full", "photo"])
    t.add_argument("--white-balance", choices=["none", "grey-world"],
                   help="balance the training photos as predict does by default (grey-world); default none")
    t.add_argument("--normalise-exposure", action="store_true", default=None,
                   help="with --white-balance grey-world: also bring every photo's exposure to the training "
                        "photos' median, here and when the model predicts")
    t.add_argument("--film", choices=["none", "deepest", "all"])
    t.add_argument("--mixing", choices=["auto", "on", "off"])
    t.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], help="fp16: CUDA only, with a grad scaler")
    t.add_argument("--half-weights", action="store_true", default=None, help="store weights as float16")
    t.add_argument("--resume", action="store_true", help="continue a killed run from its checkpoint")
    t.add_argument("--quiet", action="store_true")
    d = t.add_argument_group("distributed (torchrun, DistributedDataParallel; --batch-size is the global batch)")
    d.add_argument("--nproc", type=int, help="train with N processes on this node (launches torchrun)")
    d.add_argument("--nnodes", type=int, default=1, help="machines in the job (each runs the same command)")
    d.add_argument("--rdzv-endpoint", help="HOST:PORT of one node, where the nodes meet (--nnodes > 1)")
    d.add_argument("--rdzv-id", default="dermsev", help="job name shared by the nodes of one job")
    d.add_argument("--sync-batchnorm", action="store_true", default=None, help="SyncBatchNorm across GPUs (CUDA only)")


def worker_args(args) -> list[str]:
    """This command line for each torchrun worker: everything but the launcher's flags."""
    out = ["train", args.dataset, "--out", args.out]
    if args.config:
        out += ["--config", args.config]
    for k in FLAGS:
        v = getattr(args, k)
        if v is True:
            out.append("--" + k.replace("_", "-"))
        elif v is not None and v is not False:
            out += ["--" + k.replace("_", "-"), str(v)]
    return out + ["--resume"] * args.resume + ["--quiet"] * args.quiet


def run(args) -> None:
    from model.training import distributed
    from model.training.train import TrainConfig, train

    overrides = {k: getattr(args, k) for k in FLAGS if getattr(args, k) is not None}
    cfg = TrainConfig.from_file(args.config, **overrides) if args.config else TrainConfig(**overrides)
    if args.nproc is not None and not distributed.launched():  # bad settings fail here, before any worker starts
        distributed.check_batch(cfg.batch_size, distributed.Dist(world=max(1, args.nproc * args.nnodes)))
        from model.training.launch import launch

        launch(worker_args(args), args.nproc, args.nnodes, args.rdzv_endpoint, args.rdzv_id, out=args.out)
        return
    dist = distributed.setup() if distributed.launched() else None
    try:
        with distributed.peers_lost_as_error(dist):
            summary = train(args.dataset, args.out, cfg, resume=args.resume, progress=not args.quiet, dist=dist)
    finally:
        distributed.teardown(dist)
    if dist is not None and not dist.is_main:
        return
    m = summary["val_metrics"].get("mean", {})
    print(f"wrote {args.out} (best epoch {summary['best_epoch']}, val pixel_mae {m.get('pixel_mae')}, "
          f"image_mae {m.get('image_mae')}, qwk {m.get('qwk')})")
