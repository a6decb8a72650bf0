"""The chip plugins, behind a small typed facade over ``pluggy``.

Core code calls the module-level functions (:func:`list_chips`,
:func:`get_chip`, :func:`override_cost` …), which share one cached
:class:`ChipRegistry` per process. Tests and third parties build their own with
``ChipRegistry(autoload=False)`` and :meth:`ChipRegistry.register`.

Discovery: every entry point of the group ``autocompress.chips`` is loaded,
one at a time, so that a plugin that fails to import, registers a misspelt hook,
raises inside a hook (``SystemExit`` from ``sys.exit()`` included: only
``KeyboardInterrupt`` goes through) or returns an invalid :class:`ChipSpec` is
recorded as a :class:`PluginProblem` (plugin name + reason) while the other chips
keep working (``pluggy``'s own ``load_setuptools_entrypoints`` stops at the first
broken plugin, hence the loop here).

Order: the bundled plugins (entry points of the ``autocompress`` distribution)
load first, then third-party ones, each part sorted by entry-point name, whatever
order the installed distributions are found in. On a duplicate chip id the
plugin loaded (or registered) first keeps the chip (``tryfirst``/``trylast``
markers do not change that); the newcomer is named in a
:class:`PluginWarning`, emitted once per registry (the CLI prints it in its own
``warning:`` style).

Environment:

- ``AUTOCOMPRESS_DISABLE_PLUGIN_AUTOLOAD=1``: load no entry points (only plugins
  registered in code).
- ``AUTOCOMPRESS_BLOCK_PLUGINS=name1,name2``: skip these entry points by name.
- ``AUTOCOMPRESS_DEFAULT_CHIP=vendor/name``: the chip a search uses when it names
  none (otherwise the first plugin that declares one with ``autocompress_default_chip``).

Cost and export hooks are called only on the plugin that contributed the chip,
so a plugin can never change another vendor's numbers.
"""

from __future__ import annotations

import importlib.metadata
import os
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pluggy

from autocompress.core.errors import (
    AutocompressWarning,
    ConfigError,
    PluginError,
    UnknownNameError,
)
from autocompress.hardware import hookspecs
from autocompress.hardware.cost import Cost, LayerCost
from autocompress.hardware.layers import LayerDescriptor
from autocompress.hardware.legality import VERDICTS, LayerIssue
from autocompress.hardware.spec import ChipSpec
from autocompress.hardware.validate import validate_chip_spec

DISABLE_AUTOLOAD_ENV = "AUTOCOMPRESS_DISABLE_PLUGIN_AUTOLOAD"
BLOCK_PLUGINS_ENV = "AUTOCOMPRESS_BLOCK_PLUGINS"
DEFAULT_CHIP_ENV = "AUTOCOMPRESS_DEFAULT_CHIP"
BUNDLED_DISTRIBUTION = "autocompress"
LIST_HINT = "run `autocompress chips` to list all installed chips"
HOOK_NAMES = (
    "autocompress_chips",
    "autocompress_estimate_cost",
    "autocompress_layer_cost",
    "autocompress_export_step",
    "autocompress_check_layers",
    "autocompress_default_chip",
)


@dataclass(frozen=True)
class PluginProblem:
    """A plugin (or one of its chips) that could not be used, and why."""

    plugin: str
    reason: str

    def __str__(self) -> str:
        return f"plugin {self.plugin!r}: {self.reason}"


class PluginWarning(AutocompressWarning):
    """A plugin problem that leaves every other chip working (e.g. a duplicate chip id)."""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"SystemExit: called sys.exit({exc.code!r})"
    return f"{type(exc).__name__}: {exc}"


def _is_bundled(entry_point: importlib.metadata.EntryPoint) -> bool:
    dist = getattr(entry_point, "dist", None)
    name = getattr(dist, "name", None) or ""
    return name.strip().lower().replace("_", "-") == BUNDLED_DISTRIBUTION


