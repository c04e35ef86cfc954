"""`chromatic doctor` on an object store: runs and writer leases are checked in the bucket, where they live.

A store in moto's S3 server on loopback; the local cache (CHROMATIC_STATE_DIR) starts empty, as on a
machine that never trained there.
"""

from __future__ import annotations

import json
import time

from typer.testing import CliRunner

from cli import app
from featurestore.doctor import diagnose, fix_store
from featurestore.lease import S3Lease
from featurestore.objectstore import LOCKS_DIR, RUNS_DIR, StoreOptions
from featurestore.store import Store
from fusion.train import TrainConfig, train
from tinydata import build_tiny_store, write_feature_table


def _runs_findings(report) -> list:
    return [f for f in report.findings if f.check == "runs"]


def test_doctor_checks_runs_in_the_bucket_and_fixes_strays_there(s3_uri, tmp_path, monkeypatch):
    store = build_tiny_store(s3_uri)
    write_feature_table(store, "audio", "fake:v1", "has_audio", seed=1)
    run = train(store, {"audio": "fake:v1"}, TrainConfig(epochs=1, threads=1, export_onnx=False))
    monkeypatch.setenv("CHROMATIC_STATE_DIR", str(tmp_path / "another-machine"))
    elsewhere = Store.open(s3_uri, create=False)

    healthy = diagnose(elsewhere)
    assert healthy.healthy and not _runs_findings(healthy), healthy.to_dict()  # the run is in the bucket

    files = elsewhere.files
    files.write_bytes(b"{}", RUNS_DIR, ".partial-run-x", "manifest.json")  # a train killed while uploading
    files.write_bytes(b"{}", RUNS_DIR, "run-unregistered", "manifest.json")
    found = _runs_findings(diagnose(elsewhere))
    assert {f.subject for f in found} == {files.uri(RUNS_DIR, ".partial-run-x"), files.uri(RUNS_DIR, "run-unregistered")}
    assert all(f.fixable and f.severity == "warning" for f in found)

    fixed = fix_store(elsewhere, diagnose(elsewhere))
    assert len(fixed) == 2
    assert files.children(RUNS_DIR) == [run.run_id]  # the strays are gone from the bucket, the run is not

    files.remove(RUNS_DIR, run.run_id)  # the registered run's files deleted by hand
    missing = _runs_findings(diagnose(elsewhere))
    assert [(f.severity, f.subject) for f in missing] == [("error", run.run_id)]
    result = CliRunner().invoke(app, ["doctor", "--store", s3_uri, "--json"])
    assert result.exit_code != 0 and json.loads(result.stdout)["errors"] == 1, result.output


def test_doctor_names_a_live_writer_and_an_expired_lease_from_the_bucket(s3_uri):
    store = Store.open(s3_uri, options=StoreOptions(lease_ttl_s=30))
    files = store.files
    gone = S3Lease(files.client, files.bucket, files.key(LOCKS_DIR, "dead.lease"), "dead", ttl_s=1.0)
    gone._put(IfNoneMatch="*")  # a writer killed right after taking its lease: never renewed, never released
    time.sleep(2.5)  # past its TTL by the server's clock (HTTP dates have 1 s resolution)
    with store.writer("busy"):
        locks = {f.subject: f for f in diagnose(store).findings if f.check == "locks"}
    assert set(locks) == {"busy", "dead"}
    assert "being written now by" in locks["busy"].problem and "pid" in locks["busy"].problem
    assert "expired" in locks["dead"].problem and "takes it over" in locks["dead"].fix
    assert all(f.severity == "warning" for f in locks.values())
    assert not [f for f in diagnose(store).findings if f.subject == "busy"]  # released on exit
    files.write_bytes(b"not json", LOCKS_DIR, "garbled.lease")  # bad data: named, never a crash
    (garbled,) = [f for f in diagnose(store).findings if f.subject == "garbled"]
    assert "? pid ?" in garbled.problem
