"""The chip plugin hooks: every hook a plugin may implement, in one typed module.

A chip plugin is a module (or object) with functions decorated by
:data:`hookimpl` and named like the specs below; it is found through the
entry-point group ``autocompress.chips`` (see ``docs/writing-a-chip-plugin.md``).
Core code never calls ``pm.hook`` directly: it goes through
:mod:`autocompress.hardware.plugins`.

Each docstring says how the hook is called:

- *collect-all*: every plugin's result is gathered (a list of results);
- *first-result*: calling stops at the first implementation that returns
  something other than ``None``.

Hooks a plugin does not need are simply left out. Room is left for later hooks
(a quantization-scheme hook, calibration against device measurements …): a new
hook is added here with a default of "not implemented", so old plugins keep
working.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pluggy

from autocompress.hardware.cost import Cost, LayerCost
from autocompress.hardware.layers import LayerDescriptor
from autocompress.hardware.legality import LayerIssue
from autocompress.hardware.spec import ChipSpec

PROJECT_NAME = "autocompress"
"""The pluggy project name; markers must use it."""

ENTRY_POINT_GROUP = "autocompress.chips"
"""The ``[project.entry-points]`` group chip plugins register under."""

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Decorate a plugin's hook functions with this marker."""


@hookspec
def autocompress_chips() -> list[ChipSpec]:
    """The chips this plugin contributes. **Collect-all.**

    Return a list of :class:`~autocompress.hardware.spec.ChipSpec`. Chip ids must be
    ``"vendor/name"`` in lower case and unique across all installed plugins (on a
    clash the first plugin loaded wins and the clash is reported). Called once per
    process; the result is cached, so building specs may take a moment.
    """


@hookspec(firstresult=True)
def autocompress_estimate_cost(chip: ChipSpec, layers: list[LayerDescriptor]) -> Cost | None:
    """Override the whole-model cost for this plugin's own chips. **First-result.**

    ``layers`` are the descriptors of one network (see
    :func:`autocompress.hardware.extract.extract_layers`). Return a
    :class:`~autocompress.hardware.cost.Cost` with ``chip_id == chip.chip_id`` to
    replace the built-in analytical model (e.g. a vendor simulator or a lookup
    table of measured latencies), or ``None`` to keep it. Must return ``None`` for
    chips the plugin did not contribute. Called for every trial on every chip:
    keep it fast.
    """


@hookspec(firstresult=True)
def autocompress_layer_cost(chip: ChipSpec, layer: LayerDescriptor) -> LayerCost | None:
    """Override the cost of one layer on this plugin's own chips. **First-result.**

    Return a :class:`~autocompress.hardware.cost.LayerCost` for layers whose cost
    the vendor knows better than the analytical model (e.g. a measured kernel), or
    ``None`` to keep the built-in estimate. Must return ``None`` for foreign chips.
    """


@hookspec(firstresult=True)
def autocompress_check_layers(
    chip: ChipSpec, layers: list[LayerDescriptor]
) -> list[LayerIssue] | None:
    """Say which layers this plugin's chip cannot run on its NPU. **First-result.**

    ``layers`` are the descriptors of one network with the precision (and
    sparsity) each layer is configured with. Return a list of
    :class:`~autocompress.hardware.legality.LayerIssue` — one per layer the
    toolchain cannot compile (``verdict="unsupported"``: an operator, channel
    count, kernel size or bit-width combination it lacks) or would run on the
    CPU (``verdict="cpu_fallback"``), each with a reason a user can act on —
    an empty list when every layer is fine, or ``None`` for chips the plugin
    did not contribute. The search records a configuration with any issue as
    ``infeasible`` with the reasons and trains nothing; ``autocompress cost``
    and ``report`` print them. Called for every trial on the main chip: keep
    it fast (plain checks on the descriptors).
    """


@hookspec
def autocompress_export_step(
    chip: ChipSpec, export_dir: Path, onnx_path: Path, card: dict[str, Any]
) -> list[Path] | None:
    """Write vendor-toolchain files next to an exported model. **Collect-all.**

    Called by ``autocompress export`` after the ONNX model and its deploy card are
    written. A plugin writes, inside ``export_dir`` only, what its toolchain needs
    for this plugin's own chips (e.g. an RKNN-Toolkit config, a TensorRT
    ``trtexec`` command) and returns the paths it wrote; for foreign chips it
    returns ``None``.

    Card keys a plugin may read (all optional; be defensive):

    - ``chip_id`` (str)
    - ``layers``: list of ``{name, weight_bits, activation_bits, out_channels,
      sparsity_pattern}`` (``name`` is the PyTorch module name)
    - ``input_shape``: ``[C, H, W]``
    - ``normalization``: ``{mean: [...], std: [...]}`` on the 0..1 pixel scale
    """


@hookspec
def autocompress_default_chip() -> str | None:
    """The id of one of this plugin's own chips to use when a search names none. **Optional.**

    The facade asks the plugins in load order (bundled plugins first, each group by
    entry-point name) and takes the first answer that is a chip the answering plugin
    contributes; an answer naming another plugin's chip is reported and ignored.
    ``AUTOCOMPRESS_DEFAULT_CHIP`` overrides every answer; with no answer at all the
    first installed chip id (sorted) is the default. Return ``None`` (or leave the hook
    out) to make no claim. Plugins without it keep working.
    """
