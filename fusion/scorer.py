"""ChromaticScorer: a trained run as a fitness function for generated MIDI/audio/lyrics.

It runs the run's ONNX export (fusion/export.py) with onnxruntime and rebuilds
the exact encoder versions the run was trained on from the manifest
(encoders.registry.encoder_from_stored), so a candidate goes through the same
decoding and encoder code as a stored segment and gets the same vector.

* Encoders are built lazily, one per model input, the first time that input is
  scored: MIDI-only scoring never loads an audio or text model, and imports no
  torch. Weight-free encoders are built (and checked) at once.
* A built encoder whose fingerprint differs from the one recorded in the
  manifest (other params, weights or code) is refused with ModelError naming
  the input, the encoder and both fingerprints: its vectors would not be what
  the model was trained on.
* An input trained on a coalesced spec (`pianoroll:v1|basicpitch:v1`) routes each
  candidate as the join routed each segment: through the first of its tables
  whose modality the candidate gives. A MIDI candidate goes through `pianoroll`,
  an audio-only one through the transcription, so audio is scored with no audio
  model. The manifest's per-input `tables` are the one statement of that rule;
  each result's `via` names the table whose encoder fed each input.
* Inputs are named after the modality they read (`midi`, or `midi.pianoroll`
  beside `midi.midistats`: featurestore.schemas.input_modality); a MIDI
  candidate feeds every input with a MIDI table, each through its own encoder.
* Inputs a candidate lacks take the model's null path (mask false). An input
  that is given but cannot be read or encoded makes that candidate fail (its
  result carries the error, ranked last); the rest of the batch is scored.

See fusion/candidates.py for the chromatic match used to rank.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from encoders.base import BadInput, Encoder, EncoderInput
from encoders.registry import EncoderIdentity, EncoderIdentityError, encoder_from_identity
from fusion.candidates import (
    Candidate,
    ScoreResult,
    as_candidate,
    chromatic_match,
    encoder_input,
    fill_scores,
    rank,
    target_color,
    text_or_none,
)
from featurestore.objectstore import StoreOptions, files_at, is_local
from featurestore.schemas import input_modality
from fusion.errors import ModelError
from fusion.layout import HEADS, read_manifest, resolve_model_dir

SHARED_INPUT = "concept"  # the modality whose one text serves the whole batch
TEXT_INPUTS = ("lyrics", "concept")  # modalities read as text


class ChromaticScorer:
    """`model_dir`: a run directory, local or at an object-store URI (`s3://…/models/<run_id>`)."""

    def __init__(self, model_dir: str | Path, device: str = "cpu", threads: int = 1,
                 options: StoreOptions | None = None):
        self.model_dir = Path(model_dir) if is_local(str(model_dir)) else str(model_dir)
        files = files_at(model_dir, options)
        self.manifest = read_manifest(self.model_dir, files)
        self.export = self.manifest.get("export") or {}
        if not self.export or not files.exists(self.export["file"]):
            raise ModelError(
                f"{self.model_dir} has no ONNX export; run `chromatic export {self.manifest.get('run_id', 'RUN')}`"
            )
        self.run_id = self.manifest.get("run_id", str(model_dir).rstrip("/").rsplit("/", 1)[-1])
        self.device = device
        self.inputs: dict[str, dict] = {record["name"]: record for record in self.manifest["inputs"]}
        # Bytes, not a path: the export is self-contained, and a run in a bucket needs no local copy.
        self.session = _session(files.read_bytes(self.export["file"]), files.uri(self.export["file"]), threads)
        self._encoders: dict[tuple[str, int], Encoder] = {}
        self._text_cache: dict[tuple[str, str], np.ndarray | str] = {}
        for name in self.inputs:
            for index, source in enumerate(self.sources(name)):
                if source.get("model_id") is None:  # cheap to build: refuse a mismatch now
                    self.encoder(name, index)

    # -- encoders ----------------------------------------------------------------------
    def sources(self, name: str) -> list[dict]:
        """The tables that feed model input `name`, in the join's fill order, each with the modality it reads.

        A candidate takes the first source whose modality it gives (a MIDI candidate the
        piano roll, an audio-only one the transcription), as a segment did in the join.
        Manifests of format 1 list no tables: the input itself is the one source.
        """
        record = self.inputs[name]
        if "tables" not in record:
            return [{**record, "modality": input_modality(name)}]
        return [{**table, "shape": record["shape"]} for table in record["tables"]]

    def encoder(self, name: str, source: int = 0) -> Encoder:
        """The encoder of table `source` of model input `name`, built on first use and checked against the manifest."""
        if name not in self.inputs:
            raise ModelError(f"this model has no input {name!r}; its inputs: {', '.join(self.inputs)}")
        if (name, source) not in self._encoders:
            identity = EncoderIdentity.from_manifest(self.sources(name)[source])
            try:
                self._encoders[(name, source)] = encoder_from_identity(identity, device=self.device)
            except EncoderIdentityError as exc:
                raise ModelError(f"input {name!r}, which the model was trained on: {exc}. Install the same "
                                 "encoder code/weights or retrain on this version") from None
        return self._encoders[(name, source)]

    # -- scoring -----------------------------------------------------------------------
    def score(self, midi=None, audio=None, sample_rate: int | None = None, lyrics: str | None = None,
              concept: str | None = None, target: str | None = None, candidate_id: str = "candidate") -> ScoreResult:
        """Score one candidate (any subset of inputs); ModelError if a given input cannot be used."""
        [result] = self.score_batch([Candidate(candidate_id, midi, audio, sample_rate, lyrics)], target, concept)
        if result.error is not None:
            raise ModelError(f"cannot score {candidate_id}: {result.error}")
        return result

    def score_batch(self, candidates: Iterable[Any], target: str | None = None,
                    concept: str | None = None) -> list[ScoreResult]:
        """Score candidates in one batch; ranked by chromatic match to `target` (input order without one)."""
        color = target_color(target)
        items = [as_candidate(c, i) for i, c in enumerate(candidates)]
        concept = text_or_none(concept)
        results = [ScoreResult(c.id, unused=self._unused(c, concept)) for c in items]
        feeds = self._candidate_feeds(items, results)
        for name in self._shared_inputs():
            feeds[name] = self._shared_feed(name, concept, len(items))
        for i, result in enumerate(results):
            result.inputs = {name: bool(feeds[name][1][i]) for name in self.inputs}
            if result.error is None and not any(result.inputs.values()):
                given = ", ".join(items[i].given()) or "nothing"
                result.error = f"gives none of the inputs this model takes ({', '.join(self.inputs)}); it gave {given}"
        ok = [i for i, r in enumerate(results) if r.error is None]
        if ok:
            rows = slice(None) if len(ok) == len(results) else ok  # a slice copies no big arrays
            probs = self._run({name: (v[rows], m[rows]) for name, (v, m) in feeds.items()})
            matches = chromatic_match(probs, color) if color else (None, None)
            for row, i in enumerate(ok):
                fill_scores(results[i], probs, row)
                if color:
                    results[i].match, results[i].p_target = float(matches[0][row]), float(matches[1][row])
        return rank(results)

    def _unused(self, candidate: Candidate, concept: str | None) -> tuple[str, ...]:
        given = candidate.given() + ((SHARED_INPUT,) if concept is not None else ())
        read = {source["modality"] for name in self.inputs for source in self.sources(name)}
        return tuple(name for name in given if name not in read)

    def _candidate_feeds(self, items: list[Candidate], results: list[ScoreResult]) -> dict:
        """{input: (values [B, *shape] float32, mask [B])} for the per-candidate inputs; errors go to results."""
        feeds = {}
        for name in (n for n in self.inputs if n not in self._shared_inputs()):
            values = np.zeros((len(items), *self.inputs[name]["shape"]), dtype=np.float32)
            mask = np.zeros(len(items), dtype=bool)
            routed: set[int] = set()
            for index, source in enumerate(self.sources(name)):
                modality = source["modality"]
                rows = [i for i, c in enumerate(items)
                        if i not in routed and getattr(c, modality) is not None and results[i].error is None]
                routed.update(rows)
                for i, encoded in zip(rows, self._encode(name, index, modality, [items[i] for i in rows])):
                    results[i].via[name] = source["table"]
                    if isinstance(encoded, str):
                        results[i].error = f"{name} (from {modality}): {encoded}"
                    else:
                        values[i], mask[i] = encoded, True
            feeds[name] = (values, mask)
        return feeds

    def _shared_inputs(self) -> tuple[str, ...]:
        """Inputs reading the batch's one concept text."""
        return tuple(name for name in self.inputs if input_modality(name) == SHARED_INPUT)

    def _shared_feed(self, name: str, concept: str | None, batch: int) -> tuple[np.ndarray, np.ndarray]:
        shape = self.inputs[name]["shape"]
        if concept is None:
            return np.zeros((batch, *shape), dtype=np.float32), np.zeros(batch, dtype=bool)
        [vector] = self._encode_texts(name, [concept])
        if isinstance(vector, str):
            raise ModelError(f"cannot encode the concept text {concept!r}: {vector}")
        return np.broadcast_to(vector, (batch, *shape)), np.ones(batch, dtype=bool)

    def _encode(self, name: str, source: int, modality: str, candidates: list[Candidate]) -> list[np.ndarray | str]:
        """One encoder call for every candidate's `modality` into input `name`: a vector, or why it failed."""
        out: list[np.ndarray | str] = [""] * len(candidates)
        readable: list[tuple[int, EncoderInput]] = []
        for k, candidate in enumerate(candidates):
            try:
                readable.append((k, encoder_input(candidate, modality)))
            except BadInput as exc:
                out[k] = str(exc) or type(exc).__name__
        if modality in TEXT_INPUTS:
            encoded = self._encode_texts(name, [item.text for _, item in readable])
        else:
            raw = self.encoder(name, source).encode([item for _, item in readable], modality) if readable else []
            encoded = [self._checked(name, r) for r in raw]
        for (k, _), value in zip(readable, encoded):
            out[k] = value
        return out

    def _encode_texts(self, name: str, texts: list[str]) -> list[np.ndarray | str]:
        """Texts through a per-input cache: each distinct text is encoded once per scorer."""
        todo = list(dict.fromkeys(t for t in texts if (name, t) not in self._text_cache))
        if todo:
            items = [EncoderInput(f"text-{i}", text=t) for i, t in enumerate(todo)]
            raw = self.encoder(name).encode(items, self.sources(name)[0]["modality"])
            self._text_cache.update({(name, t): self._checked(name, r) for t, r in zip(todo, raw)})
        return [self._text_cache[(name, t)] for t in texts]

    def _checked(self, name: str, encoded) -> np.ndarray | str:
        if isinstance(encoded, BadInput):
            return str(encoded) or type(encoded).__name__
        vector = np.asarray(encoded).reshape(self.inputs[name]["shape"])  # cast to float32 when fed
        if not np.isfinite(vector).all():
            return "the encoder returned non-finite values (NaN/inf)"
        return vector

    def _run(self, feeds: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
        names = self.export["input_names"]
        feed = {}
        for k, name in enumerate(self.inputs):
            values, mask = feeds[name]
            feed[names[2 * k]], feed[names[2 * k + 1]] = np.ascontiguousarray(values, np.float32), mask
        outputs = self.session.run(list(HEADS), feed)
        return dict(zip(HEADS, outputs))


def _session(model: bytes, where: str, threads: int):
    """One intra-op thread by default: a batch of 50 piano rolls is a few ms on one core, and extra
    (spinning) threads only fight the encoders and other work for the CPU (3x slower on a busy box)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = max(1, int(threads))
    options.inter_op_num_threads = 1
    try:
        return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own untyped errors
        raise ModelError(f"onnxruntime cannot load {where}: {exc}; re-export the run (`chromatic export`)") from exc


@dataclass(frozen=True)
class ScoreFilesRequest:
    """`chromatic score`: files to score against a run. Audio pairs with MIDI by position when both are given."""

    run: str
    target: str
    midi: tuple[Path, ...] = ()
    audio: tuple[Path, ...] = ()
    lyrics: str | None = None
    concept: str | None = None
    store_uri: str | None = None
    options: StoreOptions = StoreOptions()


def score_files(request: ScoreFilesRequest) -> list[ScoreResult]:
    """Build candidates from files, score them in one batch, ranked."""
    if not request.midi and not request.audio:
        raise ModelError("give at least one candidate: MIDI files, and/or audio files with --audio")
    if request.midi and request.audio and len(request.midi) != len(request.audio):
        raise ModelError(
            f"{len(request.midi)} MIDI file(s) but {len(request.audio)} --audio file(s): give one audio per MIDI "
            "(paired in order), or score MIDI and audio separately"
        )
    count = max(len(request.midi), len(request.audio))
    candidates = [
        Candidate(
            id=" + ".join(p.name for p in (_at(request.midi, i), _at(request.audio, i)) if p is not None),
            midi=_at(request.midi, i), audio=_at(request.audio, i), lyrics=request.lyrics,
        )
        for i in range(count)
    ]
    scorer = ChromaticScorer(resolve_model_dir(request.run, request.store_uri, request.options),
                             options=request.options)
    return scorer.score_batch(candidates, target=request.target, concept=request.concept)


def _at(paths: tuple[Path, ...], index: int) -> Path | None:
    return paths[index] if index < len(paths) else None
