"""Encoder commands: encode, versions."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

import render
from cli.app import DeviceOpt, JsonOpt, StoreOpt, app, friendly_errors, given, open_store


@app.command("encode")
@friendly_errors
def encode_command(
    encoder: Annotated[str, typer.Option("--encoder", help="Encoder name, e.g. clap, pianoroll, minilm.")],
    version: Annotated[str, typer.Option("--version", help="Version label, e.g. v1; immutable once written.")],
    model: Annotated[Optional[str], typer.Option(help="Hub id or local directory of the weights.")] = None,
    param: Annotated[
        Optional[list[str]], typer.Option("--param", help="Encoder param KEY=VALUE; repeat for several.")
    ] = None,
    modality: Annotated[
        Optional[list[str]], typer.Option("--modality", help="Only this modality; repeatable (default: all it reads).")
    ] = None,
    batch_size: Annotated[Optional[int], typer.Option(min=1, help="Items per model batch.")] = None,
    device: DeviceOpt = None,
    limit: Annotated[Optional[int], typer.Option(min=0, help="Encode at most N pending segments per table.")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Stop at the first bad input instead of recording it.")] = False,
    workers: Annotated[
        Optional[int], typer.Option(min=0, help="Spawned processes for decode/resample (0: inline; default: 0 on cpu, CPUs-1 with a GPU).")
    ] = None,
    engine: Annotated[str, typer.Option(help="local (this machine) or ray (a Ray cluster's actor pool).")] = "local",
    ray_address: Annotated[
        Optional[str], typer.Option(help="Ray cluster to use with --engine ray (default: $RAY_ADDRESS, else local).")
    ] = None,
    actors: Annotated[
        Optional[int], typer.Option(min=1, help="Ray actors, each loading the model once (--engine ray) [2].")
    ] = None,
    gpus_per_actor: Annotated[Optional[float], typer.Option(min=0.0, help="GPUs per Ray actor (--engine ray).")] = None,
    commit_rows: Annotated[
        Optional[int], typer.Option(min=1, help="Rows per commit with --engine ray (a killed driver loses at most "
                                    "these) [1024].")
    ] = None,
    store: StoreOpt = None,
    json_out: JsonOpt = False,
):
    """Encode every segment with one encoder version into its feature tables; re-running resumes.

    Examples: chromatic encode --encoder pianoroll --version v2 --param resolution_ms=50;
    chromatic encode --encoder clap --version v1 --model laion/larger_clap_music --device cuda;
    chromatic --storage-option aws_region=eu-west-1 encode --encoder clap --version v1 --model /models/clap
    --store s3://bucket/store --engine ray --ray-address head:6379 --actors 4 --gpus-per-actor 1
    """
    from encoders.job import EncodeConfig, run_encode
    from encoders.registry import parse_param_pairs

    config = EncodeConfig(
        encoder=encoder, version=version, params=parse_param_pairs(param or []), model=model,
        modalities=tuple(modality or ()), limit=limit, strict=strict, workers=workers,
        **given(batch_size=batch_size, device=device),
    )
    if engine not in ("local", "ray"):
        raise typer.BadParameter(f"--engine must be local or ray, got {engine!r}")
    with render.encode_progress() as progress:  # on stderr
        if engine == "ray":
            from encoders.engine_ray import RayEngineConfig, run_encode_ray

            ray_config = RayEngineConfig(address=ray_address, **given(
                actors=actors, gpus_per_actor=gpus_per_actor, commit_rows=commit_rows))
            summary = run_encode_ray(open_store(store, create=False), config, ray_config, progress=progress)
        else:
            summary = run_encode(open_store(store, create=False), config, progress=progress)
    render.print_encode_result(summary, as_json=json_out)


@app.command("versions")
@friendly_errors
def versions_command(store: StoreOpt = None, json_out: JsonOpt = False):
    """Every feature table: encoder config, rows, state and coverage overall and per colour."""
    from featurestore.coverage import list_versions

    versions = list_versions(open_store(store, create=False))
    render.print_versions(versions, as_json=json_out)
