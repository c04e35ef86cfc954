"""Scale-out on real parts, on loopback: a store in moto's S3 server, encoding on a local Ray cluster.

One Ray cluster serves the session (conftest.ray_cluster): its start-up costs seconds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import pytest

import fake_encoders  # noqa: F401 - registers fake_slow_audio
from encoders.engine_ray import RayEngineConfig, run_encode_ray
from encoders.job import EncodeConfig
from featurestore.errors import WriterLockedError
from featurestore.lease import S3Lease
from featurestore.objectstore import StoreOptions
from featurestore.registry import get_encoder_record
from featurestore.schemas import SEGMENTS
from featurestore.store import Store
from test_encode_job import break_media, first_with
from tinydata import build_tiny_store, midi_bytes

ROOT = Path(__file__).resolve().parent.parent
SLOW = "audio.fake_slow_audio.v1"


def bucket_keys(uri: str) -> list[str]:
    bucket = uri.removeprefix("s3://").split("/")[0]
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def assert_one_row_per_segment(store: Store, table: str) -> None:
    ids = store.read(table, ["segment_id"]).column("segment_id").to_pylist()
    assert len(ids) == len(set(ids)), "duplicate segment_id rows"
    assert set(ids) == store.keys(SEGMENTS)
    assert get_encoder_record(store, table).state == "complete"


def slow_config(tmp_path: Path, delay_s: float = 0.3, batch_size: int = 2) -> EncodeConfig:
    pids = tmp_path / "pids"
    pids.mkdir(exist_ok=True)
    return EncodeConfig("fake_slow_audio", "v1", params={"delay_s": delay_s, "pid_dir": str(pids)},
                        batch_size=batch_size, workers=0)


def cli(*args: str, env: dict | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout, cwd=ROOT)


# -- options and the lease -------------------------------------------------------------
def test_storage_options_come_from_the_environment_and_the_cli(monkeypatch):
    from typer.testing import CliRunner

    from cli import app

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://from-env:1")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    resolved = StoreOptions.from_cli(["endpoint=http://from-cli:2"]).resolved()
    assert resolved["aws_endpoint"] == "http://from-cli:2" and resolved["aws_region"] == "eu-west-1"
    assert resolved["allow_http"] == "true"  # an http:// endpoint needs it
    bad = CliRunner().invoke(app, ["--storage-option", "no-equals-sign", "versions", "--store", "s3://bkt/x"])
    assert bad.exit_code == 2 and "key=value" in bad.output


def test_lease_names_its_holder_and_expires_only_without_heartbeats(s3_uri):
    store = Store.open(s3_uri, options=StoreOptions(lease_ttl_s=2))
    with store.writer("t"):
        time.sleep(2.5)  # past the TTL: the heartbeat keeps it
        with pytest.raises(WriterLockedError, match=rf"host .*, pid {os.getpid()}, since .*re-run after"):
            with store.writer("t"):
                pass
    files = store.files
    dead = S3Lease(files.client, files.bucket, files.key("locks", "u.lease"), "u", ttl_s=1.0)
    dead._put(IfNoneMatch="*")  # a holder that never renews: killed right after taking it
    with pytest.raises(WriterLockedError):
        with store.writer("u"):
            pass
    time.sleep(1.5)
    with store.writer("u", timeout_s=5):  # expired: taken over
        assert "locks/u.lease" in " ".join(bucket_keys(s3_uri))
    assert dead._put(IfMatch=dead.etag) is False  # its stale ETag can no longer renew


def test_a_writer_that_outlived_its_lease_commits_nothing(s3_uri):
    build_tiny_store(s3_uri)
    store = Store.open(s3_uri, options=StoreOptions(lease_ttl_s=1))
    rows = store.read(SEGMENTS).slice(0, 1)
    with store.writer(SEGMENTS):
        lease = store._leases[SEGMENTS]
        lease._stop.set()  # a pause longer than the TTL: no heartbeat gets through
        lease._thread.join()
        time.sleep(1.2)
        with pytest.raises(WriterLockedError, match="lost the writer lease"):
            store.upsert(SEGMENTS, rows)


# -- end to end on the bucket ----------------------------------------------------------
def test_s3_store_end_to_end_with_ray_engine(ray_cluster, s3_uri, tmp_path):
    from typer.testing import CliRunner

    from cli import app

    runner = CliRunner()
    corpus = tmp_path / "corpus.parquet"
    ok = runner.invoke(app, ["synth", "--songs", "16", "--min-seconds", "2", "--max-seconds", "3",
                             "--min-segments", "2", "--max-segments", "2", "--out", str(corpus)])
    assert ok.exit_code == 0, ok.output
    assert runner.invoke(app, ["ingest", str(corpus), "--store", s3_uri]).exit_code == 0
    encode = ["encode", "--encoder", "pianoroll", "--version", "v1", "--store", s3_uri, "--batch-size", "4"]
    done = runner.invoke(app, [*encode, "--engine", "ray", "--actors", "2", "--commit-rows", "8", "--json"])
    assert done.exit_code == 0, done.output
    table = json.loads(done.stdout)["tables"][0]
    assert (table["state"], table["rows"]) == ("complete", 32)
    local = runner.invoke(app, ["encode", "--encoder", "pianoroll", "--version", "local", "--store", s3_uri])
    assert local.exit_code == 0, local.output
    store = Store.open(s3_uri)
    by_ray = {r["segment_id"]: r for r in store.read("midi.pianoroll.v1").to_pylist()}
    by_local = {r["segment_id"]: r for r in store.read("midi.pianoroll.local").to_pylist()}
    assert by_ray.keys() == by_local.keys()
    assert all((by_ray[s]["vector"], by_ray[s]["status"]) == (by_local[s]["vector"], by_local[s]["status"])
               for s in by_ray)

    trained = runner.invoke(app, ["train", "--midi", "pianoroll:v1", "--epochs", "2", "--threads", "1",
                                  "--store", s3_uri, "--json"])
    assert trained.exit_code == 0, trained.output
    run_id = json.loads(trained.stdout)["run_id"]
    keys = bucket_keys(s3_uri)
    for artifact in ("model.onnx", "manifest.json", "metrics.json", "model.pt", "report.png"):
        assert f"store/_chromatic/models/{run_id}/{artifact}" in keys

    candidate = tmp_path / "c.mid"
    candidate.write_bytes(midi_bytes([(60, 0, 1, 90), (64, 1, 1, 90)]))
    fresh = cli("score", run_id, str(candidate), "--target", "Green", "--store", s3_uri, "--json",
                env={"CHROMATIC_STATE_DIR": str(tmp_path / "empty-state")})
    assert fresh.returncode == 0, fresh.stderr
    assert json.loads(fresh.stdout)[0]["error"] is None
    assert not (tmp_path / "empty-state").exists() or not any((tmp_path / "empty-state").rglob("*.onnx"))

    sid = sorted(s for s, row in by_ray.items() if row["present"])[0]
    near = runner.invoke(app, ["neighbors", "--store", s3_uri, "--table", "midi.pianoroll.v1", "--segment", sid,
                               "-k", "3", "--json"])
    assert near.exit_code == 0, near.output
    assert len(json.loads(near.stdout)["neighbors"]) == 3


# -- faults ----------------------------------------------------------------------------
def test_killed_actor_is_retried_and_no_row_is_lost(ray_cluster, tmp_path):
    store = build_tiny_store(tmp_path / "store")
    bad = first_with(store, "has_audio")
    break_media(store, bad, audio=[float("nan")] * 7)  # bad data is counted by reason, as locally
    config = slow_config(tmp_path)
    pids = Path(dict(config.params)["pid_dir"])
    killed: list[int] = []

    def kill_first_actor():
        deadline = time.monotonic() + 120
        while not killed and time.monotonic() < deadline:
            found = sorted(pids.iterdir())
            if found:
                killed.append(int(found[0].name))
                os.kill(killed[0], signal.SIGKILL)
            time.sleep(0.05)

    killer = threading.Thread(target=kill_first_actor)
    killer.start()
    summary = run_encode_ray(store, config, RayEngineConfig(actors=2, commit_rows=4))
    killer.join()
    assert killed and summary.tables[0].state == "complete"
    assert summary.tables[0].failed == {"audio has N NaN samples": 1}
    assert store.read(SLOW, where=f"segment_id = '{bad}'").column("status").to_pylist() == [
        "error: audio has 7 NaN samples"]
    assert_one_row_per_segment(store, SLOW)
    assert len(list(pids.iterdir())) >= 3  # the killed actor was replaced


_DRIVER = """
import sys
sys.path[:0] = sys.argv[5:]
import fake_encoders  # registers fake_slow_audio
import fake_encoders  # noqa: F401 - registers fake_slow_audio
from encoders.engine_ray import RayEngineConfig, run_encode_ray
from encoders.job import EncodeConfig
from featurestore.objectstore import StoreOptions
from featurestore.store import Store

