"""Training images per second of architectures on this machine, fp32 against bf16 autocast, before choosing one.

One optimizer step (SGD, cross-entropy, channels_last) on a random batch, repeated; the best of the timed steps
after a warm-up step, for each architecture (a preset or timm name) and precision::

    python -m fer_edge.benchmarks.train_speed vgg cnn-fast --out benchmarks/results/train-speed

bf16 pays on CPUs with AVX-512 BF16 or AMX and is slower than fp32 on AVX2-only ones: measure, then pass
``--amp`` or ``--no-amp`` to ``fer-edge train``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def images_per_second(arch: str, amp: bool, batch: int = 128, steps: int = 4, threads: int = 2,
                      input_size: int | None = None) -> float:
    """Best-of-``steps`` training images per second of ``arch`` (after one warm-up step)."""
    import torch

    from fer_edge.train.models import build_model, model_kwargs_for

    torch.set_num_threads(threads)
    kw = model_kwargs_for(arch, 7, 1, input_size)
    size = kw.get("img_size") or input_size or 48
    model = build_model(kw).to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 1, size, size).to(memory_format=torch.channels_last)
    y = torch.randint(0, 7, (batch,))
    times = []
    for _ in range(steps + 1):
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    return batch / min(times[1:])


def main(argv: list[str] | None = None) -> int:
    from fer_edge.machine import machine_summary

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("archs", nargs="+", help="presets (vgg, cnn-fast, ...) or timm names")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--input-size", type=int, default=None, help="square input side (default: each preset's, else 48)")
    ap.add_argument("--out", default=None, help="folder for train_speed.{md,json}")
    args = ap.parse_args(argv)
    m = machine_summary(args.threads)
    rows = []
    for arch in args.archs:
        fp32, bf16 = (images_per_second(arch, amp, args.batch_size, args.steps, args.threads, args.input_size)
                      for amp in (False, True))
        rows.append({"arch": arch, "fp32_img_s": fp32, "bf16_img_s": bf16})
        print(f"{arch}: fp32 {fp32:.0f} img/s, bf16 {bf16:.0f} img/s", flush=True)
    lines = ["# Training speed (one SGD step, channels_last, best of the timed steps)", "",
             f"- command: `python -m fer_edge.benchmarks.train_speed {' '.join(argv or sys.argv[1:])}`",
             f"- machine: {m['cpu']}, {m['cores']} cores, {args.threads} threads; ISA: {m['isa']}",
             f"- batch {args.batch_size}, {args.steps} timed steps after one warm-up, 1-channel input at "
             + (f"{args.input_size} px" if args.input_size else "each preset's size (48 px for timm names)"), "",
             "| architecture | fp32 img/s | bf16 autocast img/s | bf16 / fp32 |", "| --- | ---: | ---: | ---: |"]
    for r in rows:
        fp32, bf16 = r["fp32_img_s"], r["bf16_img_s"]
        lines.append(f"| {r['arch']} | {fp32:.0f} | {bf16:.0f} | {bf16 / fp32:.2f}x |")
    print("\n".join(lines))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_speed.json").write_text(json.dumps({"machine": m, "rows": rows}, indent=1) + "\n")
        (out / "train_speed.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
