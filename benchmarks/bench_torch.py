"""PyTorch reference for ``python -m convmixer bench``: the same ConvMixer's training speed in PyTorch.

Usage (PyTorch is not a dependency of this project; install it in any environment):
    python benchmarks/bench_torch.py --width 64 --depth 4 --patch-size 2 --kernel-size 9 --batch-size 128
    python benchmarks/bench_torch.py ... --channels-last [--compile]

The model is the paper's ConvMixer (Conv2d patch embedding, GELU, BatchNorm;
blocks of a residual depthwise convolution and a 1x1 convolution, each followed
by GELU and BatchNorm; average pooling and a linear head), trained with AdamW
and cross-entropy on random images, as ``bench``'s ``memory`` case does: same
batch size, warm-up window, then the median of timed windows. Prints one
Markdown table row.
"""

import argparse
import statistics
import time


def convmixer(width, depth, patch_size, kernel_size, num_classes=10):
    from torch import nn

    class Residual(nn.Module):
        def __init__(self, fn):
            super().__init__()
            self.fn = fn

        def forward(self, x):
            return self.fn(x) + x

    return nn.Sequential(
        nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size), nn.GELU(), nn.BatchNorm2d(width),
        *[nn.Sequential(
            Residual(nn.Sequential(nn.Conv2d(width, width, kernel_size, groups=width, padding="same"),
                                   nn.GELU(), nn.BatchNorm2d(width))),
            nn.Conv2d(width, width, kernel_size=1), nn.GELU(), nn.BatchNorm2d(width))
          for _ in range(depth)],
        nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(width, num_classes))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--depth", type=int, default=8)
    p.add_argument("--patch-size", type=int, default=2)
    p.add_argument("--kernel-size", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--window-batches", type=int, default=4)
    p.add_argument("--windows", type=int, default=3)
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (Inductor, C++ on the CPU)")
    a = p.parse_args()

    import torch

    torch.manual_seed(0)
    model = convmixer(a.width, a.depth, a.patch_size, a.kernel_size)
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.001, weight_decay=0.01)
    forward = torch.compile(model) if a.compile else model
    loss_fn = torch.nn.CrossEntropyLoss()
    x = (torch.rand(a.batch_size, 3, 32, 32) * 255).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (a.batch_size,))

    def window():
        for _ in range(a.window_batches):
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(forward(x / 255.0), y)
            loss.backward()
            optimizer.step()

    window()  # warm-up
    rates = []
    for _ in range(a.windows):
        start = time.perf_counter()
        window()
        rates.append(a.window_batches * a.batch_size / (time.perf_counter() - start))
    layout = ("channels_last" if a.channels_last else "contiguous (NCHW)") + (", torch.compile" if a.compile else "")
    print(f"| PyTorch {torch.__version__} {layout}, {torch.get_num_threads()} threads | "
          f"{statistics.median(rates):.1f} | {min(rates):.1f}-{max(rates):.1f} |")


if __name__ == "__main__":
    main()