store = Store.open(sys.argv[1], options=StoreOptions(lease_ttl_s=float(sys.argv[3])))
config = EncodeConfig("fake_slow_audio", "v1", params={"delay_s": 0.3, "pid_dir": sys.argv[4]}, batch_size=2)
run_encode_ray(store, config, RayEngineConfig(address=sys.argv[2], actors=2, commit_rows=2))
"""


def test_killed_driver_loses_only_uncommitted_rows_and_a_rerun_completes(ray_cluster, s3_uri, tmp_path):
    store = build_tiny_store(s3_uri)
    config = slow_config(tmp_path)
    ttl = 5.0  # heartbeats every ttl/3: room for a loaded machine
    args = [s3_uri, ray_cluster, str(ttl), dict(config.params)["pid_dir"], str(ROOT), str(ROOT / "tests")]
    driver = subprocess.Popen([sys.executable, "-c", _DRIVER, *args], cwd=ROOT)
    try:
        deadline = time.monotonic() + 180
        while driver.poll() is None and time.monotonic() < deadline:
            if store.has_table(SLOW) and store.count(SLOW, "present = true") >= 4:  # rows from actors
                break
            time.sleep(0.2)
        assert driver.poll() is None, "the driver finished before it could be killed"
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    finally:
        driver.kill()
    committed = store.count(SLOW)
    assert 0 < committed < store.count(SEGMENTS)
    with pytest.raises(WriterLockedError, match=f"pid {driver.pid}"):  # its lease outlives it by the TTL
        run_encode_ray(store, config, RayEngineConfig(actors=2))
    time.sleep(ttl + 2)  # expiry is judged from HTTP dates, which have 1 s resolution
    summary = run_encode_ray(store, config, RayEngineConfig(actors=2))
    assert summary.tables[0].skipped_existing == committed
    assert_one_row_per_segment(store, SLOW)


_CONTENDER = """
import pathlib, sys, time
sys.path[:0] = sys.argv[4:]
import fake_encoders
from encoders.job import EncodeConfig, run_encode
from featurestore.errors import ChromaticError
from featurestore.store import Store

