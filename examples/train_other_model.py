"""Train a separator of your own on a corpus, through ensemble_synth's PyTorch dataset.

``ensemble_synth.torch.CorpusDataset`` gives ``(mixture, sources)`` examples (the bundled
trainer's: random segments, remixed across tracks with probability ``--remix``) to a plain
``torch.utils.data.DataLoader`` with worker processes; ``set_epoch`` draws new segments each
epoch, the same ones for the same seed. The model is not the bundled ConvTasNet: a small
mask network on the STFT (two 1-d convolutions over time, one sigmoid mask per output),
written here as any user of the dataset would write theirs. (asteroid's ConvTasNet would be
the obvious one to take, but asteroid imports torchaudio, whose library does not load beside
torch 2.13, and torchaudio's own ConvTasNet fails the same way.)

    python examples/train_other_model.py CORPUS --steps 2000 --segment-seconds 2 -o mask_net.pt
    python examples/train_other_model.py CORPUS --target violin    # violin vs accompaniment
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from ensemble_synth import UserError
from ensemble_synth.torch import CorpusDataset


class MaskNet(nn.Module):
    """STFT masks: log magnitudes of every channel in, one mask per output and channel out."""

    def __init__(self, outputs: int, channels: int, n_fft: int = 512, hop: int = 128, hidden: int = 256):
        super().__init__()
        self.outputs, self.channels, self.n_fft, self.hop = outputs, channels, n_fft, hop
        self.bins = n_fft // 2 + 1
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.net = nn.Sequential(
            nn.Conv1d(self.bins * channels, hidden, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.Conv1d(hidden, self.bins * channels * outputs, kernel_size=5, padding=2),
        )

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        """(batch, channels, samples) -> (batch, outputs, channels, samples)."""
        batch, channels, samples = mixture.shape
        spec = torch.stft(mixture.reshape(batch * channels, samples), self.n_fft, self.hop, window=self.window,
                          return_complex=True)  # (batch * channels, bins, frames)
        frames = spec.shape[-1]
        features = torch.log1p(spec.abs()).reshape(batch, channels * self.bins, frames)
        masks = torch.sigmoid(self.net(features)).reshape(batch, self.outputs, channels, self.bins, frames)
        masked = masks * spec.reshape(batch, 1, channels, self.bins, frames)
        audio = torch.istft(masked.reshape(-1, self.bins, frames), self.n_fft, self.hop, window=self.window,
                            length=samples)
        return audio.reshape(batch, self.outputs, channels, samples)


def sdr_loss(estimates: torch.Tensor, sources: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Negative SDR (dB) per output, averaged; a silent source asks for a silent estimate."""
    signal = sources.pow(2).sum(dim=(-2, -1))
    error = (sources - estimates).pow(2).sum(dim=(-2, -1))
    return -(10 * torch.log10((signal + eps) / (error + eps))).mean()


@torch.no_grad()
def validate(model: nn.Module, data: CorpusDataset, batch_size: int) -> tuple[float, float]:
    """Mean SDR (dB) of the estimates and of the mixture / outputs, over the non-silent sources."""
    model.eval()
    ours, baseline = [], []
    for mixture, sources in DataLoader(data, batch_size=batch_size):
        energy = sources.pow(2).sum(dim=(-2, -1))
        for estimate, out in ((model(mixture), ours), (mixture[:, None].expand_as(sources) / sources.shape[1], baseline)):
            error = (sources - estimate).pow(2).sum(dim=(-2, -1))
            out.extend((10 * torch.log10(energy / error))[energy > 0].tolist())
    model.train()
    return sum(ours) / max(1, len(ours)), sum(baseline) / max(1, len(baseline))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--segment-seconds", type=float, default=2.0)
    parser.add_argument("--sample-rate", type=int, default=None, help="default: the corpus's")
    parser.add_argument("--remix", type=float, default=0.5)
    parser.add_argument("--target", default=None, help="an instrument: train target vs accompaniment")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--out", type=Path, help="save the trained weights here")
    args = parser.parse_args()

    try:
        train = CorpusDataset(args.corpus, segment_seconds=args.segment_seconds, sample_rate=args.sample_rate,
                              remix=args.remix, target=args.target, split="train", seed=args.seed)
        try:
            valid = CorpusDataset(args.corpus, segment_seconds=args.segment_seconds, sample_rate=train.sample_rate,
                                  target=args.target, split="valid", examples=16)
        except UserError as exc:
            print(f"no validation: {exc}")
            valid = None
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(train)

    torch.manual_seed(args.seed)
    model = MaskNet(len(train.output_names), train.channels)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    shuffle = torch.Generator().manual_seed(args.seed)
    loader = DataLoader(train, batch_size=args.batch_size, shuffle=True, generator=shuffle, drop_last=True,
                        num_workers=args.workers)
    step, started = 0, time.monotonic()
    for epoch in itertools.count():
        train.set_epoch(epoch)  # before the loader starts its workers for the epoch
        for mixture, sources in loader:
            loss = sdr_loss(model(mixture), sources)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            if step == 1 or step % 50 == 0 or step == args.steps:
                print(f"step {step} (epoch {epoch}): loss {loss.item():.3f} "
                      f"({time.monotonic() - started:.1f} s)", flush=True)
            if step >= args.steps:
                break
        if step >= args.steps:
            break
    if valid is not None:
        sdr, baseline = validate(model, valid, args.batch_size)
        print(f"valid: SDR {sdr:.2f} dB over {len(valid)} segments ({', '.join(train.output_names)}); "
              f"the mixture as every output: {baseline:.2f} dB")
    if args.out is not None:
        torch.save({"state_dict": model.state_dict(), "outputs": list(train.output_names),
                    "sample_rate": train.sample_rate}, args.out)
        print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
