"""Per-cell metadata tables of a sheet row: csv/tsv, or an R data file (a data frame, or named vectors such as
MUDAN's cell-type annotation of the Zheng sorted PBMCs)."""

from pathlib import Path

import pandas as pd
import pytest
import rdata

from genegraph.data.dataset import read_metadata
from genegraph.errors import DataError


def test_r_data_frame_is_a_cell_table(tmp_path):
    path = tmp_path / "meta.rda"
    rdata.write_rda(path, {"meta": pd.DataFrame({"cell_type": ["T", "B"], "n": [1, 2]}, index=["c1", "c2"])})
    table = read_metadata(path)
    assert list(table.index) == ["c1", "c2"] and table.loc["c2", "cell_type"] == "B" and table.loc["c1", "n"] == "1"


def test_r_file_with_two_data_frames_is_refused(tmp_path):
    path = tmp_path / "two.rda"
    frame = pd.DataFrame({"a": [1]}, index=["c1"])
    rdata.write_rda(path, {"x": frame, "y": frame})
    with pytest.raises(DataError, match="2 data frames"):
        read_metadata(path)


def test_a_file_that_is_not_r_data_is_a_clear_error(tmp_path):
    path = tmp_path / "annot.rda"
    path.write_text("cell,type\nc1,T\n")
    with pytest.raises(DataError, match="annot.rda is not an R data file"):
        read_metadata(path)


def test_csv_metadata_unchanged(tmp_path):
    path = tmp_path / "meta.csv.gz"
    pd.DataFrame({"cell": ["c1", "c2"], "line": ["H1975", ""]}).to_csv(path, index=False)
    table = read_metadata(path)
    assert table.loc["c1", "line"] == "H1975" and table.loc["c2", "line"] == ""


def test_named_character_vector_keeps_its_names(shared_data):
    """MUDAN's referenceAnnot: a character vector named by cell (rdata alone drops the names)."""
    path = Path(shared_data) / "scrna_pbmc_10x_mudan" / "original" / "referenceAnnot.rda"
    if not path.exists():
        pytest.skip("MUDAN reference annotation not in the shared data")
    table = read_metadata(path)
    assert table.shape == (2140, 1) and table.index[0] == "bcellsAAAGATCTCCGAAT-1"
    counts = table["referenceAnnot"].value_counts()
    assert counts["nk"] == 769 and counts["bcells"] == 330 and len(counts) == 9
