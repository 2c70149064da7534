"""Encoder choice: parameters, weight size (fp16) and CPU speed of candidate U-Net encoders.

    .venv/bin/python bench/bench_encoders.py [--size 256] [--batch 8]

Prints, per encoder: params (M), fp16 weight MB, median train step (s) and median inference
(ms, batch 1) with bf16 autocast + channels_last, measured in one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from model.nets.unet import DermSevNet, NetConfig  # noqa: E402

CANDIDATES = ["resnet18", "resnet34", "mobilenet_v2", "efficientnet-b0", "tu-mobilenetv3_large_100",
              "tu-mobilenetv3_small_100", "tu-resnet10t"]


def median_time(fn, repeats: int) -> float:
    fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--encoders", nargs="*", default=CANDIDATES)
    a = ap.parse_args()
    torch.manual_seed(0)
    print(f"{'encoder':28s} {'params M':>8s} {'fp16 MB':>8s} {'train s/step':>12s} {'infer ms':>9s} {'fp32 infer ms':>13s}")
    for enc in a.encoders:
        try:
            net = DermSevNet(NetConfig(encoder=enc)).to(memory_format=torch.channels_last)
        except Exception as exc:  # an encoder missing from this timm/smp
            print(f"{enc:28s} unavailable: {exc.__class__.__name__}")
            continue
        n = sum(p.numel() for p in net.parameters())
        opt = torch.optim.AdamW(net.parameters(), 1e-3)
        x = torch.rand(a.batch, 3, a.size, a.size).contiguous(memory_format=torch.channels_last)
        y = torch.rand(a.batch, 4, a.size, a.size) * 3

        def step(net=net, x=x, y=y, opt=opt):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = (net(x) - y).abs().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()

        def infer(bf16=True, net=net, x=x):
            with torch.inference_mode():
                if bf16:
                    with torch.autocast("cpu", dtype=torch.bfloat16):
                        net(x[:1])
                else:
                    net(x[:1].contiguous())

        net.train()
        t_train = median_time(step, a.repeats)
        net.eval()
        t_inf = median_time(infer, a.repeats * 2)
        t_fp32 = median_time(lambda: infer(False), a.repeats * 2)
        print(f"{enc:28s} {n / 1e6:8.2f} {2 * n / 1e6:8.1f} {t_train:12.3f} {1000 * t_inf:9.1f} {1000 * t_fp32:13.1f}")


if __name__ == "__main__":
    main()
