"""Views of scoring, search and sharing: export, score, embed, neighbours, index, inspect, demo, frame, explore."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

from render.base import COVERAGE_HEADERS, NEIGHBOR_HEADERS, SYNTH_HEADERS, console, err_console, print_json, rich_table
from render.data import print_encode_summary, print_ingest_summary, synth_summary_rows
from render.training import print_fitness


def print_export(path: Path, info: dict, as_json: bool = False) -> None:
    if as_json:
        print_json({"path": str(path), **info})
        return
    console.print(f"wrote {path} ({info['bytes'] / 1e6:.2f} MB, opset {info['opset']}, self-contained)")
    console.print(f"parity vs torch: max abs diff {info['parity_max_abs_diff']:.2e} over {info['parity_rows']} rows "
                  f"covering all {info['mask_patterns']} mask patterns (tolerance {info['parity_tolerance']:g})")


def _score_rows(results) -> list[list]:
    from featurestore.taxonomy import DIMENSIONS

    return [[r.rank, r.id, r.match, r.predicted_color, r.p_target,
             " / ".join(r.top_mode(d) for d in DIMENSIONS) if r.error is None else None,
             r.error] for r in results]


def print_scores(results, target: str, as_json: bool = False) -> None:
    if as_json:
        print_json([r.to_dict() for r in results])
        return
    headers = ["rank", "candidate", "match", "predicted", f"p({target})",
               "top modes (temporal / spatial / ontological)", "error"]
    console.print(rich_table(f"chromatic match to {target}", headers, _score_rows(results)))


def print_embed(name: str, record, as_json: bool = False) -> None:
    if as_json:
        print_json(record.to_row() | {"params": record.params_dict})
        return
    masked = {k: v for k, v in record.params_dict["masked_non_finite"].items() if v}
    console.print(f"wrote {name}: {record.rows} segments, {record.present} embedded, {record.failed} failed, "
                  f"{record.shape[0]}-d unit vectors (cosine)")
    for input_name, count in sorted(masked.items()):
        console.print(f"[yellow]{count} segment(s) had non-finite {input_name} values:[/] embedded with it masked")


# -- search: neighbors, index, inspect -----------------------------------------------------

def _span(start, end) -> str:
    if start is None or end is None:
        return "-"
    return f"{start:.1f}–{end:.1f}"


def _neighbor_rows(found) -> list[list]:
    return [[n.rank, n.segment_id, n.song_id, n.color, _span(n.start_s, n.end_s), f"{n.distance:.4f}"]
            for n in found]


def print_neighbors(result, as_json: bool = False) -> None:
    """One query: {table, query, neighbors, seconds}; several: {table, results: [{query, neighbors}], seconds}."""
    table = result.table
    if as_json:
        answers = [{"query": q, "neighbors": [n.to_dict() for n in found]}
                   for q, found in zip(result.queries, result.found)]
        body = answers[0] if len(answers) == 1 else {"results": answers}
        print_json({"table": table, **body, "seconds": result.seconds, "stale_left_out": result.stale_left_out})
        return
    if result.stale_left_out:
        err_console.print(f"[yellow]{result.stale_left_out} segment(s) left out: their vectors in {table} were "
                          "computed from inputs that changed since; `chromatic encode` this table to bring them back"
                          "[/yellow]")
    for query, found in zip(result.queries, result.found):
        if not found:
            console.print(f"no neighbours of {query} in {table}: no segment with a vector passes the filters")
            continue
        console.print(rich_table(f"neighbours of {query} in {table}", NEIGHBOR_HEADERS, _neighbor_rows(found)))
    timing = ", ".join(f"{name} {seconds:.3f} s" for name, seconds in result.seconds.items())
    err_console.print(f"{len(result.queries)} quer{'y' if len(result.queries) == 1 else 'ies'}: {timing}")


def print_index(table: str, summary: dict, as_json: bool = False) -> None:
    if as_json:
        print_json(summary)
        return
    rows = [[key, ", ".join(value) if isinstance(value, list) else value] for key, value in summary.items()]
    console.print(rich_table(f"index {table}", ["", "value"], rows))


def print_inspect(report: dict, as_json: bool = False) -> None:
    if as_json:
        print_json(report)
        return
    knn = report["knn"]
    per_color = knn.get("per_color", {})
    rows = [[color, c["segments"], c["present"], f"{c['present_pct']:.1f}",
             " ".join(f"{why}={n}" for why, n in c["missing"].items()) or "-",
             f"{100 * per_color[color]:.1f}" if color in per_color else "-"]
            for color, c in report["coverage"].items()]
    headers = ["colour", "segments", "with vector", "% present", "missing (why)", f"% {knn['k']}-NN correct"]
    console.print(rich_table(f"inspect {report['table']} ({report['dim']}-d)", headers, rows))
    console.print(f"space (the one `neighbors` searches this table in): {report['space']}")
    if knn["accuracy"] is None:
        console.print(f"k-NN colour accuracy: n/a ({knn.get('note', 'no rows')})")
    else:
        sample = " (seeded sample)" if knn["sampled"] else ""
        console.print(
            f"k-NN colour accuracy (k={knn['k']}, neighbours from other songs only, {knn['evaluated']} rows{sample}): "
            f"[bold]{100 * knn['accuracy']:.1f}%[/]; chance: majority colour {100 * knn['chance_majority']:.1f}%, "
            f"random by prior {100 * knn['chance_prior']:.1f}%"
        )
    if report["unlabelled_vectors"]:
        console.print(f"{report['unlabelled_vectors']} vectors belong to segments no longer in `segments` (not scored)")
    if "map" in report:
        console.print(f"2-D map: {report['map']['png']}")


# -- demo ----------------------------------------------------------------------------------

def print_demo(store_uri: str, steps: Iterable) -> None:
    """Print each step of demo.run_demo as it finishes (the steps run while this iterates)."""
    console.print(f"[bold]chromatic demo[/] on store {store_uri}")
    for step in steps:
        _print_demo_step(step)
    console.print("[bold green]demo finished.[/] Try: chromatic info, chromatic versions, "
                  "chromatic neighbors --space spectral:v1 --segment ID --color Green")


def _print_demo_step(step) -> None:
    import demo
    from fusion.compare import COMPARE_HEADERS, compare_table_rows
    from fusion.layout import REPORT

    if isinstance(step, demo.SynthStep):
        console.print(rich_table("1. synthetic corpus", SYNTH_HEADERS, synth_summary_rows(step.summary)))
    elif isinstance(step, demo.IngestStep):
        print_ingest_summary(step.summary, title="2. ingest")
    elif isinstance(step, demo.InfoStep):
        rows = [[c["color"], c["segments"], f"{c['audio_pct']:.0f}", f"{c['midi_pct']:.0f}", f"{c['lyrics_pct']:.0f}"]
                for c in step.info["coverage"]]
        console.print(rich_table("3. coverage in the store", COVERAGE_HEADERS, rows))
    elif isinstance(step, demo.EncodeStep):
        print_encode_summary(step.summary, title=f"4. encode {step.summary.encoder}:{step.summary.version}")
    elif isinstance(step, demo.CompareStep):
        console.print(rich_table("5. train: all inputs vs fewer, same song split (validation accuracies)",
                                 COMPARE_HEADERS, compare_table_rows(step.rows)))
    elif isinstance(step, demo.RunStep):
        console.print(f"model run {step.row['run_id']}: report image {Path(step.row['run_dir']) / REPORT}")
    elif isinstance(step, demo.ScorerStep):
        console.print(f"scorer model (chromatic train --preset scorer): {step.result.run_id}")
        print_fitness(step.result.metrics)
    elif isinstance(step, demo.ScoreStep):
        _print_demo_scores(step)
    elif isinstance(step, demo.NeighborsStep):
        console.print(rich_table(f"7. neighbours of {step.query} within {step.color} in {step.table}",
                                 NEIGHBOR_HEADERS, _neighbor_rows(step.neighbors)))


def _print_demo_scores(step) -> None:
    target = step.target
    rows = [[r.rank, r.id, step.truth.get(r.id), r.match, r.predicted_color, r.p_target, r.error]
            for r in step.results]
    headers = ["rank", "candidate (held-out song)", "true colour", "match", "predicted", f"p({target})", "error"]
    console.print(rich_table(f"6. score: MIDI candidates ranked against {target} by the scorer preset "
                             f"({step.run_id}, MIDI alone)", headers, rows))


# -- sharing: frame, report, explore ---------------------------------------------------------

def print_frame(summary, as_json: bool = False) -> None:
    if as_json:
        print_json(summary.to_dict())
        return
    rows = [["file", summary.path], ["rows", summary.rows], ["columns", ", ".join(summary.columns)]]
    rows += [[f"{name} present", n] for name, n in summary.present.items()]
    rows += [[f"{table} version", v] for table, v in summary.lineage["lance_versions"].items()]
    console.print(rich_table("training frame", ["", "value"], rows))


def print_written(what: str, path: Path) -> None:
    console.print(f"wrote {what}: {path}")


def print_explorer_url(url: str, host: str) -> None:
    if host not in ("127.0.0.1", "localhost", "::1"):
        err_console.print(f"[yellow]warning:[/] listening on {host}: whoever reaches this machine can browse the store")
    console.print(f"chromatic explorer: {url}  (Ctrl-C stops it)")
    sys.stdout.flush()  # a pipe (a test, a log) sees the address before the server blocks
