"""`evaluate` and `bench` commands."""

from __future__ import annotations

from pathlib import Path

import click

from . import cli


@cli.command()
@click.option("--model", "model_path", required=True, type=click.Path(), help="A model.pt (or run directory).")
@click.option("--dataset", required=True, help="bach10:PATH, urmp:PATH or folder:PATH.")
@click.option("--segment", type=float, default=None, help="Cut tracks into segments of this many seconds.")
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option("--metrics", default="SDR,ISR,SIR,SAR", show_default=True, help="BSSEval metrics to compute.")
@click.option("--device", default="auto", show_default=True)
def evaluate(model_path, dataset, segment, out_dir, metrics, device):
    """Separate every track of a dataset with a trained model and score it."""
    from ..datasets import load_dataset
    from ..errors import UserError
    from ..fileio import write_json_atomic, write_text_atomic
    from ..model_eval import evaluate_model, summarise
    from ..separation import load_separator

    names = tuple(m.strip().upper() for m in metrics.split(",") if m.strip())
    separator = load_separator(model_path, device=device)
    tracks = load_dataset(dataset, segment=segment)
    if not tracks:
        raise UserError(f"{dataset}: no tracks")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out}: output directory exists and is not empty")
    records = evaluate_model(separator, tracks, metrics=names, progress=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "tracks").mkdir(exist_ok=True)
    for record in records:
        write_json_atomic(out / "tracks" / f"{record['name']}.json", record)
    summaries = {m: summarise(records, m) for m in (*names, "SI-SDR")}
    write_json_atomic(out / "summary.json", summaries)
    write_text_atomic(out / "summary.md", summary_markdown(summaries, dataset, model_path))
    _plot(records, out / "sdr.png")
    click.echo((out / "summary.md").read_text())


def summary_markdown(summaries: dict, dataset: str, model_path: str) -> str:
    metrics = list(summaries)
    instruments = sorted({i for s in summaries.values() for i in s["instruments"]})
    lines = [f"# {dataset} with {model_path}", "", "Median over 1 s frames per part; mean over tracks (dB).", "",
             "| instrument | tracks | " + " | ".join(metrics) + " |", "|---|---:|" + "---:|" * len(metrics)]
    for inst in instruments:
        cells = []
        for m in metrics:
            entry = summaries[m]["instruments"].get(inst)
            cells.append("n/a" if entry is None else f"{entry['mean']:.2f}")
        count = summaries[metrics[0]]["instruments"].get(inst, {}).get("tracks", 0)
        lines.append(f"| {inst} | {count} | " + " | ".join(cells) + " |")
    means = ["n/a" if summaries[m]["mean"] is None else f"{summaries[m]['mean']:.2f}" for m in metrics]
    lines.append("| **mean** | | " + " | ".join(means) + " |")
    return "\n".join(lines) + "\n"


def _plot(records: list[dict], path: Path) -> None:
    try:
        from ..report import sdr_boxplot
    except ImportError:
        return
    sdr_boxplot(records, path)


@cli.command()
@click.option("--real", "real", multiple=True, required=True, help="Real data set: bach10:PATH, urmp:PATH (repeatable).")
@click.option("--budget", default="smoke", show_default=True, type=click.Choice(["smoke", "small", "full"]))
@click.option("--causal", is_flag=True, help="Train causal models (cLN, no look-ahead).")
@click.option("--variants", default=",".join(("dry", "room", "timbre", "performance", "full")), show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--jobs", "-j", type=int, default=None, help="Generation workers [default: one per core].")
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False))
def bench(real, budget, causal, variants, seed, jobs, out_dir):
    """Train on synthetic corpora variant by variant, score on real recordings."""
    import os

    from ..bench import run_bench

    run_bench(list(real), out_dir, budget=budget, causal=causal, seed=seed,
                        variants=[v.strip() for v in variants.split(",") if v.strip()],
                        jobs=jobs or os.cpu_count() or 1, log=lambda m: click.echo(m, err=True))
    click.echo((Path(out_dir) / "results.md").read_text())
