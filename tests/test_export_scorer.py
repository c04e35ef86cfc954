"""ONNX export, ChromaticScorer and the fused space, on a tiny model trained on real feature tables.

The module fixture encodes the tiny store with the real encode job (pianoroll,
bundled MiniLM for the concept; the fake weight-free audio/text encoders of the
encode-job tests for audio and lyrics), trains a few epochs (which exports
model.onnx), so the scorer rebuilds exactly the store's encoders.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pyarrow.parquet as pq
import pytest

import fake_encoders  # noqa: F401 - registers fake_audio / fake_text
from encoders.base import EncoderInput
from encoders.job import EncodeConfig, run_encode
from featurestore.errors import ModelError
from featurestore.registry import get_encoder_record
from featurestore.schemas import MEDIA, SEGMENTS
from featurestore.taxonomy import COLORS, DIMENSIONS
from fusion import export as export_module
from fusion.candidates import chromatic_match
from fusion.export import ONNX_FILE, ONNX_OUTPUT_NAMES, export_info, export_onnx, parity_max_abs_diff
from fusion.fused_space import embed_run, fused_table_name
from fusion.runs import MANIFEST, VAL_MIDI_CANDIDATES, VAL_PREDICTIONS, load_run
from fusion.scorer import MANIFEST_FILE, ChromaticScorer
from fusion.train import TrainConfig, train
from tinydata import build_tiny_store, midi_bytes

ROOT = Path(__file__).resolve().parent.parent
INPUTS = {"audio": "fake_audio:v1", "midi": "pianoroll:v1", "lyrics": "fake_text:v1", "concept": "minilm:v1"}
ENCODES = (
    ("fake_audio", {}, ()),
    ("pianoroll", {"steps": "32", "resolution_ms": "100"}, ()),
    ("fake_text", {}, ("lyrics",)),
    ("minilm", {}, ("concept",)),
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    store = build_tiny_store(tmp_path_factory.mktemp("scorer") / "store")
    for encoder, params, modalities in ENCODES:
        config = EncodeConfig(encoder, "v1", params=params, modalities=modalities, workers=0, batch_size=64)
        run_encode(store, config, progress=False)
    result = train(store, INPUTS, TrainConfig(epochs=3, batch_size=16, seed=0, threads=1))
    return store, result.run_id, result.run_dir


@pytest.fixture(scope="module")
def scorer(trained):
    return ChromaticScorer(trained[2])


def segment_rows(store) -> dict[str, dict]:
    media = {r["segment_id"]: r for r in store.read(MEDIA).to_pylist()}
    return {r["segment_id"]: {**r, **media[r["segment_id"]]} for r in store.read(SEGMENTS).to_pylist()}


def candidate_of(row: dict) -> dict:
    return {
        "id": row["segment_id"],
        "midi": row["midi"] if row["has_midi"] else None,
        "audio": np.asarray(row["audio"], dtype=np.float32) if row["has_audio"] else None,
        "sample_rate": row["sample_rate"],
        "lyrics": row["lyric_text"] if row["has_lyrics"] else None,
    }


# -- export ---------------------------------------------------------------------------------------
def test_train_exports_and_onnx_matches_torch_on_every_mask_pattern(trained):
    store, run_id, run_dir = trained
    info = export_info(run_dir)
    assert info["file"] == ONNX_FILE and (run_dir / ONNX_FILE).is_file()
    assert info["mask_patterns"] == 2 ** len(INPUTS)
    assert info["parity_max_abs_diff"] <= 1e-4
    run = load_run(store, run_id)
    diff, rows = parity_max_abs_diff(run.model, run_dir / ONNX_FILE, seed=7)  # fresh random values
    assert diff <= 1e-4 and rows > 2 ** len(INPUTS)


def test_model_onnx_is_self_contained_with_dynamic_batch(trained, tmp_path):
    run_dir = trained[2]
    assert not [p.name for p in run_dir.iterdir() if p.name.startswith(ONNX_FILE) and p.name != ONNX_FILE]
    proto = onnx.load(str(run_dir / ONNX_FILE), load_external_data=False)
    assert not [t.name for t in proto.graph.initializer if onnx.external_data_helper.uses_external_data(t)]
    alone = tmp_path / "copy.onnx"
    shutil.copy(run_dir / ONNX_FILE, alone)  # nothing else beside it
    session = onnxruntime.InferenceSession(str(alone), providers=["CPUExecutionProvider"])
    manifest = json.loads((run_dir / MANIFEST).read_text())
    assert [i.name for i in session.get_inputs()] == manifest["input_names"]
    assert [o.name for o in session.get_outputs()] == list(ONNX_OUTPUT_NAMES)
    assert {i.type for i in session.get_inputs() if i.name.endswith("_mask")} == {"tensor(bool)"}
    for batch in (1, 5):
        feed = {}
        for record in manifest["inputs"]:
            feed[record["value_input"]] = np.zeros((batch, *record["shape"]), np.float32)
            feed[record["mask_input"]] = np.zeros(batch, bool)
        outputs = session.run(None, feed)
        assert [o.shape[0] for o in outputs] == [batch] * 5
        np.testing.assert_allclose(outputs[3].sum(axis=1), 1.0, atol=1e-5)


def test_failed_parity_is_refused_and_keeps_the_previous_export(trained, monkeypatch):
    run_dir = trained[2]
    before = (run_dir / ONNX_FILE).read_bytes()
    monkeypatch.setattr(export_module, "PARITY_TOLERANCE", -1.0)  # no difference can pass
    # The torch exporter itself is exercised by the fixture; reuse its output to keep this test fast.
    monkeypatch.setattr(export_module, "_torch_export", lambda model, path, opset: path.write_bytes(before))
    with pytest.raises(ModelError, match="differs from the torch model"):
        export_onnx(run_dir)
    assert (run_dir / ONNX_FILE).read_bytes() == before
    assert sorted(p.name for p in run_dir.iterdir() if "onnx" in p.name) == [ONNX_FILE]


# -- scorer ---------------------------------------------------------------------------------------
def test_scorer_reproduces_validation_predictions_from_raw_media(trained, scorer):
    store, _, run_dir = trained
    val = pq.read_table(run_dir / VAL_PREDICTIONS).to_pylist()
    rows = segment_rows(store)
    by_concept: dict[str, list[dict]] = {}
    for pred in val:
        by_concept.setdefault(rows[pred["segment_id"]]["concept_text"], []).append(pred)
    for concept, preds in by_concept.items():
        results = scorer.score_batch([candidate_of(rows[p["segment_id"]]) for p in preds], "Green", concept)
        by_id = {r.id: r for r in results}
        for pred in preds:
            result = by_id[pred["segment_id"]]
            assert result.error is None
            assert result.inputs == {name: pred[f"{name}_mask"] for name in INPUTS}
            for head in (*DIMENSIONS, "color"):
                np.testing.assert_allclose(list(getattr(result, head).values()), pred[f"{head}_probs"], atol=1e-4)


def test_scorer_match_equals_the_midi_candidate_view_of_validation(trained, scorer):
    store, _, run_dir = trained
    view = pq.read_table(run_dir / VAL_MIDI_CANDIDATES).to_pylist()
    rows = segment_rows(store)
    assert view and all(rows[v["segment_id"]]["has_midi"] for v in view)
    assert {v["segment_id"] for v in view} == {
        p["segment_id"] for p in pq.read_table(run_dir / VAL_PREDICTIONS).to_pylist() if p["midi_mask"]}
    candidates = [{"id": v["segment_id"], "midi": rows[v["segment_id"]]["midi"]} for v in view]
    for target in ("Green", "Violet"):
        by_id = {r.id: r for r in scorer.score_batch(candidates, target)}  # MIDI alone, no concept
        expected, _ = chromatic_match({h: np.array([v[f"{h}_probs"] for v in view]) for h in (*DIMENSIONS, "color")},
                                      target)
        for v, match in zip(view, expected):
            result = by_id[v["segment_id"]]
            assert result.inputs == {"audio": False, "midi": True, "lyrics": False, "concept": False}
            assert v["midi_mask"] and not any(v[f"{n}_mask"] for n in ("audio", "lyrics", "concept"))
            assert result.match == pytest.approx(float(match), abs=1e-5)


def test_scorer_encoders_give_the_stored_vectors(trained, scorer):
    store = trained[0]
    rows = segment_rows(store)
    for table, name, field in (("midi.pianoroll.v1", "midi", "midi"), ("concept.minilm.v1", "concept", "concept_text")):
        stored = {r["segment_id"]: r["vector"] for r in store.read(table, where="present = true").to_pylist()}
        ids = sorted(stored)[:6]
        items = [EncoderInput(i, midi=rows[i]["midi"]) if name == "midi" else EncoderInput(i, text=rows[i][field])
                 for i in ids]
        fresh = scorer.encoder(name).encode(items, name)
        for sid, vector in zip(ids, fresh):
            np.testing.assert_allclose(np.asarray(vector, np.float32).reshape(-1), stored[sid], rtol=0, atol=1e-6)


def test_score_batch_ranks_by_match_and_isolates_bad_candidates(scorer, tmp_path, monkeypatch):
    calls = {"concept": [], "midi": 0}
    concept_encoder, midi_encoder = scorer.encoder("concept"), scorer.encoder("midi")
    encode_text, encode_rolls = concept_encoder.encode_batch, midi_encoder.encode_batch

    def spy_text(prepared):
        calls["concept"].append(list(prepared))
        return encode_text(prepared)

    def spy_rolls(prepared):
        calls["midi"] += 1
        return encode_rolls(prepared)

    monkeypatch.setattr(concept_encoder, "encode_batch", spy_text)
    monkeypatch.setattr(midi_encoder, "encode_batch", spy_rolls)
    good = [{"id": f"good{p}", "midi": midi_bytes([(p + 3 * i, i * 0.5, 0.5, 90) for i in range(8)])}
            for p in (40, 55, 70)]
    bad = [
        {"id": "garbage", "midi": b"not a midi file"},
        {"id": "missing", "midi": tmp_path / "nope.mid"},
        {"id": "empty-audio", "audio": np.zeros(0, np.float32), "sample_rate": 22050},
    ]
    concept = "a brand new concept about places yet to come"
    for _ in range(2):
        results = scorer.score_batch([bad[0], good[0], bad[1], good[1], bad[2], good[2]], target="green",
                                     concept=concept)
        assert [r.rank for r in results] == [1, 2, 3, 4, 5, 6]
        assert [r.id for r in results[3:]] == ["garbage", "missing", "empty-audio"]
        assert all(r.error and r.match is None for r in results[3:])
        assert "undecodable MIDI" in results[3].error and "nope.mid" in results[4].error
        assert "empty" in results[5].error
        ok = results[:3]
        assert [r.match for r in ok] == sorted((r.match for r in ok), reverse=True)
        for r in ok:
            assert abs(sum(r.color.values()) - 1) < 1e-5 and r.predicted_color == max(r.color, key=r.color.get)
            probs = {h: np.array([list(getattr(r, h).values())]) for h in (*DIMENSIONS, "color")}
            match, p_green = chromatic_match(probs, "Green")
            assert r.match == pytest.approx(float(match[0]), abs=1e-6) and r.p_target == pytest.approx(p_green[0])
    assert calls["concept"] == [[concept]]  # once across both batches
    assert calls["midi"] == 2  # one call per batch for all its candidates
    alone = scorer.score(midi=good[1]["midi"], concept=concept, target="Green")
    assert alone.match == pytest.approx(next(r.match for r in results if r.id == "good55"), abs=1e-6)


def test_unknown_target_and_fields_are_refused(scorer):
    with pytest.raises(ModelError, match="Green"):
        scorer.score_batch([{"midi": midi_bytes([(60, 0, 1, 80)])}], target="Teal")
    with pytest.raises(ModelError, match="valid fields"):
        scorer.score_batch([{"midi_path": "x.mid"}], target="Red")


def test_candidate_with_nothing_the_model_takes_fails_alone(scorer):
    [result] = scorer.score_batch([{"id": "nothing"}], target="Red")
    assert result.error and "none of the inputs" in result.error


def test_empty_text_takes_the_null_path_like_no_text(scorer):
    midi = midi_bytes([(60, 0, 1, 80), (64, 1, 1, 80)])
    [with_empty] = scorer.score_batch([{"id": "a", "midi": midi, "lyrics": "  "}], target="Red", concept="")
    [without] = scorer.score_batch([{"id": "a", "midi": midi}], target="Red")
    assert with_empty.error is None
    assert with_empty.color == pytest.approx(without.color)


def test_fingerprint_mismatch_is_refused(trained, tmp_path):
    run_dir = trained[2]
    manifest = json.loads((run_dir / MANIFEST).read_text())
    for name in ("midi", "concept"):
        copy = tmp_path / name
        copy.mkdir()
        shutil.copy(run_dir / ONNX_FILE, copy / ONNX_FILE)
        edited = json.loads(json.dumps(manifest))
        record = next(r for r in edited["inputs"] if r["name"] == name)
        real, record["fingerprint"] = record["fingerprint"], "0000000000000000"
        (copy / MANIFEST_FILE).write_text(json.dumps(edited))
        with pytest.raises(ModelError) as caught:
            # Weight-free encoders are checked when the scorer opens; others when first used.
            ChromaticScorer(copy).score(concept="anything", target="Red")
        assert f"input {name!r}" in str(caught.value) and real in str(caught.value)
        assert "0000000000000000" in str(caught.value)


def test_midi_only_scoring_does_not_import_torch(trained):
    code = (
        "import json, sys\n"
        f"sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / 'tests')!r}]\n"
        "import fake_encoders\n"
        "from fusion.scorer import ChromaticScorer\n"
        "from tinydata import midi_bytes\n"
        f"scorer = ChromaticScorer({str(trained[2])!r})\n"
        "[r] = scorer.score_batch([{'midi': midi_bytes([(60, 0, 1, 90), (64, 1, 1, 90)])}], target='Green')\n"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'error': r.error, 'match': r.match}))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["error"] is None and 0 <= report["match"] <= 1
    assert report["torch"] is False


def test_manifest_file_name_is_the_runs_one():
    assert MANIFEST_FILE == MANIFEST


# -- fused space ----------------------------------------------------------------------------------
def test_embed_writes_one_unit_norm_row_per_segment(trained):
    store, run_id, run_dir = trained
    name = embed_run(store, run_id)
    assert name == fused_table_name(run_id)
    embed_run(store, run_id)  # again: same version, rows replaced, never duplicated
    rows = store.read(name).to_pylist()
    assert sorted(r["segment_id"] for r in rows) == sorted(store.keys(SEGMENTS))
    assert all(r["present"] for r in rows)
    vectors = {r["segment_id"]: np.asarray(r["vector"]) for r in rows}
    np.testing.assert_allclose([np.linalg.norm(v) for v in vectors.values()], 1.0, atol=1e-5)
    for pred in pq.read_table(run_dir / VAL_PREDICTIONS).to_pylist():
        fused = np.asarray(pred["fused_embedding"])
        np.testing.assert_allclose(vectors[pred["segment_id"]], fused / np.linalg.norm(fused), atol=1e-5)
    record = get_encoder_record(store, name)
    assert (record.modality, record.kind, record.state) == ("fused", "vector", "complete")
    assert record.params_dict["run_id"] == run_id and record.rows == len(rows)


def test_fused_table_name_sanitises_run_ids():
    assert fused_table_name("run-2024.x/y") == "fused.run-2024_x_y.v1"


def test_colours_in_results_follow_the_taxonomy(scorer):
    result = scorer.score(midi=midi_bytes([(60, 0, 1, 80)]), target="Indigo")
    assert list(result.color) == list(COLORS)
    assert set(result.inputs) == set(INPUTS) and result.inputs["midi"] and not result.inputs["audio"]


# -- CLI ------------------------------------------------------------------------------------------
def test_cli_score_ranks_files_and_embed_reports(trained, tmp_path):
    from typer.testing import CliRunner

    from cli import app

    store, run_id, _ = trained
    files = []
    for name, data in (("low.mid", midi_bytes([(40, 0, 2, 70)])), ("broken.mid", b"MThd garbage"),
                       ("high.mid", midi_bytes([(84, 0, 1, 110), (88, 1, 1, 110)]))):
        files.append(tmp_path / name)
        files[-1].write_bytes(data)
    args = ["score", run_id, *map(str, files), "--target", "violet", "--concept", "people now", "--store", store.uri]
    runner = CliRunner()
    done = runner.invoke(app, [*args, "--json"])
    assert done.exit_code == 0, done.output
    ranked = json.loads(done.output)
    assert [r["rank"] for r in ranked] == [1, 2, 3] and ranked[-1]["id"] == "broken.mid" and ranked[-1]["error"]
    assert ranked[0]["match"] >= ranked[1]["match"]
    table = runner.invoke(app, args)
    assert table.exit_code == 0 and "low.mid" in table.output and "broken.mid" in table.output
    bad = runner.invoke(app, ["score", run_id, str(files[0]), "--target", "teal", "--store", store.uri])
    assert bad.exit_code == 2 and "Violet" in bad.output
    embedded = runner.invoke(app, ["embed", run_id, "--store", store.uri])
    assert embedded.exit_code == 0 and fused_table_name(run_id) in embedded.output


def test_cli_export_prints_path_size_and_parity(trained, monkeypatch):
    from typer.testing import CliRunner

    from cli import app

    store, run_id, run_dir = trained
    exported = (run_dir / ONNX_FILE).read_bytes()
    # The real exporter runs in the fixture; here only the command around it is under test.
    monkeypatch.setattr(export_module, "_torch_export", lambda model, path, opset: path.write_bytes(exported))
    done = CliRunner().invoke(app, ["export", run_id, "--store", store.uri, "--json"])
    assert done.exit_code == 0, done.output
    info = json.loads(done.output)
    assert info["path"] == str(run_dir / ONNX_FILE) and info["bytes"] == len(exported)
    assert info["parity_max_abs_diff"] <= 1e-4
    text = CliRunner().invoke(app, ["export", str(run_dir)])
    assert text.exit_code == 0 and "parity vs torch" in text.output and "MB" in text.output
