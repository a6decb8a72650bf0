"""The bundled Hisilicon plugin passes the chip-plugin contract."""

import autocompress_hisilicon

from autocompress.testing import ChipPluginContract


class TestHisiliconPlugin(ChipPluginContract):
    plugin = autocompress_hisilicon
    expected_chip_ids = ("hisilicon/hi3519a", "hisilicon/hi3559a")
