"""Registries of named components (generators, discriminators, losses), each with a typed
config: a YAML preset names a component by `<role>_type` and configures it in `<role>:`."""

from __future__ import annotations

from dataclasses import dataclass, is_dataclass
from typing import Any

from ._checks import said_choices


@dataclass(frozen=True)
class Entry:
    """One registered component: the class and the dataclass that configures it."""

    cls: type
    config: type


class Registry:
    """Name -> (class, config dataclass). `kind` names the role in error messages; `module`
    is imported on the first lookup, so that its components have registered themselves."""

    def __init__(self, kind: str, module: str) -> None:
        self.kind, self.module = kind, module
        self._entries: dict[str, Entry] = {}

    def _load(self) -> None:
        import importlib

        importlib.import_module(self.module)

    def register(self, name: str, config: type):
        """Class decorator: register the class under `name`, configured by dataclass `config`."""
        if not is_dataclass(config):
            raise ValueError(f"Registry.register: argument 'config' expected a dataclass, got {config!r}")

        def decorate(cls):
            if name in self._entries:
                raise ValueError(f"Registry.register: {self.kind} {name!r} is already registered "
                                 f"(by {self._entries[name].cls.__qualname__})")
            self._entries[name] = Entry(cls, config)
            return cls

        return decorate

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def get(self, name: str) -> Entry:
        """The entry of `name`; an unknown name raises ValueError listing the valid ones."""
        self._load()
        if name not in self._entries:
            raise ValueError(f"{self.kind}_type: expected one of {said_choices(self.names())}, got {name!r}")
        return self._entries[name]

    def build(self, name: str, config: Any = None):
        """An instance of `name` from its config (a dataclass instance, a dict checked against
        the config's fields, or None for the defaults)."""
        from render3d.config import from_dict

        entry = self.get(name)
        if config is None or isinstance(config, dict):
            config = from_dict(entry.config, config or {}, path=self.kind)
        elif not isinstance(config, entry.config):
            raise ValueError(f"{self.kind} {name!r}: argument 'config' expected {entry.config.__name__} or a dict, "
                             f"got {type(config).__name__}")
        try:
            return entry.cls(config)
        except ValueError as error:     # a setting the component checks itself (e.g. VolumeRenderer's n_coarse)
            from render3d.config import restate_fields

            restate_fields(error, entry.config, self.kind)
            raise


GENERATORS = Registry("generator", "render3d.generators")
DISCRIMINATORS = Registry("discriminator", "render3d.discriminators")
LOSSES = Registry("loss", "render3d.losses")
