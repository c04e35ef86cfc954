"""Views of the data commands: synth, ingest, optimize, doctor, info, encode, versions."""

from __future__ import annotations

from rich.markup import escape

from render.base import COVERAGE_HEADERS, ENCODE_HEADERS, SYNTH_HEADERS, console, err_console, print_json, rich_table


def synth_summary_rows(summary) -> list[list]:
    rows = []
    for color, counts in summary.per_color.items():
        rows.append([color, counts.songs, counts.segments,
                     *(f"{100 * counts.coverage(m):.0f}" for m in ("audio", "midi", "lyrics"))])
    total = summary.total
    rows.append(["all", total.songs, total.segments,
                 *(f"{100 * total.coverage(m):.0f}" for m in ("audio", "midi", "lyrics"))])
    return rows


def print_synth_summary(summary, as_json: bool = False) -> None:
    if as_json:
        print_json(summary.to_dict())
        return
    console.print(rich_table("synthetic corpus", SYNTH_HEADERS, synth_summary_rows(summary)))
    console.print(f"wrote {summary.out}: {summary.bytes / 1e6:.1f} MB, {summary.audio_seconds:.0f} s of audio, "
                  f"in {summary.seconds:.1f} s")
    for song, reason in summary.failures:
        err_console.print(f"[yellow]skipped song {song}:[/] {reason}")


def _ingest_summary_rows(summary) -> list[list]:
    rows = [["rows read", summary.rows_read], ["ingested (new)", summary.ingested],
            ["updated", summary.updated], ["unchanged (nothing written)", summary.unchanged],
            ["media rows written", summary.media_written], ["rejected", summary.rejected_total]]
    rows += [[f"  rejected: {reason}", n] for reason, n in sorted(summary.rejected.items())]
    rows += [[f"  dropped {reason}", n] for reason, n in sorted(summary.modality_dropped.items())]
    rows += [[f"  e.g. {drop['segment_id']} lost {drop['dropped']}", drop["status"]]
             for drop in summary.dropped_examples]
    if summary.dropped_examples and sum(summary.modality_dropped.values()) > len(summary.dropped_examples):
        rows.append(["  (every dropped modality)", "in the rejects file"])
    rows += [["rejects file", summary.rejects_path], ["seconds", f"{summary.seconds:.1f}"]]
    return rows


def print_ingest_summary(summary, title: str = "ingest", as_json: bool = False) -> None:
    if as_json:
        print_json(summary.to_dict())
        return
    console.print(rich_table(title, ["", "value"], _ingest_summary_rows(summary)))


def print_optimize(report, as_json: bool = False) -> None:
    if as_json:
        print_json(report.to_dict())
        return
    rows = [[t.table, t.versions_before, t.versions_after, f"{t.bytes_removed / 1e6:.1f}"] for t in report.tables]
    console.print(rich_table("optimize", ["table", "versions before", "after", "MB removed"], rows))
    for name in report.busy:
        err_console.print(f"[yellow]{name} is being written by another process:[/] left alone; re-run later")


def print_doctor(report, fixed, as_json: bool = False) -> None:
    if as_json:
        print_json({**report.to_dict(), "fixed": [f.__dict__ for f in fixed]})
        return
    console.print(f"store: {report.store} ({report.tables_checked} tables checked)")
    if not report.findings:
        console.print("[green]no problems found[/]")
    for finding in report.findings:
        style = "bold red" if finding.severity == "error" else "yellow"
        done = " [green](fixed)[/]" if finding in fixed else ""
        console.print(f"[{style}]{finding.severity}[/] {escape(f'[{finding.check}] {finding.subject}: {finding.problem}')}{done}")
        console.print(f"    fix: {finding.fix}", highlight=False, markup=False)


