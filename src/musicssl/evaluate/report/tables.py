"""The tables of an evaluation report, as rows of text shared by report.md and report.html."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from musicssl.evaluate.report.figures import SEED_NOTE
from musicssl.evaluate.report.reading import (
    BEST_MARK,
    LOWER_IS_BETTER,
    MISSING,
    NEAR_MARK,
    Score,
    System,
    first_task,
    format_score,
    headline,
    layer_number,
    mean_std,
    metric_label,
    noise_marks,
    task_names,
    within_noise,
)

RANDOM_LABEL = "baseline:random"


def split_text(task: Mapping[str, Any], *, frames: bool = False) -> str:
    """ "train 1512, valid 324, test 324"; the pitch task adds "(380000 f0 values)" on request
    (the voiced values of the reference it scores)."""
    sizes = task.get("split_sizes") or {}
    parts = []
    for split, count in sizes.items():
        if split.startswith("frames_"):
            continue
        text = f"{split} {count}"
        if frames and f"frames_{split}" in sizes:
            text += f" clips ({sizes[f'frames_{split}']} f0 values)"
        parts.append(text)
    return ", ".join(parts)


def summary_rows(systems: Sequence[System]) -> tuple[list[str], list[list[str]], list[list[str]]]:
    """Header, cells and per-cell marks ("best", "near", "") of the summary table."""
    header = ["task", "kind", "metric", *(s.label for s in systems), "chance", "split sizes"]
    if len(systems) > 1 and not systems[0].label.startswith("baseline:"):
        header.insert(4 + len(systems), "keeps")  # after chance
    rows, marks = [], []
    for name in task_names(systems):
        task = first_task(systems, name)
        found = headline(task)
        if found is None:
            continue
        metric = found[0]
        scores = [mean_std(s.results["tasks"].get(name), metric) for s in systems]
        column_marks = noise_marks(scores, lower_is_better=metric in LOWER_IS_BETTER)
        chance = (task.get("chance") or {}).get(metric)
        row = [
            name,
            str(task.get("kind", "")),
            metric_label(metric),
            *(
                MISSING if score is None else format_score(score.mean, score.std)
                for score in scores
            ),
            MISSING if chance is None else f"{chance:.3f}",
            split_text(task),
        ]
        if "keeps" in header:
            verdict = keeps_text(systems, scores, lower_is_better=metric in LOWER_IS_BETTER)
            row.insert(4 + len(systems), verdict)
            column_marks.append("")
        rows.append(row)
        marks.append(["", "", "", *column_marks, "", ""])
    return header, rows, marks


def keeps_text(
    systems: Sequence[System],
    scores: Sequence[Score | None],
    *,
    lower_is_better: bool = False,
) -> str:
    """The source (first system) against its random weights and the best other baseline.

    "below random weights, above logmel": each side is "below", "level with" (within noise)
    or "above"; a source below its own random weights has lost what the architecture and the
    probe hold without training. A checkpoint, an ``hf:`` model and an ``.npz`` that names
    the one it was embedded with (``embedded_with``) have random weights of their own; beside
    another ``.npz``, ``baseline:random`` is another network, and counts as any other baseline.
    """
    source = scores[0]
    if source is None:
        return MISSING
    sign = -1 if lower_is_better else 1
    words = []
    others = [(s.label, score) for s, score in zip(systems[1:], scores[1:]) if score is not None]
    own = has_own_random(systems)
    random = [(label, score) for label, score in others if label == RANDOM_LABEL and own]
    features = [(label, score) for label, score in others if label != RANDOM_LABEL or not own]
    if features:
        features = [max(features, key=lambda item: sign * item[1][0])]
    for label, score in random + features:
        named = (
            "random weights" if label == RANDOM_LABEL and own else label.removeprefix("baseline:")
        )
        words.append(f"{relation(source, score, lower_is_better=lower_is_better)} {named}")
    return ", ".join(words) or MISSING


def has_own_random(systems: Sequence[System]) -> bool:
    """Whether ``baseline:random`` beside the source (first system) is the source's own
    architecture with its initial weights: not the demo's network beside an ``.npz`` that does
    not name the model it was embedded with."""
    source_name = str(systems[0].results.get("source") or systems[0].label)
    return not source_name.endswith(".npz") or bool(systems[0].results.get("embedded_with"))


def relation(a: Score, b: Score, *, lower_is_better: bool = False) -> str:
    """``a`` against ``b``: "level with" within noise (``within_noise``), else "above" or
    "below" (better or worse, whichever way the metric runs)."""
    if within_noise(a, b):
        return "level with"
    sign = -1 if lower_is_better else 1
    return "above" if sign * (a[0] - b[0]) > 0 else "below"


def detail_rows(systems: Sequence[System], name: str) -> tuple[list[str], list[list[str]]]:
    task = first_task(systems, name)
    metrics: dict[str, None] = {}
    for system in systems:
        metrics.update(dict.fromkeys(system.results["tasks"].get(name, {}).get("metrics", {})))
    header = ["metric", *(s.label for s in systems), "chance"]
    rows = []
    for metric in metrics:
        chance = (task.get("chance") or {}).get(metric)
        cells = []
        for system in systems:
            score = mean_std(system.results["tasks"].get(name), metric)
            cells.append(MISSING if score is None else format_score(score.mean, score.std))
        rows.append([metric_label(metric), *cells, MISSING if chance is None else f"{chance:.3f}"])
    return header, rows


def probe_text(task: Mapping[str, Any]) -> str:
    probe = task.get("probe") or {}
    return ", ".join(f"{key} {_plain(value)}" for key, value in probe.items())


def _plain(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def layer_table(systems: Sequence[System], name: str) -> tuple[list[str], list[list[str]]]:
    """Task ``name`` layer by layer: a column of the headline metric for each system probed
    layer by layer (the source, and ``baseline:random`` beside it), then the weight of each
    layer in the source's learned weighted sum when there is one; a row per layer (named by
    the source's ``layer_labels`` where its number does not say it all), then the sum's.
    No rows when no system was probed layer by layer."""
    layered = [s for s in systems if (s.results["tasks"].get(name) or {}).get("by_layer")]
    if not layered:
        return [], []
    task = layered[0].results["tasks"][name]
    metric = task.get("main")
    weights = task.get("layer_weights") or {}
    labels = layered[0].results.get("layer_labels") or {}
    header = ["layer", *(f"{s.label}: {metric}" for s in layered)]
    # The source layer by layer against the same layer of its own random weights.
    against = (
        layered[0] is systems[0]
        and not systems[0].label.startswith("baseline:")
        and has_own_random(systems)
        and any(s.label == RANDOM_LABEL for s in layered[1:])
    )
    header += ["against random weights"] if against else []
    header += ["weight in the sum"] if weights else []
    rows = []
    for layer in sorted(task["by_layer"], key=layer_number):
        if layer == "weighted":
            cells = ["weighted sum of the layers"]
        else:
            cells = [f"{layer} ({labels[layer]})" if labels.get(layer) else layer]
            cells[0] += " (best on valid)" if layer == task.get("best_layer") else ""
        scores = [_layer_score(system, name, layer, metric) for system in layered]
        cells += [MISSING if s is None else format_score(s.mean, s.std) for s in scores]
        if against:
            own, random = scores[0], scores[[s.label for s in layered].index(RANDOM_LABEL)]
            lower = metric in LOWER_IS_BETTER
            word = MISSING
            if own is not None and random is not None:
                word = relation(own, random, lower_is_better=lower).removesuffix(" with")
            cells.append(word)
        if weights:
            cells.append(f"{weights[layer]:.2f}" if layer in weights else "")
        rows.append(cells)
    return header, rows


def _layer_score(system: System, name: str, layer: str, metric: str | None) -> Score | None:
    """One layer's score of task ``name``, with its seeds and test set where kept, so that
    two systems' layers pair seed by seed as their headlines do."""
    task = system.results["tasks"][name]
    metrics = task["by_layer"].get(layer)
    if not metrics or not metric:
        return None
    return mean_std({"metrics": metrics, "split_sizes": task.get("split_sizes")}, metric)


