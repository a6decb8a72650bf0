"""The bundled Qualcomm plugin passes the chip-plugin contract."""

import autocompress_qualcomm

from autocompress.testing import ChipPluginContract


class TestQualcommPlugin(ChipPluginContract):
    plugin = autocompress_qualcomm
    expected_chip_ids = ("qualcomm/qcs6490", "qualcomm/sm8550")