def print_info(info: dict, as_json: bool = False) -> None:
    if as_json:
        print_json(info)
        return
    console.print(f"store: {info['uri']}")
    console.print(rich_table("tables", ["table", "kind", "rows"],
                             [[t["table"], t["kind"], t["rows"]] for t in info["tables"]]))
    rows = [[c["color"], c["segments"], f"{c['audio_pct']:.1f}", f"{c['midi_pct']:.1f}", f"{c['lyrics_pct']:.1f}"]
            for c in info["coverage"]]
    console.print(rich_table("coverage", COVERAGE_HEADERS, rows))
    print_coalesced(info.get("coalesced", []))


def print_coalesced(pairs: list[dict]) -> None:
    """MIDI-input coverage before -> after coalescing with a transcription table, per colour."""
    for pair in pairs:
        colors = list(pair["before"]["coverage_pct_by_color"])
        before, after = pair["before"], pair["after"]
        cells = [f"{before['coverage_pct']:.0f} -> {after['coverage_pct']:.0f}"] + [
            f"{before['coverage_pct_by_color'][c]:.0f} -> {after['coverage_pct_by_color'][c]:.0f}" for c in colors
        ]
        gained = [pair["gained"]] + [pair["gained_by_color"].get(c, 0) for c in colors]
        title = f"--{pair['input']} {pair['spec']}: % with a {pair['input']} input, and segments gained"
        console.print(rich_table(title, ["", "all"] + colors, [["% present"] + cells, ["gained"] + gained]))


# -- encoders: encode, versions ------------------------------------------------------------

def print_encode_result(summary, as_json: bool = False) -> None:
    if as_json:
        print_json(summary.to_dict())
        return
    print_encode_summary(summary, title=f"encode {summary.encoder}:{summary.version}")


def print_encode_summary(summary, title: str) -> None:
    rows = [[t.table, t.encoded, t.absent, t.failed_total, t.skipped_existing, t.stale, t.rows, t.state,
             f"{t.seconds:.1f}", f"{t.segments_per_s:.1f}"] for t in summary.tables]
    console.print(rich_table(title, ENCODE_HEADERS, rows))
    for t in summary.tables:
        for reason, count in sorted(t.failed.items(), key=lambda kv: -kv[1]):
            console.print(f"  {t.table}: {count} x error: {reason}")


def print_versions(versions: list[dict], as_json: bool = False) -> None:
    if as_json:
        print_json(versions)
        return
    if not versions:
        console.print("no feature tables yet; run `chromatic encode --encoder NAME --version v1`")
        return
    rows = [[v["table"], f"{v['kind'] or '?'} {'x'.join(map(str, v['shape']))}",
             " ".join(f"{k}={val}" for k, val in sorted(v["params"].items())) if v["params"] is not None else None,
             v["model_id"],
             v["rows"], f"{v['coverage_pct']:.1f}", v["stale"], v["state"], (v["created_at"] or "")[:19]]
            for v in versions]
    headers = ["table", "kind/shape", "params", "model", "rows", "% present", "stale", "state", "created (UTC)"]
    console.print(rich_table("feature tables", headers, rows))
    colors = list(dict.fromkeys(c for v in versions for c in v["coverage_pct_by_color"]))
    by_color = [[v["table"]] + [f"{v['coverage_pct_by_color'].get(c, 0.0):.0f}" for c in colors] for v in versions]
    console.print(rich_table("% present by colour", ["table"] + colors, by_color))
    for v in versions:
        if v["stale"]:
            console.print(f"[yellow]{v['table']}: {v['stale']} row(s) computed from inputs that changed since:[/] "
                          "the join masks them; re-run its `chromatic encode` to re-encode them")
        if v["unverified"]:
            console.print(f"[yellow]{v['table']}: {v['unverified']} row(s) written before lineage was recorded:[/] "
                          "`chromatic doctor` says how to re-encode them")
    print_coalesced([pair for v in versions for pair in v.get("coalesced", [])])


# -- fusion: train, eval, compare ----------------------------------------------------------
