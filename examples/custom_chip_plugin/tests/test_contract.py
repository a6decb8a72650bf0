"""Run the autocompress chip-plugin contract on this plugin: `pytest` in this folder."""

import autocompress_acme

from autocompress.testing import ChipPluginContract


class TestAcmePlugin(ChipPluginContract):
    plugin = autocompress_acme
    expected_chip_ids = ("acme/npu1",)


def test_pooling_runs_on_the_pooling_unit():
    from autocompress.hardware.layers import LayerDescriptor, LayerKind

    chip = autocompress_acme.autocompress_chips()[0]
    pool = LayerDescriptor(
        name="pool",
        kind=LayerKind.POOL,
        in_channels=8,
        out_channels=8,
        kernel_size=(2, 2),
        stride=(2, 2),
        dilation=(1, 1),
        groups=8,
        input_hw=(8, 8),
        output_hw=(4, 4),
        batch=1,
        macs=512,
        weight_count=0,
        input_elements=512,
        output_elements=128,
        weight_bits=8,
        activation_bits=8,
    )
    cost = autocompress_acme.autocompress_layer_cost(chip=chip, layer=pool)
    assert cost.latency_ms == 128 / 2000.0 / 1000.0
