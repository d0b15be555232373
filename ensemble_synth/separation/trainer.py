"""The trainer: epochs of random segments, validation SDR on fixed items, checkpoints, budgets.

A run directory holds ``config.toml`` (everything resolved), ``metrics.csv`` (one row an
epoch), ``model.pt`` (best validation SDR) and ``last.pt`` (weights, optimiser, schedule,
random state and history, for ``resume``).
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import tomli_w
import torch
from tqdm import tqdm

from ..corpus.format import read_manifest
from ..errors import UserError
from ..fileio import write_text_atomic
from ..torch import CorpusDataset
from .checkpoint import read_checkpoint, save_checkpoint
from .config import architecture, describe_difference, resolve_config, score_features
from .data import check_channels, check_stems, plan_layout
from .device import resolve_device
from .losses import loss_fn, sdr_db, silent_mask
from .model import build_model, count_parameters
from .prefetch import BatchPrefetcher, training_plan

METRIC_COLUMNS = ("epoch", "step", "train_loss", "valid_loss", "valid_sdr", "lr", "seconds", "segments_per_s")


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _write_metrics(path: Path, history: list[dict]) -> None:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=METRIC_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    write_text_atomic(path, out.getvalue())


def _make_scheduler(optimizer, training: dict, total_steps: int):
    if training["schedule"] == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=training["plateau_factor"], patience=training["plateau_patience"])
    if training["schedule"] == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps))
    return None


@torch.no_grad()
def evaluate(model, items: np.ndarray, loss_name: str, batch_size: int, device: torch.device,
             rolls: np.ndarray | None = None) -> tuple[float, float]:
    """Mean loss and mean SDR (dB, over non-silent targets) on fixed items ``(n, S, C, T)``;
    ``rolls``: their score rolls, for a score-conditioned model."""
    model.eval()
    criterion = loss_fn(loss_name)
    losses, sdrs = [], []
    for start in range(0, len(items), batch_size):
        targets = torch.from_numpy(items[start:start + batch_size]).to(device)
        mixture = targets.sum(1)
        score = None if rolls is None else torch.from_numpy(rolls[start:start + batch_size]).to(device)
        with _autocast(device):
            estimates = model(mixture, score)
        estimates = estimates.float()
        losses.append(criterion(estimates, targets, mixture).mean().item())
        active = ~silent_mask(targets, mixture)
        sdrs.extend(sdr_db(estimates, targets)[active].tolist())
    model.train()
    return float(np.mean(losses)), float(np.mean(sdrs)) if sdrs else float("nan")


def training_data(train_tracks, valid_tracks, layout, config: dict, seed: int,
                  where: str = "training data") -> tuple[CorpusDataset, CorpusDataset]:
    """The datasets a run trains and validates on: random segments of the training tracks,
    drawn in turn from :func:`training_stream`, and fixed validation segments (with their
    score rolls for a score-conditioned model)."""
    training, rate = config["training"], config["model"]["sample_rate"]
    score = score_features(config["model"]) > 0
    data = CorpusDataset.from_tracks(train_tracks, layout, rate, training["segment_seconds"], remix=training["remix"],
                                     gain_db=training["gain_db"], seed=seed, where=where, score=score)
    valid = CorpusDataset.from_tracks(valid_tracks, layout, rate,
                                      training["valid_segment_seconds"] or training["segment_seconds"],
                                      examples=training["valid_items"], fixed=True, where=where, score=score)
    return data, valid


def training_stream(seed: int) -> np.random.Generator:
    """The generator a run draws its training examples from, one batch after another."""
    return np.random.default_rng(np.random.SeedSequence([seed, 1]))


def _prepare_run_dir(run_dir: Path, resume: bool) -> dict | None:
    """The resumable state in ``run_dir``, or None for a fresh run (refusing to clobber one)."""
    last = run_dir / "last.pt"
    if resume:
        if not last.is_file():
            raise UserError(f"{run_dir}: nothing to resume (no last.pt)")
        return read_checkpoint(last)
    if (run_dir / "model.pt").exists() or last.exists():
        raise UserError(f"{run_dir}: run directory already holds a trained model (use --resume to continue it, "
                        "or choose another directory)")
    run_dir.mkdir(parents=True, exist_ok=True)
    return None


def _check_resume(state: dict, config: dict, layout: dict, run_dir: Path) -> None:
    old_arch, new_arch = architecture(state["config"]["model"]), architecture(config["model"])
    if old_arch != new_arch:
        raise UserError(f"{run_dir / 'last.pt'}: checkpoint of another config ({describe_difference(old_arch, new_arch)})")
    if state["layout"]["output_names"] != layout["output_names"]:
        raise UserError(f"{run_dir / 'last.pt'}: checkpoint separates {state['layout']['output_names']} but the "
                        f"corpus gives {layout['output_names']} (ensemble does not match the model)")


def train(corpus_dir, run_dir, model="small", target: str | None = None, max_minutes: float | None = None,
          max_steps: int | None = None, epochs: int | None = None, device: str = "auto", seed: int = 0,
          progress: bool = True, resume: bool = False, log=None, init_from=None, **overrides) -> Path:
    """Train a ConvTasNet on ``corpus_dir``; returns ``run_dir/model.pt`` (the best epoch).

    ``model`` is a preset name, a TOML path or a config dict; ``overrides`` replace single keys
    of its ``[model]`` or ``[training]`` table (e.g. ``batch_size=2``). ``target`` trains
    target-versus-accompaniment for one instrument instead of one output per part.
    ``log`` receives the epoch lines (default: stderr when ``progress``, else nowhere).
    ``init_from``: a checkpoint to fine-tune (its architecture and weights; ``model`` then only
    sets the training settings). The starting weights are scored on this corpus's validation
    split first, so ``model.pt`` is the best of them and every later epoch, judged on one corpus.
    ``score_features=FEATURES`` (an override) trains a score-conditioned model (the corpus
    needs ``midi/``); with ``init_from`` an unconditioned checkpoint, its weights are loaded
    and the new score layer starts at zero, so training starts from exactly that model.
    """
    started = time.monotonic()
    corpus_dir, run_dir = Path(corpus_dir), Path(run_dir)
    if max_steps is not None and (isinstance(max_steps, bool) or int(max_steps) != max_steps or max_steps < 1):
        raise UserError(f"max_steps = {max_steps}: must be a whole number, at least 1")
    if max_minutes is not None and not max_minutes >= 0:
        raise UserError(f"max_minutes = {max_minutes}: must be 0 or more (0 trains a single step)")
    config = resolve_config(model, {**overrides, "epochs": epochs})
    init_state = None
    if init_from is not None:
        init_state = read_checkpoint(init_from)
        config = {**config, "name": init_state["config"]["name"],
                  "model": _fine_tuned_model(init_state, score_features(config["model"]), init_from)}
    training, model_cfg = config["training"], config["model"]

    tracks = read_manifest(corpus_dir)
    layout, tracks = plan_layout(tracks, target, corpus_dir)
    channels = check_channels(tracks, corpus_dir)
    if model_cfg["channels"] and model_cfg["channels"] != channels:
        raise UserError(f"{corpus_dir}: corpus has {channels} channel(s) but the model config "
                        f"'{config['name']}' expects {model_cfg['channels']}")
    model_cfg["channels"] = channels
    train_tracks = [t for t in tracks if t.split == "train"]
    valid_tracks = [t for t in tracks if t.split == "valid"] or train_tracks
    if not train_tracks:
        raise UserError(f"{corpus_dir}: no tracks in split 'train'" + (f" with '{target}'" if target else ""))
    check_stems(train_tracks if valid_tracks is train_tracks else train_tracks + valid_tracks)
    if init_state is not None and list(init_state["layout"]["output_names"]) != list(layout.output_names):
        raise UserError(f"{init_from}: the model separates {', '.join(init_state['layout']['output_names'])} but "
                        f"{corpus_dir} holds {', '.join(layout.output_names)}")

    created = _first_missing(run_dir)  # the outermost folder this call makes, if any
    state = _prepare_run_dir(run_dir, resume)
    try:
        return _train(corpus_dir, run_dir, config, layout, train_tracks, valid_tracks, state, target, started,
                      max_minutes, max_steps, device, seed, progress, log, init_state)
    except BaseException:
        # A run directory this call made holds nothing of use until the first checkpoint.
        if created is not None and not (run_dir / "model.pt").exists():
            shutil.rmtree(created, ignore_errors=True)
        raise


def _fine_tuned_model(init_state: dict, wanted_score_features: int, init_from) -> dict:
    """The [model] table of a fine-tuning run: the checkpoint's, made score-conditioned if asked."""
    model_cfg = dict(init_state["config"]["model"])
    have = score_features(model_cfg)
    if wanted_score_features and have not in (0, wanted_score_features):
        raise UserError(f"{init_from}: the model reads {have} score features a part, not {wanted_score_features}")
    if wanted_score_features:
        model_cfg["score_features"] = wanted_score_features
    return model_cfg


