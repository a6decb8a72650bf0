"""The bundled Ambarella plugin passes the chip-plugin contract."""

import autocompress_ambarella

from autocompress.testing import ChipPluginContract


class TestAmbarellaPlugin(ChipPluginContract):
    plugin = autocompress_ambarella
    expected_chip_ids = ("ambarella/cv22",)
