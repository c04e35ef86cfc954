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