def _load_initial_weights(net, init_state: dict, init_from) -> None:
    """The checkpoint's weights into ``net``; a score layer the checkpoint lacks stays at zero."""
    missing, unexpected = net.load_state_dict(init_state["state_dict"], strict=False)
    allowed = {"score_proj.weight", "score_proj.bias"}
    if unexpected or not set(missing) <= allowed:
        raise UserError(f"{init_from}: its weights do not fit the model being trained "
                        f"(missing {sorted(set(missing) - allowed)[:3]}, unexpected {sorted(unexpected)[:3]})")


def _first_missing(path: Path) -> Path | None:
    """The outermost of ``path`` and its parents that does not exist (None if ``path`` exists)."""
    missing = None
    while not path.exists() and path != path.parent:
        missing, path = path, path.parent
    return missing


def _train(corpus_dir: Path, run_dir: Path, config: dict, layout, train_tracks, valid_tracks, state, target,
           started: float, max_minutes, max_steps, device, seed, progress, log, init_state=None) -> Path:
    training, model_cfg = config["training"], config["model"]
    if state is not None:
        _check_resume(state, config, layout.to_dict(), run_dir)

    torch_device = resolve_device(device)
    data, valid_data = training_data(train_tracks, valid_tracks, layout, config, seed, str(corpus_dir))
    conditioned = valid_data.score
    valid, valid_rolls = valid_data.stack() if conditioned else (valid_data.stack(), None)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build_model(model_cfg, sources=len(layout.output_names))
    if init_state is not None and state is None:
        _load_initial_weights(net, init_state, init_state.get("_path", "checkpoint"))
    net.to(torch_device).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=training["lr"], weight_decay=training["weight_decay"])
    total_steps = training["epochs"] * training["steps_per_epoch"]
    scheduler = _make_scheduler(optimizer, training, total_steps)
    criterion = loss_fn(training["loss"])
    rng = training_stream(seed)

    history: list[dict] = []
    epoch, step, best_sdr, since_best = 0, 0, -math.inf, 0
    if state is not None:
        net.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler"):
            scheduler.load_state_dict(state["scheduler"])
        rng.bit_generator.state = state["rng"]
        history = list(state["history"])
        epoch, step = state["epoch"], state["step"]
        best_sdr, since_best = state["best_sdr"], state["since_best"]

    run_config = {**config, "data": {"corpus": str(corpus_dir.resolve()), "target": target or "",
                                     "seed": seed, **{k: v for k, v in layout.to_dict().items() if v is not None}},
                  "parameters": count_parameters(net)}
    write_text_atomic(run_dir / "config.toml", tomli_w.dumps(run_config))
    checkpoint_config = {k: config[k] for k in ("name", "model", "training")}

    first_step = step  # every call trains at least one step, whatever the budget
    budget = max_minutes * 60.0 if max_minutes is not None else math.inf
    valid_seconds = 0.0
    stop_reason = ""
    if log is None:
        log = (lambda msg: tqdm.write(msg, file=sys.stderr)) if progress else (lambda msg: None)
    log(f"training {config['name']} ({count_parameters(net) / 1e6:.2f} M parameters) on {torch_device}: "
        f"{len(train_tracks)} train / {len(valid_tracks)} valid tracks, outputs {', '.join(layout.output_names)}")
    if valid_tracks is train_tracks:
        log("no 'valid' split in the corpus: validating on fixed segments of the training tracks")

    if init_state is not None and state is None:  # the starting point, judged on this corpus
        valid_loss, best_sdr = evaluate(net, valid, training["loss"], training["batch_size"], torch_device, valid_rolls)
        save_checkpoint(run_dir / "model.pt", net, checkpoint_config, layout.to_dict(), epoch=0, step=0,
                        valid_sdr=best_sdr)
        history.append({"epoch": 0, "step": 0, "train_loss": float("nan"), "valid_loss": valid_loss,
                        "valid_sdr": best_sdr, "lr": optimizer.param_groups[0]["lr"], "seconds": 0.0,
                        "segments_per_s": 0.0})
        log(f"starting from the given model: valid SDR {best_sdr:.2f} dB")
        net.train()

    depth, readers = training_plan(on_cpu=torch_device.type == "cpu")
    batches = BatchPrefetcher(data, rng, training["batch_size"], depth, readers)
    with batches:  # stops and joins the drawing thread however the loop ends
        while epoch < training["epochs"] and not stop_reason:
            epoch_start = time.monotonic()
            losses = []
            bar = tqdm(range(training["steps_per_epoch"]), desc=f"epoch {epoch + 1}", disable=not progress,
                       leave=False, file=sys.stderr)
            for _ in bar:
                if max_steps is not None and step >= max_steps:
                    stop_reason = f"max_steps={max_steps} reached"
                    break
                if step > first_step and time.monotonic() - started + valid_seconds >= budget:
                    stop_reason = f"max_minutes={max_minutes} reached"
                    break
                drawn = batches.next()
                drawn, rolls = drawn if conditioned else (drawn, None)
                targets = torch.from_numpy(drawn).to(torch_device)
                score = None if rolls is None else torch.from_numpy(rolls).to(torch_device)
                mixture = targets.sum(1)
                with _autocast(torch_device):
                    estimates = net(mixture, score)
                loss = criterion(estimates.float(), targets, mixture).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if training["clip_grad"] > 0:
                    torch.nn.utils.clip_grad_norm_(net.parameters(), training["clip_grad"])
                optimizer.step()
                if isinstance(scheduler, torch.optim.lr_scheduler.CosineAnnealingLR):
                    scheduler.step()
                step += 1
                losses.append(loss.item())
                bar.set_postfix(loss=f"{losses[-1]:.3f}")
            bar.close()
            if not losses:
                break
            train_seconds = time.monotonic() - epoch_start
            valid_start = time.monotonic()
            valid_loss, valid_sdr = evaluate(net, valid, training["loss"], training["batch_size"], torch_device,
                                             valid_rolls)
            valid_seconds = time.monotonic() - valid_start
            epoch += 1
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(valid_sdr)
            history.append({"epoch": epoch, "step": step, "train_loss": float(np.mean(losses)),
                            "valid_loss": valid_loss, "valid_sdr": valid_sdr,
                            "lr": optimizer.param_groups[0]["lr"], "seconds": train_seconds + valid_seconds,
                            "segments_per_s": len(losses) * training["batch_size"] / max(train_seconds, 1e-9)})
            improved = valid_sdr > best_sdr or not (run_dir / "model.pt").is_file()
            if improved:
                best_sdr, since_best = valid_sdr, 0
                save_checkpoint(run_dir / "model.pt", net, checkpoint_config, layout.to_dict(),
                                epoch=epoch, step=step, valid_sdr=valid_sdr)
            else:
                since_best += 1
            save_checkpoint(run_dir / "last.pt", net, checkpoint_config, layout.to_dict(),
                            epoch=epoch, step=step, valid_sdr=valid_sdr, best_sdr=best_sdr, since_best=since_best,
                            optimizer=optimizer.state_dict(),
                            scheduler=scheduler.state_dict() if scheduler is not None else {},
                            rng=batches.state, history=history)
            _write_metrics(run_dir / "metrics.csv", history)
            log(f"epoch {epoch}: train loss {history[-1]['train_loss']:.3f}, valid loss {valid_loss:.3f}, "
                f"valid SDR {valid_sdr:.2f} dB{' (best)' if improved else ''}")
            if since_best >= training["patience"]:
                stop_reason = f"early stop: no better validation SDR for {since_best} epochs"
    if stop_reason:
        log(stop_reason)
    if not (run_dir / "model.pt").is_file():
        raise UserError(f"{run_dir}: the budget ended before the first training step; nothing was saved")
    return run_dir / "model.pt"
