import pytest

from demo import DemoConfig, refuse_stores_with_other_data, run_demo
from featurestore import Store, StoreError


def test_demo_refuses_a_store_holding_other_data(tiny_store):
    with pytest.raises(StoreError, match="--store"):
        refuse_stores_with_other_data(tiny_store)
    with pytest.raises(StoreError, match="did not write"):
        next(run_demo(tiny_store, DemoConfig()))


def test_demo_accepts_a_fresh_store(tmp_path):
    refuse_stores_with_other_data(Store.open(tmp_path / "fresh"))
