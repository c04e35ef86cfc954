import multiprocessing
import os
import sys
from pathlib import Path

import pytest

# Tests run offline: nothing may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# lancedb crashes forked children: every worker process is spawned.
try:
    multiprocessing.set_start_method("spawn")
except RuntimeError:
    pass


@pytest.fixture
def tiny_store(tmp_path):
    from tinydata import build_tiny_store

    return build_tiny_store(tmp_path / "store")


# -- object store and Ray cluster on loopback (shared by the scale-out tests) ------------
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's S3-compatible server on 127.0.0.1 (a free port), for the whole session."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_env(s3_endpoint, monkeypatch, tmp_path):
    """AWS_* variables pointing at the loopback server (seen by Lance, boto3 and child processes),
    and a local state directory (an object store's cache) in tmp."""
    env = {**S3_ENV, "AWS_ENDPOINT_URL": s3_endpoint, "AWS_ALLOW_HTTP": "true",
           "CHROMATIC_STATE_DIR": str(tmp_path / "state")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def s3_uri(s3_env, request):
    """A fresh bucket per test; the store lives under a prefix in it."""
    import uuid

    import boto3

    bucket = f"t-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_env["AWS_ENDPOINT_URL"]).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/store"


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray cluster for the session (start-up costs seconds); workers import the repo and tests."""
    import ray

    root = Path(__file__).resolve().parent
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(root.parent), str(root), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="session")
def explorer_store(tmp_path_factory):
    """(store, [run ids]): feature tables and two trained runs, shared by the explorer's tests."""
    from tinydata import build_explorer_store

    return build_explorer_store(tmp_path_factory.mktemp("explorer") / "store")