def _load_order(
    entry_points: Sequence[importlib.metadata.EntryPoint],
) -> list[importlib.metadata.EntryPoint]:
    """Bundled entry points first, then third-party ones; each part by name (then value)."""
    return sorted(entry_points, key=lambda ep: (not _is_bundled(ep), ep.name, ep.value))


def _autoload_disabled() -> bool:
    return os.environ.get(DISABLE_AUTOLOAD_ENV, "").strip().lower() in {"1", "true", "yes"}


def _blocked_names() -> set[str]:
    return {
        name.strip() for name in os.environ.get(BLOCK_PLUGINS_ENV, "").split(",") if name.strip()
    }


class ChipRegistry:
    """The installed chip plugins and the chips they contribute.

    Args:
        autoload: load the ``autocompress.chips`` entry points now; ``None``
            means "unless ``AUTOCOMPRESS_DISABLE_PLUGIN_AUTOLOAD=1``".
    """

    def __init__(self, *, autoload: bool | None = None) -> None:
        self._pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self._pm.add_hookspecs(hookspecs)
        self._problems: list[PluginProblem] = []
        self._versions: dict[str, str] = {}
        self._chips: dict[str, ChipSpec] | None = None
        self._owner: dict[str, str] = {}
        self._impls: dict[str, dict[str, Any]] | None = None
        self._order: list[str] = []
        self._lock = threading.RLock()
        if autoload is None:
            autoload = not _autoload_disabled()
        if autoload:
            self.load_entrypoints()

    # -- loading ---------------------------------------------------------------------------

    def load_entrypoints(self, group: str = hookspecs.ENTRY_POINT_GROUP) -> None:
        """Import and register every entry point of ``group``; record failures by name."""
        blocked = _blocked_names()
        seen: dict[str, str] = {}
        for entry_point in _load_order(list(importlib.metadata.entry_points(group=group))):
            name = entry_point.name
            if name in blocked:
                continue
            if name in seen or self._pm.get_plugin(name) is not None:
                if seen.get(name, entry_point.value) != entry_point.value:
                    self._record(
                        name,
                        f"two installed distributions use the entry-point name {name!r} "
                        f"({seen[name]!r} and {entry_point.value!r}); keeping the first",
                    )
                continue
            seen[name] = entry_point.value
            try:
                plugin = entry_point.load()
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # a broken plugin (even sys.exit()) stays alone
                self._record(name, f"failed to import {entry_point.value!r}: {_describe(exc)}")
                continue
            dist = getattr(entry_point, "dist", None)
            version = dist.version if dist is not None else None
            self.register(plugin, name, version=version)

    def register(
        self, plugin: object, name: str | None = None, *, version: str | None = None
    ) -> bool:
        """Register a plugin module or object; ``False`` (and a recorded problem) if rejected.

        ``version`` defaults to the plugin's ``__version__`` attribute, else ``"unknown"``.
        """
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        with self._lock:
            try:
                self._pm.register(plugin, name=name)
                self._pm.check_pending()
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                if self._pm.is_registered(plugin):
                    self._pm.unregister(plugin)
                self._record(name, f"rejected by the plugin manager: {_describe(exc)}")
                return False
            impls = self._hookimpls_of(name)
            registered = set(impls) | {impl.function.__name__ for impl in impls.values()}
            for attr in dir(plugin):
                if (
                    attr.startswith("autocompress_")
                    and attr not in registered
                    and callable(getattr(plugin, attr, None))
                ):
                    self._record(
                        name,
                        f"{attr} is not decorated with @hookimpl "
                        "(from autocompress.hardware.hookspecs import hookimpl); it is ignored",
                    )
            if not registered:
                self._record(name, "implements no autocompress_ hook")
            self._versions[name] = version or str(getattr(plugin, "__version__", "unknown"))
            self._order.append(name)
            self._chips = None
            self._impls = None
            return True

    def _hookimpls_of(self, plugin_name: str) -> dict[str, Any]:
        """Hook name -> the plugin's implementation (pluggy HookImpl)."""
        impls: dict[str, Any] = {}
        for hook_name in HOOK_NAMES:
            caller = getattr(self._pm.hook, hook_name)
            for impl in caller.get_hookimpls():
                if impl.plugin_name == plugin_name:
                    impls[hook_name] = impl
        return impls

    def _record(self, plugin: str, reason: str) -> bool:
        """Keep a problem once; True when it is new."""
        problem = PluginProblem(plugin, reason)
        if problem in self._problems:
            return False
        self._problems.append(problem)
        return True

    # -- chips -----------------------------------------------------------------------------

    def _collect_chips(self) -> dict[str, ChipSpec]:
        chips: dict[str, ChipSpec] = {}
        owner: dict[str, str] = {}
        # In registration order (bundled plugins first), not pluggy's call order, which a
        # plugin could change with tryfirst/trylast: on a duplicate id, the first one wins.
        rank = {name: index for index, name in enumerate(self._order)}
        impls = sorted(
            self._pm.hook.autocompress_chips.get_hookimpls(),
            key=lambda impl: rank.get(impl.plugin_name, len(rank)),
        )
        for impl in impls:
            name = impl.plugin_name
            try:
                result = impl.function()
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                self._record(name, f"autocompress_chips raised {_describe(exc)}")
                continue
            if not isinstance(result, (list, tuple)):
                self._record(
                    name, f"autocompress_chips must return a list, got {type(result).__name__}"
                )
                continue
            for spec in result:
                label = getattr(spec, "chip_id", repr(spec))
                problems = validate_chip_spec(spec)
                if problems:
                    self._record(name, f"invalid chip {label!r}: " + "; ".join(problems))
                    continue
                if spec.chip_id in chips:
                    message = (
                        f"duplicate chip id {spec.chip_id!r} ignored: plugin "
                        f"{owner[spec.chip_id]!r} provides it first and keeps it"
                    )
                    if self._record(name, message):
                        warnings.warn(
                            str(PluginProblem(name, message)), PluginWarning, stacklevel=2
                        )
                    continue
                chips[spec.chip_id] = spec
                owner[spec.chip_id] = name
        self._owner = owner
        return chips

    def _chip_map(self) -> dict[str, ChipSpec]:
        chips = self._chips
        if chips is None:
            with self._lock:
                if self._chips is None:
                    self._chips = self._collect_chips()
                chips = self._chips
        return chips

    def chips(self) -> list[ChipSpec]:
        """Every valid chip, sorted by id (cached after the first call)."""
        return [spec for _, spec in sorted(self._chip_map().items())]

    def chip_ids(self) -> list[str]:
        """Ids of every valid chip, sorted."""
        return sorted(self._chip_map())

    def get_chip(self, chip_id: str) -> ChipSpec:
        """The chip with this id (case-insensitive); :class:`UnknownNameError` names the closest."""
        chips = self._chip_map()
        key = chip_id.strip().lower() if isinstance(chip_id, str) else chip_id
        if key in chips:
            return chips[key]
        hint = LIST_HINT
        if self._problems:
            broken = sorted({p.plugin for p in self._problems})
            hint += f" (plugins with problems: {', '.join(broken)}; `autocompress chips` shows why)"
        raise UnknownNameError("chip", str(chip_id), chips, list_hint=hint)

    def default_chip_id(self) -> str | None:
        """The chip a search uses when it names none; None when no chip is installed.

        ``AUTOCOMPRESS_DEFAULT_CHIP`` when set (it must name an installed chip), else
        the first plugin in load order whose ``autocompress_default_chip`` names one of
        its own chips, else the first installed chip id (sorted).

        Raises:
            ConfigError: ``AUTOCOMPRESS_DEFAULT_CHIP`` names no installed chip.
        """
        configured = os.environ.get(DEFAULT_CHIP_ENV, "").strip()
        if configured:
            try:
                return self.get_chip(configured).chip_id
            except UnknownNameError as exc:
                raise ConfigError(
                    f"{DEFAULT_CHIP_ENV}={configured!r}: {exc.message}", hint=exc.hint
                ) from None
        chips = self._chip_map()
        rank = {name: index for index, name in enumerate(self._order)}
        impls = sorted(
            self._pm.hook.autocompress_default_chip.get_hookimpls(),
            key=lambda impl: rank.get(impl.plugin_name, len(rank)),
        )
        for impl in impls:
            name = impl.plugin_name
            try:
                answer = impl.function()
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                self._record(name, f"autocompress_default_chip raised {_describe(exc)}")
                continue
            if answer is None:
                continue
            key = answer.strip().lower() if isinstance(answer, str) else answer
            if key in chips and self._owner.get(key) == name:
                return key
            self._record(
                name, f"autocompress_default_chip named {answer!r}, which is not one of its chips"
            )
        return min(chips) if chips else None

    def plugin_of(self, chip_id: str) -> str | None:
        """Name of the plugin that contributed ``chip_id``."""
        self._chip_map()
        return self._owner.get(chip_id)

    def problems(self) -> list[PluginProblem]:
        """Every problem recorded so far (loading, hooks, invalid specs, duplicates)."""
        self._chip_map()
        return list(self._problems)

    def versions(self) -> dict[str, str]:
        """Plugin name -> version of the distribution that ships it."""
        return dict(self._versions)

    def hook_functions(self, plugin_name: str) -> dict[str, Any]:
        """Hook name -> the function ``plugin_name`` implements it with (for contract tests)."""
        return {hook: impl.function for hook, impl in self._hookimpls_of(plugin_name).items()}

    def plugin_folder(self, plugin_name: str) -> Path | None:
        """The folder of the module that implements ``plugin_name`` (None for plain objects)."""
        plugin = self._pm.get_plugin(plugin_name)
        source = getattr(plugin, "__file__", None)
        return Path(source).resolve().parent if source else None

    def plugin_names(self) -> list[str]:
        """Names of the registered plugins, in registration order."""
        return [name for name, _ in self._pm.list_name_plugin()]

    # -- per-chip hooks --------------------------------------------------------------------

    def _owner_impl(self, hook_name: str, chip: ChipSpec) -> tuple[str, Any] | None:
        impls = self._impls
        if impls is None:
            with self._lock:
                impls = {
                    hook: {
                        impl.plugin_name: impl.function
                        for impl in getattr(self._pm.hook, hook).get_hookimpls()
                    }
                    for hook in HOOK_NAMES
                }
                self._impls = impls
        owner = self.plugin_of(chip.chip_id)
        if owner is None:
            return None
        function = impls[hook_name].get(owner)
        return None if function is None else (owner, function)

    def _call_owner(self, hook_name: str, chip: ChipSpec, **kwargs: Any) -> tuple[str, Any]:
        found = self._owner_impl(hook_name, chip)
        if found is None:
            return "", None
        owner, function = found
        try:
            return owner, function(chip=chip, **kwargs)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            reason = f"{hook_name} raised {_describe(exc)} for chip {chip.chip_id!r}"
            self._record(owner, reason)
            raise PluginError(f"plugin {owner!r}: {reason}") from exc

    def override_cost(self, chip: ChipSpec, layers: Sequence[LayerDescriptor]) -> Cost | None:
        """The owning plugin's whole-model cost for ``chip``, or None to use the built-in model."""
        owner, cost = self._call_owner("autocompress_estimate_cost", chip, layers=list(layers))
        if cost is None:
            return None
        if not isinstance(cost, Cost) or cost.chip_id != chip.chip_id:
            raise PluginError(
                f"plugin {owner!r}: autocompress_estimate_cost must return a Cost for "
                f"{chip.chip_id!r} or None, got {cost!r:.120}"
            )
        return cost

    def override_layer_cost(self, chip: ChipSpec, layer: LayerDescriptor) -> LayerCost | None:
        """The owning plugin's cost of one layer on ``chip``, or None."""
        owner, cost = self._call_owner("autocompress_layer_cost", chip, layer=layer)
        if cost is not None and not isinstance(cost, LayerCost):
            raise PluginError(
                f"plugin {owner!r}: autocompress_layer_cost must return a LayerCost or None, "
                f"got {type(cost).__name__}"
            )
        return cost

    def check_layers(self, chip: ChipSpec, layers: Sequence[LayerDescriptor]) -> list[LayerIssue]:
        """The owning plugin's legality verdicts for ``layers`` on ``chip`` ([] if it has none)."""
        owner, issues = self._call_owner("autocompress_check_layers", chip, layers=list(layers))
        if issues is None:
            return []
        if not isinstance(issues, (list, tuple)) or not all(
            isinstance(item, LayerIssue) and item.verdict in VERDICTS for item in issues
        ):
            raise PluginError(
                f"plugin {owner!r}: autocompress_check_layers must return a list of LayerIssue "
                f"(verdict one of {', '.join(VERDICTS)}) or None, got {issues!r:.120}"
            )
        return list(issues)

    def run_export_steps(
        self, chip: ChipSpec, export_dir: Path, onnx_path: Path, card: dict[str, Any]
    ) -> list[Path]:
        """Let the owning plugin write its toolchain files into ``export_dir``; their paths."""
        export_dir = Path(export_dir)
        owner, written = self._call_owner(
            "autocompress_export_step",
            chip,
            export_dir=export_dir,
            onnx_path=Path(onnx_path),
            card=card,
        )
        if written is None:
            return []
        paths = [Path(p) for p in written]
        root = export_dir.resolve()
        for path in paths:
            resolved = path.resolve()
            if root != resolved and root not in resolved.parents:
                raise PluginError(
                    f"plugin {owner!r}: autocompress_export_step wrote {path} outside {export_dir}"
                )
            if not path.exists():
                raise PluginError(
                    f"plugin {owner!r}: autocompress_export_step returned {path}, "
                    "which does not exist"
                )
        return paths


