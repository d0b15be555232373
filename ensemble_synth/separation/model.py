"""ConvTasNet (Luo & Mesgarani, 2019): learned encoder, TCN mask estimator, learned decoder.

Causal models use cumulative layer norm and left-padded convolutions; their only look-ahead
is the encoder window itself (L samples), as in the paper. Non-causal models use global
layer norm, written as ``nn.GroupNorm(1, C)`` (one group = statistics over channels and
time), which is much faster on CPU than a hand-written mean/var.

A score-conditioned model (``score_features > 0``) also reads the score as a roll
``(batch, sources, score_features, roll frames)`` spanning the mixture (:mod:`.score_roll`):
each encoder frame takes the roll frame that holds its centre, a 1x1 convolution maps the
``sources * score_features`` rows to the bottleneck's B channels, and the result is added to
the bottleneck's output before the TCN. That convolution starts at zero, so a conditioned
model made from an unconditioned one's weights separates exactly as it did until trained.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CumulativeLayerNorm(nn.Module):
    """cLN: at frame t, normalise with the mean and variance of all channels over frames 0..t."""

    def __init__(self, channels: int, eps: float = 1e-8):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(1, channels, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        channels, frames = x.shape[1], x.shape[2]
        count = torch.arange(1, frames + 1, device=x.device, dtype=x.dtype) * channels
        cum_sum = torch.cumsum(x.sum(1, keepdim=True), dim=2)
        cum_pow = torch.cumsum(x.pow(2).sum(1, keepdim=True), dim=2)
        mean = cum_sum / count
        var = (cum_pow / count - mean.pow(2)).clamp_min(0.0)
        out = (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias
        return out.to(dtype)


class ChannelLayerNorm(nn.Module):
    """Per-frame layer norm over channels (no memory across time; chunking-exact)."""

    def __init__(self, channels: int, eps: float = 1e-8):
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


def make_norm(kind: str, channels: int) -> nn.Module:
    if kind == "gLN":
        return nn.GroupNorm(1, channels, eps=1e-8)
    if kind == "cLN":
        return CumulativeLayerNorm(channels)
    if kind == "chanLN":
        return ChannelLayerNorm(channels)
    raise ValueError(f"unknown norm {kind!r}")


class TemporalBlock(nn.Module):
    """1x1 conv -> PReLU -> norm -> dilated depthwise conv -> PReLU -> norm -> residual & skip."""

    def __init__(self, B: int, H: int, P: int, dilation: int, skip: int, norm: str, causal: bool,
                 residual: bool = True):
        super().__init__()
        self.causal = causal
        self.pad = (P - 1) * dilation
        self.expand = nn.Conv1d(B, H, 1)
        self.act1 = nn.PReLU()
        self.norm1 = make_norm(norm, H)
        self.depthwise = nn.Conv1d(H, H, P, dilation=dilation, groups=H,
                                   padding=0 if causal else self.pad // 2)
        self.act2 = nn.PReLU()
        self.norm2 = make_norm(norm, H)
        # The last block's residual output would never be used, so it has none.
        self.residual = nn.Conv1d(H, B, 1) if residual else None
        self.skip = nn.Conv1d(H, skip, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        y = self.norm1(self.act1(self.expand(x)))
        if self.causal:
            y = F.pad(y, (self.pad, 0))
        y = self.norm2(self.act2(self.depthwise(y)))
        if self.residual is None:
            return None, self.skip(y)
        return x + self.residual(y), self.skip(y)


class ConvTasNet(nn.Module):
    """Separates ``(batch, channels, samples)`` into ``(batch, sources, channels, samples)``."""

    def __init__(self, sources: int, channels: int = 1, N: int = 256, L: int = 20, B: int = 256,
                 H: int = 512, P: int = 3, X: int = 8, R: int = 3, skip_channels: int = 0,
                 norm: str = "gLN", causal: bool = False, mask: str = "relu", sample_rate: int = 16000,
                 score_features: int = 0, stride: int = 0):
        super().__init__()
        if P % 2 == 0 and not causal:
            raise ValueError("P must be odd for a non-causal model (symmetric padding)")
        self.sources, self.channels, self.N, self.L = sources, channels, N, L
        self.sample_rate = sample_rate
        self.stride = stride or L // 2
        self.mask_kind = mask
        skip = skip_channels or B
        self.encoder = nn.Conv1d(channels, N, L, stride=self.stride, bias=False)
        self.in_norm = make_norm(norm, N)
        self.bottleneck = nn.Conv1d(N, B, 1)
        self.score_features = score_features
        if score_features:  # absent otherwise: an unconditioned model's weights are what they always were
            self.score_proj = nn.Conv1d(sources * score_features, B, 1)
            nn.init.zeros_(self.score_proj.weight)
            nn.init.zeros_(self.score_proj.bias)
        self.blocks = nn.ModuleList(
            TemporalBlock(B, H, P, 2 ** x, skip, norm, causal, residual=(r, x) != (R - 1, X - 1))
            for r in range(R) for x in range(X))
        self.out_act = nn.PReLU()
        self.mask_conv = nn.Conv1d(skip, sources * N, 1)
        self.decoder = nn.ConvTranspose1d(N, channels, L, stride=self.stride, bias=False)

    def _mask(self, logits: torch.Tensor) -> torch.Tensor:
        if self.mask_kind == "relu":
            return F.relu(logits)
        if self.mask_kind == "sigmoid":
            return torch.sigmoid(logits)
        return torch.softmax(logits, dim=1)

    def score_at_frames(self, score: torch.Tensor, frames: int, length: int) -> torch.Tensor:
        """The roll ``(batch, sources[, features], roll frames)`` spanning ``length`` samples, as
        ``(batch, sources * features, frames)``: each encoder frame takes the roll frame holding its centre."""
        score = score.reshape(score.shape[0], -1, score.shape[-1])
        expected = self.sources * self.score_features
        if score.shape[1] != expected:
            raise ValueError(f"score has {score.shape[1]} rows; the model reads {self.sources} sources x "
                             f"{self.score_features} features = {expected}")
        roll_frames = score.shape[-1]
        centres = torch.arange(frames, device=score.device) * self.stride + self.L // 2
        index = (centres * roll_frames // max(1, length)).clamp(0, roll_frames - 1)
        return score.index_select(2, index).to(self.score_proj.weight.dtype)

    def forward(self, mixture: torch.Tensor, score: torch.Tensor | None = None) -> torch.Tensor:
        batch, _, length = mixture.shape
        if self.score_features and score is None:
            raise ValueError("a score-conditioned model needs the score (a roll) beside the mixture")
        # Pad on the right so the frames tile the input exactly; trimmed again at the end.
        frames = max(1, -(-(length - self.L) // self.stride) + 1)
        padded = (frames - 1) * self.stride + self.L
        x = F.pad(mixture, (0, padded - length))
        w = F.relu(self.encoder(x))  # (batch, N, frames)
        y = self.bottleneck(self.in_norm(w))
        if self.score_features:
            y = y + self.score_proj(self.score_at_frames(score, w.shape[-1], length))
        skip_sum = None
        for block in self.blocks:
            y, skip = block(y)
            skip_sum = skip if skip_sum is None else skip_sum + skip
        logits = self.mask_conv(self.out_act(skip_sum)).view(batch, self.sources, self.N, -1)
        masked = self._mask(logits) * w.unsqueeze(1)
        out = self.decoder(masked.reshape(batch * self.sources, self.N, -1))
        return out.view(batch, self.sources, self.channels, -1)[..., :length]

    @property
    def receptive_field(self) -> int:
        """Frames of context on each side (non-causal) or to the left (causal)."""
        total = 0
        for block in self.blocks:
            total += block.pad
        return total if self.blocks[0].causal else total // 2


def build_model(model_cfg: dict, sources: int) -> ConvTasNet:
    """A ConvTasNet from a resolved ``[model]`` table (channels must be set)."""
    keys = ("N", "L", "B", "H", "P", "X", "R", "skip_channels", "norm", "causal", "mask", "sample_rate")
    return ConvTasNet(sources=sources, channels=int(model_cfg["channels"]) or 1,
                      score_features=int(model_cfg.get("score_features", 0)), stride=int(model_cfg.get("stride", 0)),
                      **{k: model_cfg[k] for k in keys})


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
