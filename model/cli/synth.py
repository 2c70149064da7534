"""`dermsev synth OUT`: write a synthetic skin dataset in the SPEC layout."""

from __future__ import annotations


def add_parser(sub) -> None:
    s = sub.add_parser("synth", help="write a synthetic skin dataset")
    s.add_argument("out")
    s.add_argument("--n", type=int, default=200)
    s.add_argument("--size", type=int, default=256)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--channels", type=int, default=3)
    s.add_argument("--image-level-only", action="store_true")
    s.add_argument(
        "--confounders",
        type=float,
        default=0.0,
        metavar="P",
        help="chance (0..1) that an image also shows healthy look-alikes with every sign mask 0: "
        "a mouth, nostrils, an eyebrow or hairline, moles, a ruler or sticker (default 0: "
        "the same files as without it)",
    )
    s.add_argument(
        "--relight",
        type=float,
        default=0.0,
        metavar="P",
        help="chance (0..1) that an image is also in soft shade somewhere in the frame, not only "
        "toward its edge (default 0: the same files as without it)",
    )


def run(args) -> None:
    from model.synth.generator import generate

    path = generate(
        args.out,
        n=args.n,
        size=args.size,
        seed=args.seed,
        channels=args.channels,
        image_level_only=args.image_level_only,
        progress=True,
        confounders=args.confounders,
        relight=args.relight,
    )
    print(f"wrote {args.n} images to {path}")