def layer_note(systems: Sequence[System], name: str) -> str:
    """How the layer table of task ``name`` reads beside the headline score above it."""
    task = systems[0].results["tasks"].get(name) or {}
    labels = (systems[0].results.get("layer_labels") or {}).values()
    clip = "the clip embedding, the encoder's own pooling of its last layer"
    if "joint" in labels:
        clip = ("the clip embedding: each branch's own pooled output, centred and scaled to "
                "unit norm, side by side")  # fmt: skip
    text = (f"Each row probes one layer's vectors; the headline score above is {clip}, so it "
            "need not equal any row.")  # fmt: skip
    if task.get("by_layer") and task.get("best_layer") is None:
        text += " No layer is marked best on valid: this task ranks by similarity, with no probe."
    if "against random weights" in layer_table(systems, name)[0]:
        text += (" 'against random weights' sets each layer beside the same layer of the "
                 "random weights by the rule of 'keeps' (seed by seed where both kept their "
                 "seeds).")  # fmt: skip
    return text


def skipped_lines(systems: Sequence[System]) -> list[str]:
    lines = [str(line) for line in systems[0].results.get("skipped") or []]
    for system in systems[1:]:
        # A task the corpus cannot support is skipped for every system: say it once.
        lines += [
            f"{system.label}: {line}"
            for line in system.results.get("skipped") or []
            if str(line) not in lines
        ]
    return lines


