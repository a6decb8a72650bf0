"""Test kits other projects' tests can run (see docs/writing-a-chip-plugin.md).

- :class:`ChipPluginContract` — the chip-plugin contract as pytest test cases;
  subclass it in a plugin's tests and set ``plugin``.

Imported lazily: the kit needs pytest, which only tests have.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SAMPLE_CARD", "ChipPluginContract"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from autocompress.testing import chip_contract

        return getattr(chip_contract, name)
    raise AttributeError(f"module 'autocompress.testing' has no attribute {name!r}")
