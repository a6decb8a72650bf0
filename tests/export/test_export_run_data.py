"""Finetune and export use the run's own data: the splits and normalisation the search used.

Before run.yaml had a type, each reader rebuilt the data from its own reading of the
dataset keys: recovery training (``finetune``, ``export --recover-epochs``) dropped
``input_size``/``mean``/``std``, and export defaulted ``val_fraction`` to 0.1 (the search
uses 0.2), so a ``--data-limit`` run could be recovered, verified and carded on data split
or normalised differently from the search's. Now one function rebuilds it
(``DatasetSpec.load``).
"""

from __future__ import annotations

import pytest
import yaml

from autocompress.core import data as data_module
from autocompress.export.api import export
from autocompress.search.api import search


def _same_data(used, searched, normalization) -> None:
    # train/val sizes depend on val_fraction, test on limit; mean/std on the normalisation
    sizes = (len(used.train), len(used.val), len(used.test))
    assert sizes == (len(searched.train), len(searched.val), len(searched.test))
    assert used.test.labels.tolist() == searched.test.labels.tolist()
    assert list(used.mean) == pytest.approx(normalization["mean"])
    assert list(used.std) == pytest.approx(normalization["std"])


def test_export_and_recovery_of_a_data_limit_run_use_the_searchs_own_split(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    result = search(  # fc_cnn, the digits default: it learns 240 images in seconds
        data_limit=300,
        mean=[0.5],
        std=[0.5],
        trials=1,
        epochs=1,
        teacher_epochs=15,
        rungs=[1],
        device="cpu",
        out=run_dir,
    )
    trained = [r for r in result.trials if r.state == "complete"]
    assert trained, "the anchor trial trains"
    number = trained[0].number
    recorded = yaml.safe_load((run_dir / "run.yaml").read_text())
    dataset, normalization = recorded["dataset"], recorded["normalization"]
    assert dataset["limit"] == 300 and dataset["val_fraction"] == 0.2
    assert normalization == {"mean": [0.5], "std": [0.5]}
    searched = data_module.load_dataset(
        "digits", seed=0, val_fraction=0.2, limit=300, mean=[0.5], std=[0.5]
    )

    loaded = []
    real_load = data_module.load_dataset

    def spy(*args, **kwargs):
        splits = real_load(*args, **kwargs)
        loaded.append(splits)
        return splits

    monkeypatch.setattr(data_module, "load_dataset", spy)
    exported = export(
        run_dir, trial=number, out=tmp_path / "export", recover_epochs=2, device="cpu"
    )
    assert len(loaded) == 2, "the recovery training and the export check each read the data"
    for used in loaded:
        _same_data(used, searched, normalization)
    check_data = exported.card["check_data"]
    assert check_data["split_images"] == len(searched.test)
    assert check_data["normalization"]["mean"] == pytest.approx(normalization["mean"])
    assert check_data["normalization"]["std"] == pytest.approx(normalization["std"])

    # A run.yaml without val_fraction means the search's default (0.2), never another one.
    text = (run_dir / "run.yaml").read_text()
    (run_dir / "run.yaml").write_text(text.replace("  val_fraction: 0.2\n", "", 1))
    loaded.clear()
    export(run_dir, trial=number, out=tmp_path / "export-again")
    assert len(loaded) == 1
    _same_data(loaded[0], searched, normalization)
