"""The encoder registry: the one home of encoder names -> classes.

Encoders register by name; `build_encoder("pianoroll", {"resolution_ms": "50"})`
turns CLI-style string params into the encoder's frozen config, refusing
unknown names or params with the list of valid choices.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import typing
from dataclasses import dataclass

from encoders.base import Encoder, EncoderConfig
from encoders.errors import EncoderError

_REGISTRY: dict[str, type[Encoder]] = {}

# Encoder modules, imported on first lookup so `import encoders` stays cheap.
# Heavy libraries (torch, transformers, librosa) load lazily inside each module.
_MODULES = (
    "encoders.spectral",
    "encoders.midistats",
    "encoders.pianoroll",
    "encoders.basicpitch",
    "encoders.text",
    "encoders.clap",
    "encoders.mert",
)
_loaded = False


def register(name: str):
    def decorator(cls: type[Encoder]) -> type[Encoder]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise EncoderError(f"encoder name {name!r} registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorator


def _load_all() -> None:
    global _loaded
    if not _loaded:
        for module in _MODULES:
            importlib.import_module(module)
        _loaded = True


def known_encoders() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def get_encoder_class(name: str) -> type[Encoder]:
    _load_all()
    if name not in _REGISTRY:
        raise EncoderError(f"unknown encoder {name!r}; known encoders: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def parse_param_pairs(pairs: list[str]) -> dict[str, str]:
    """["resolution_ms=50", "velocity=binary"] -> {"resolution_ms": "50", ...}."""
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise EncoderError(f"bad --param {pair!r}; expected KEY=VALUE, e.g. resolution_ms=50")
        params[key.strip()] = value.strip()
    return params


def make_config(cls: type[Encoder], params: dict) -> EncoderConfig:
    """Build cls.config_cls from params (strings are coerced to the field types)."""
    _check_param_names(cls, params)
    hints = typing.get_type_hints(cls.config_cls)
    values = {name: _coerce(cls.name, name, value, hints[name]) for name, value in params.items()}
    try:
        return cls.config_cls(**values)
    except (TypeError, ValueError) as exc:
        raise EncoderError(f"bad params for encoder {cls.name!r}: {exc}") from exc


def _check_param_names(cls: type[Encoder], params: dict, where: str = "") -> None:
    """EncoderError listing the valid params (with their defaults) when `params` names one the config lacks."""
    fields = {f.name: f for f in dataclasses.fields(cls.config_cls)}
    unknown = sorted(set(params) - set(fields))
    if unknown:
        valid = ", ".join(f"{n} (default {_default(f)!r})" for n, f in fields.items()) or "(none)"
        said = f"{where} param(s) {', '.join(unknown)} that encoder {cls.name!r} does not have" if where else (
            f"encoder {cls.name!r} has no param(s) {', '.join(unknown)}")
        raise EncoderError(f"{said}; valid params: {valid}")


def build_encoder(name: str, params: dict | None = None, device: str = "cpu") -> Encoder:
    cls = get_encoder_class(name)
    return cls(make_config(cls, params or {}), device=device)


def encoder_from_stored(name: str, params_json: str, device: str = "cpu") -> Encoder:
    """Rebuild an encoder from the params JSON recorded in the registry/manifest (unchecked)."""
    cls = get_encoder_class(name)
    params = json.loads(params_json)
    _check_param_names(cls, params, "the stored params (written by another version of chromatic?) name")
    hints = typing.get_type_hints(cls.config_cls)
    for key, value in params.items():
        if typing.get_origin(hints.get(key)) is tuple or hints.get(key) is tuple:
            params[key] = tuple(value)
    return cls(cls.config_cls(**params), device=device)


class EncoderIdentityError(EncoderError):
    """An encoder rebuilt from its stored identity would not reproduce the stored vectors."""


@dataclass(frozen=True)
class EncoderIdentity:
    """What a registry row (or a run manifest's input) records of the encoder that wrote a table."""

    table: str
    encoder: str
    version: str
    params: str  # canonical JSON of the encoder config
    fingerprint: str
    shape: tuple[int, ...]
    model_id: str | None = None
    code_version: str | None = None

    @property
    def spec(self) -> str:
        return f"{self.encoder}:{self.version}"

    @classmethod
    def of(cls, record) -> "EncoderIdentity":
        """From a featurestore EncoderRecord."""
        return cls(record.table_name, record.encoder, record.version, record.params, record.fingerprint,
                   tuple(record.shape), record.model_id, record.code_version)

    @classmethod
    def from_manifest(cls, entry: dict) -> "EncoderIdentity":
        """From one of a run manifest's `inputs` entries."""
        return cls(entry["table"], entry["encoder"], entry["version"], json.dumps(entry["params"], sort_keys=True),
                   entry["fingerprint"], tuple(entry["shape"]), entry.get("model_id"), entry.get("code_version"))


def encoder_from_identity(identity: EncoderIdentity, device: str = "cpu") -> Encoder:
    """Rebuild the encoder that wrote a table and verify it is that one: same fingerprint and shape."""
    encoder = encoder_from_stored(identity.encoder, identity.params, device=device)
    if encoder.fingerprint() != identity.fingerprint:
        raise EncoderIdentityError(
            f"encoder {identity.spec} rebuilt here has fingerprint {encoder.fingerprint()}, but {identity.table} "
            f"was written with fingerprint {identity.fingerprint} (params {identity.params}, model "
            f"{identity.model_id}, code {identity.code_version}); its vectors would differ"
        )
    if tuple(encoder.shape) != identity.shape:
        raise EncoderIdentityError(
            f"encoder {identity.spec} now outputs shape {tuple(encoder.shape)}, {identity.table} holds {identity.shape}"
        )
    return encoder


def _default(field: dataclasses.Field):
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


def _coerce(encoder: str, name: str, value, hint):
    if not isinstance(value, str):
        return value
    target = hint
    if typing.get_origin(hint) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value.lower() in ("none", "null", ""):
            return None
        target = args[0]
    try:
        if target is bool:
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true/false")
        if target in (int, float, str):
            return target(value)
        if typing.get_origin(target) is tuple:
            inner = typing.get_args(target)[0]
            return tuple(inner(v) for v in value.split(",") if v)
    except ValueError as exc:
        raise EncoderError(f"encoder {encoder!r} param {name}={value!r}: {exc}") from exc
    return value
