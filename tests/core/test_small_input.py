"""``small_input`` left automatic: one rule (models.auto_small_input) for train, search, spaces.

The rule that won is the search's: only torchvision models get the flag (they are
the only models whose stem it replaces), so a teacher trained by ``autocompress
train`` records the same ModelSpec the search builds. The teacher's old rule set it
for every model (small_cnn teachers said ``small_input: true`` and the search's spec
said false).
"""

from __future__ import annotations

import pytest

from autocompress.core.models import SMALL_INPUT_MAX_PX, auto_small_input, has_small_input_stem
from autocompress.search.prepare import _auto_small_input
from autocompress.search.settings import SearchSettings


@pytest.mark.parametrize(
    ("name", "hw", "expected"),
    [
        ("resnet18", (32, 32), True),
        ("resnet18", (8, 8), True),
        ("resnet18", (SMALL_INPUT_MAX_PX, SMALL_INPUT_MAX_PX), True),
        ("resnet18", (224, 224), False),
        ("mobilenet_v2", (32, 96), False),  # a side over 64 px keeps torchvision's stem
        ("small_cnn", (8, 8), False),
        ("fc_cnn", (8, 8), False),
        ("my_model.py:build", (32, 32), False),
    ],
)
def test_auto_small_input(name, hw, expected):
    assert auto_small_input(name, hw) is expected
    assert _auto_small_input(SearchSettings(model=name), hw) is expected


def test_only_torchvision_models_have_a_stem_to_replace():
    assert has_small_input_stem("resnet18")
    assert not has_small_input_stem("small_cnn")
    assert not has_small_input_stem("path/to/file.py:fn")


def test_a_trained_teacher_records_what_the_search_builds():
    from autocompress.compress.teacher import default_spec
    from autocompress.core.data import load_dataset

    digits = load_dataset("digits", limit=200)
    assert default_spec("small_cnn", digits).small_input is False  # was True
    assert default_spec("resnet18", digits).small_input is True
    assert default_spec("resnet18", digits, small_input=False).small_input is False