# -- the process-wide registry ---------------------------------------------------------------

_default: ChipRegistry | None = None
_default_lock = threading.Lock()


def default_registry() -> ChipRegistry:
    """The process-wide registry (entry points loaded on first use)."""
    global _default
    registry = _default
    if registry is None:
        with _default_lock:
            if _default is None:
                _default = ChipRegistry()
            registry = _default
    return registry


def reset_default_registry() -> None:
    """Forget the process-wide registry (e.g. after installing a plugin or changing the env)."""
    global _default
    with _default_lock:
        _default = None


def list_chips() -> list[ChipSpec]:
    """Every chip the installed plugins provide, sorted by id."""
    return default_registry().chips()


def get_chip(chip_id: str) -> ChipSpec:
    """The installed chip with this id; :class:`UnknownNameError` names the closest ids."""
    return default_registry().get_chip(chip_id)


def default_chip_id() -> str | None:
    """The chip a search uses when it names none (see :meth:`ChipRegistry.default_chip_id`)."""
    return default_registry().default_chip_id()


def plugin_problems() -> list[PluginProblem]:
    """Plugins (or chips) that could not be used, with the reason."""
    return default_registry().problems()


def plugin_versions() -> dict[str, str]:
    """Plugin name -> distribution version, for run.yaml and deploy cards."""
    return default_registry().versions()


def override_cost(chip: ChipSpec, layers: Sequence[LayerDescriptor]) -> Cost | None:
    """A plugin's whole-model cost for its own chip, or None to use the analytical model."""
    return default_registry().override_cost(chip, layers)


def override_layer_cost(chip: ChipSpec, layer: LayerDescriptor) -> LayerCost | None:
    """A plugin's cost of one layer on its own chip, or None."""
    return default_registry().override_layer_cost(chip, layer)


def check_layers(chip: ChipSpec, layers: Sequence[LayerDescriptor]) -> list[LayerIssue]:
    """Layers the chip's own plugin says cannot run on its NPU, with reasons (may be [])."""
    return default_registry().check_layers(chip, layers)


def run_export_steps(
    chip: ChipSpec, export_dir: Path, onnx_path: Path, card: dict[str, Any]
) -> list[Path]:
    """Vendor-toolchain files the chip's plugin writes into ``export_dir`` (may be [])."""
    return default_registry().run_export_steps(chip, export_dir, onnx_path, card)
