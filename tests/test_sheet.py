"""Dataset-sheet validation: every error names the line, the dataset and the column."""

from __future__ import annotations

from pathlib import Path

import pytest

from genegraph.data.sheet import load_schema, load_sheet
from genegraph.errors import DataError

SCHEMA = load_schema(Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "datasets.schema.yaml")
HEADER = "dataset\tmodality\ttissue\tspecies\tsource\tsha256\tformat\tgene_id"
SHA = "a" * 64


def sheet(tmp_path, *rows, header=HEADER) -> Path:
    path = tmp_path / "datasets.tsv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_valid_sheet_is_typed_with_defaults(tmp_path):
    path = sheet(tmp_path, f"d1\tscrna\tblood\thuman\thttps://x.org/a.h5ad\t{SHA.upper()}\th5ad\tsymbol",
                 header=HEADER + "\tmin_genes\tenabled")
    path.write_text(path.read_text().rstrip("\n") + "\t150\tno\n")
    table = load_sheet(path, SCHEMA)
    row = table.loc["d1"]
    assert row["min_genes"] == 150 and isinstance(row["min_genes"], int)
    assert row["enabled"] is False and row["sha256"] == SHA and row["orientation"] is None


@pytest.mark.parametrize("row,message", [
    (f"d1\tproteomics\tblood\thuman\ta.h5ad\t{SHA}\th5ad\tsymbol",
     "line 2 (dataset 'd1'), column 'modality': 'proteomics' is not one of"),
    ("d1\tscrna\tblood\thuman\ta.h5ad\tabc123\th5ad\tsymbol", "column 'sha256': 'abc123' does not match"),
    ("d-1\tscrna\tblood\thuman\ta.h5ad\t\th5ad\tsymbol", "column 'dataset': 'd-1' does not match"),
    ("d1\tscrna\tblood\thuman\ta.csv\t\tcsv\tsymbol", "column 'orientation': is empty (required for format csv)"),
    ("d1\tscrna\t\thuman\ta.h5ad\t\th5ad\tsymbol", "column 'tissue': is empty"),
    ("d1\tscrna\tblood\thuman\tftp://x/a.h5ad\t\th5ad\tsymbol", "column 'source': 'ftp://x/a.h5ad' does not match"),
])
def test_bad_values_name_row_and_column(tmp_path, row, message):
    with pytest.raises(DataError) as err:
        load_sheet(sheet(tmp_path, row), SCHEMA)
    assert message in str(err.value)


def test_duplicate_ids(tmp_path):
    row = "d1\tscrna\tblood\thuman\ta.h5ad\t\th5ad\tsymbol"
    with pytest.raises(DataError, match="lines 2, 3, column 'dataset': duplicate dataset id 'd1'"):
        load_sheet(sheet(tmp_path, row, row), SCHEMA)


def test_missing_and_unknown_columns(tmp_path):
    header = HEADER.replace("\tformat", "") + "\tcelltype"
    with pytest.raises(DataError) as err:
        load_sheet(sheet(tmp_path, "d1\tscrna\tblood\thuman\ta.h5ad\t\tsymbol\tx", header=header), SCHEMA)
    assert "missing column 'format'" in str(err.value) and "unknown column 'celltype'" in str(err.value)


def test_non_numeric_override(tmp_path):
    path = sheet(tmp_path, "d1\tscrna\tblood\thuman\ta.h5ad\t\th5ad\tsymbol\tmany", header=HEADER + "\tmin_genes")
    with pytest.raises(DataError, match="column 'min_genes': 'many' is not of type 'integer', 'null'"):
        load_sheet(path, SCHEMA)


def test_empty_sha256_is_allowed_and_means_not_set(tmp_path):
    table = load_sheet(sheet(tmp_path, "d1\tscrna\tblood\thuman\ta.h5ad\t\th5ad\tsymbol"), SCHEMA)
    assert table.loc["d1", "sha256"] is None


def test_trailing_tabs_are_tolerated(tmp_path):
    row = f"d1\tscrna\tblood\thuman\ta.h5ad\t{SHA}\th5ad\tsymbol\t\t\t"
    table = load_sheet(sheet(tmp_path, row), SCHEMA)
    assert table.loc["d1", "modality"] == "scrna" and table.loc["d1", "gene_id"] == "symbol"


def test_extra_fields_name_the_row_and_the_field_counts(tmp_path):
    row = f"d1\tscrna\tblood\thuman\ta.h5ad\t{SHA}\th5ad\tsymbol\textra"
    with pytest.raises(DataError, match="datasets.tsv line 2: the row has 9 fields, the header has 8"):
        load_sheet(sheet(tmp_path, row), SCHEMA)


def test_short_rows_are_padded(tmp_path):
    path = sheet(tmp_path, f"d1\tscrna\tblood\thuman\ta.h5ad\t{SHA}\th5ad\tsymbol", header=HEADER + "\tbatch_key")
    assert load_sheet(path, SCHEMA).loc["d1", "batch_key"] is None


@pytest.mark.parametrize("content", ["", "\n\n", "# only a comment\n"])
def test_empty_sheet_is_a_sheet_error(tmp_path, content):
    path = tmp_path / "datasets.tsv"
    path.write_text(content)
    with pytest.raises(DataError, match="dataset sheet .* is empty: it needs a header row"):
        load_sheet(path, SCHEMA)


def test_line_numbers_count_comment_and_blank_lines(tmp_path):
    path = tmp_path / "datasets.tsv"
    path.write_text("\n".join([HEADER, "# a comment", "", "d1\tproteomics\tblood\thuman\ta.h5ad\t\th5ad\tsymbol"]))
    with pytest.raises(DataError, match="datasets.tsv line 4 \\(dataset 'd1'\\), column 'modality'"):
        load_sheet(path, SCHEMA)


def test_values_are_literal_with_quotes_and_hashes(tmp_path):
    row = "d1\tscrna\tblood\thuman\thttps://x.org/a.h5ad#v2\t\th5ad\tsymbol\tcelltype == \"B cell\""
    table = load_sheet(sheet(tmp_path, row, header=HEADER + "\tsubset"), SCHEMA)
    assert table.loc["d1", "source"] == "https://x.org/a.h5ad#v2"
    assert table.loc["d1", "subset"] == 'celltype == "B cell"'


@pytest.mark.parametrize("subset", ["@pd.io.common.os.system('touch x') == 0", "__import__('os') == 1",
                                    "slice.to_csv('x') == 1"])
def test_a_subset_outside_the_filter_language_stops_at_parse_time(tmp_path, subset):
    row = f"d1\tscrna\tblood\thuman\ta.h5ad\t\th5ad\tsymbol\t{subset}"
    with pytest.raises(DataError, match="line 2 \\(dataset 'd1'\\), column 'subset': subset"):
        load_sheet(sheet(tmp_path, row, header=HEADER + "\tsubset"), SCHEMA)