def skipped_file_lines(systems: Sequence[System]) -> list[str]:
    """The source's audio files that could not be embedded, "name: reason" each."""
    return [str(line) for line in systems[0].results.get("skipped_files") or []]


def note_lines(systems: Sequence[System]) -> list[str]:
    """What a reader must know before trusting the source's scores (``notes``)."""
    return [str(line) for line in systems[0].results.get("notes") or []]


def task_notes(task: Mapping[str, Any]) -> list[str]:
    """What the task's scores rest on beyond the protocol: files left out (``note``) and what
    the protocol itself had to leave out (``notes``, e.g. pitch frames subsampled)."""
    lines = [str(task["note"])] if task.get("note") else []
    return lines + [str(line) for line in task.get("notes") or []]


def about_rows(systems: Sequence[System]) -> list[tuple[str, str]]:
    results = systems[0].results
    about = [
        ("source", str(results.get("source", "?"))),
        *([("checkpoint", str(results["checkpoint"]))] if results.get("checkpoint") else []),
        *([("model", str(results["model"]))] if results.get("model") else []),
        *(
            [("embedded with", f"{results['embedded_with']} (baseline:random: its architecture)")]
            if results.get("embedded_with")
            else []
        ),
        ("corpus", str(results.get("corpus", "?")) or "none (your own tasks only)"),
        ("date", str(results.get("created", "?")).replace("T", " ")[:19]),
        ("musicssl version", str(results.get("version", "?"))),
        ("seeds", f"{results.get('seeds', '?')} ({SEED_NOTE}){_few_seeds(results)}"),
    ]
    if len(systems) > 1:
        about.append(("baselines", ", ".join(s.label for s in systems[1:])))
    return about


# Fewer probe seeds than this give a std too rough for the noise rule of the marks.
STEADY_SEEDS = 3


def _few_seeds(results: Mapping[str, Any]) -> str:
    seeds = results.get("seeds")
    if not isinstance(seeds, int) or seeds >= STEADY_SEEDS:
        return ""
    return (
        f"; too few for the noise rule: the ± values, the {BEST_MARK} and {NEAR_MARK} marks and "
        f"the 'keeps' verdicts may change from one evaluation to the next ({STEADY_SEEDS} "
        "seeds or more steady them)"
    )


def reading(systems: Sequence[System]) -> str:
    """How to read the summary table: only what this report's table holds."""
    mains = {str(first_task(systems, name).get("main")) for name in task_names(systems)}
    lower = sorted(mains & LOWER_IS_BETTER)
    text = "Scores are mean ± std over seeds on the test split. Higher is better"
    text += f" for every metric except {', '.join(lower)} (lower is better). " if lower else ". "
    text += (
        "Chance is what an embedding with no information scores: a uniform guess (tempo: "
        "always the most common training tempo bin, which a poor embedding can score below). "
    )
    if len(systems) > 1:
        text += (
            f"{BEST_MARK} marks the best system on a task, {NEAR_MARK} a system within noise "
            "of it: |difference| at most twice the std of the difference, measured on the "
            "per-seed differences (seed s scores every system on the same resample of the test "
            "set), or 2 · sqrt(std_best² + std²) where a system kept no per-seed scores. "
            "'keeps' sets the source "
            "against its random weights (the architecture of a checkpoint or an hf: model, or "
            "of the one an .npz of musicssl embed names; beside another .npz, "
            "baseline:random is the demo's network, another baseline) and the best other "
            "baseline: below random weights, the training lost what the architecture held. "
        )
    if any(name.endswith("@transfer") for name in task_names(systems)):
        text += "A task@transfer is tested on instruments pretraining never heard."
    return text.rstrip()


def seed_values(task: Mapping[str, Any]) -> str:
    metric = (task.get("metrics") or {}).get(task.get("main") or "", {})
    return ", ".join(f"{value:.3f}" for value in metric.get("values") or [])