pathlib.Path(sys.argv[2] + ".ready").touch()
while not pathlib.Path(sys.argv[3]).exists():
    time.sleep(0.05)
config = EncodeConfig("fake_slow_audio", "v1", params={"delay_s": 0.2}, batch_size=2, workers=0)
try:
    run_encode(Store.open(sys.argv[1]), config)
except ChromaticError as exc:  # as the CLI does: a message and exit code 2
    print(type(exc).__name__, exc, file=sys.stderr)
    sys.exit(2)
"""


def test_two_machines_one_version_second_is_refused_never_duplicates(s3_uri, tmp_path):
    store = build_tiny_store(s3_uri)
    go = tmp_path / "go"
    procs = []
    for name in ("a", "b"):
        env = {**os.environ, "CHROMATIC_STATE_DIR": str(tmp_path / f"state-{name}")}
        procs.append(subprocess.Popen(
            [sys.executable, "-c", _CONTENDER, s3_uri, str(tmp_path / name), str(go), str(ROOT),
             str(ROOT / "tests")], env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True))
    deadline = time.monotonic() + 180
    while not all((tmp_path / f"{n}.ready").exists() for n in "ab") and time.monotonic() < deadline:
        time.sleep(0.1)
    go.touch()
    results = [(p.wait(timeout=240), p.stderr.read()) for p in procs]
    assert sorted(code for code, _ in results) == [0, 2], results
    refusal = next(err for code, err in results if code == 2)
    assert "WriterLockedError" in refusal and "host" in refusal and "since" in refusal
    assert_one_row_per_segment(store, SLOW)
