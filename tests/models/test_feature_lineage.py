"""Training reports which table columns, at which snapshot, became which feature of the model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from models.exceptions import TrainingInputError
from models.jobs import WINE_FEATURES, get_job
from models.train import train
from tests.models.conftest import land, wine_part


def test_the_model_output_carries_its_features_column_lineage(local_settings: Any, transport: Any, tmp_path: Path) -> None:
    snap = land(local_settings, wine_part(tmp_path / "w.csv", 0, 178), "raw.wine", transport)
    result = train(local_settings, get_job("wine_classifier"), transport=transport)
    complete = transport.events[-1]
    model = next(o for o in complete["outputs"] if o["facets"]["datasetType"]["datasetType"] == "MODEL")
    inp = complete["inputs"][0]
    assert inp["facets"]["version"]["datasetVersion"] == str(snap)
    facet = model["facets"]["columnLineage"]
    assert tuple(facet["fields"]) == WINE_FEATURES
    for feature, spec in facet["fields"].items():
        [source] = spec["inputFields"]
        assert (source["namespace"], source["name"], source["field"]) == (inp["namespace"], inp["name"], feature)
        assert source["transformations"][0]["type"] == "DIRECT"
    [target] = facet["dataset"]
    assert (target["field"], target["transformations"][0]["type"], target["transformations"][0]["subtype"]) == ("target", "INDIRECT", "TARGET")
    assert model["facets"]["version"]["datasetVersion"] == str(result.version.version)


def test_a_declared_feature_missing_from_the_input_is_refused(local_settings: Any, transport: Any, tmp_path: Path) -> None:
    import pandas as pd

    path = wine_part(tmp_path / "w.csv", 0, 60)
    pd.read_csv(path).drop(columns=["hue"]).to_csv(path, index=False)
    land(local_settings, path, "raw.wine", transport)
    with pytest.raises(TrainingInputError, match="the input has no column\\(s\\) hue, which the job trains on; land a file that has them"):
        train(local_settings, get_job("wine_classifier"), transport=transport)
