"""The sheet's subset filter language: what it selects, and that no value can run code."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from genegraph.data.cell_filter import parse_filter, select_cells
from genegraph.errors import DataError

OBS = pd.DataFrame({
    "slice": [1, 2, 2, 3, 4],
    "celltype": pd.Categorical(["B cell", "T cell", "B cell", "NK", "T cell"]),
    "donor": ["d1", "d1", "d2", "d2", "d3"],
    "n genes": [150.0, 250.0, 300.0, 90.0, 500.0],
    "code": ["1", "2", "2", "3", "x"],
}, index=[f"c{i}" for i in range(5)])


@pytest.mark.parametrize("text,cells", [
    ("slice == 2", [1, 2]),
    ("slice != 2", [0, 3, 4]),
    ("slice >= 3", [3, 4]),
    ("slice < 2.5", [0, 1, 2]),
    ("celltype == 'B cell'", [0, 2]),
    ('celltype == "T cell"', [1, 4]),
    ("donor in ['d1', 'd3']", [0, 1, 4]),
    ("donor not in ['d1', 'd3']", [2, 3]),
    ("slice in [1, 4]", [0, 4]),
    ("slice == 2 & donor == 'd2'", [2]),
    ("slice == 1 | celltype == 'NK'", [0, 3]),
    ("slice == 1 or slice == 4 and donor == 'd3'", [0, 4]),  # and binds tighter than or
    ("(slice == 1 or slice == 4) and donor == 'd3'", [4]),
    ("~(slice == 2)", [0, 3, 4]),
    ("not slice == 2 and not donor == 'd3'", [0, 3]),
    ("`n genes` >= 200", [1, 2, 4]),
    ("code == '2'", [1, 2]),  # a string compares with the values as text
    ("slice == '2'", [1, 2]),  # an integer column compares as text too
])
def test_filters_select_the_right_cells(text, cells):
    assert np.flatnonzero(select_cells(OBS, text)).tolist() == cells


@pytest.mark.parametrize("payload", [
    "@pd.io.common.os.system('touch {marker}') == 0",              # @ globals
    "__import__('os').system('touch {marker}') == 0",               # __import__
    "open('{marker}', 'w').write('x') == 1",                        # builtins
    "slice.__class__.__mro__[1].__subclasses__() == 1",             # dunder attributes
    "donor.to_csv('{marker}') == 1",                                # method call on a column
    "celltype.str.cat() == 'x'",                                    # attribute chains
    "exec(\"open('{marker}','w')\") == 1",                           # exec
    "slice == (lambda: open('{marker}', 'w'))()",                   # lambda
    "slice == 1; import os",                                        # statements
    "slice + 1 == 2",                                               # arithmetic
    "slice == donor",                                               # column on the right
])
def test_no_payload_runs_and_each_is_rejected(payload, tmp_path):
    marker = tmp_path / "pwned"
    text = payload.format(marker=marker)
    with pytest.raises(DataError, match="subset"):
        parse_filter(text)
    with pytest.raises(DataError, match="subset"):
        select_cells(OBS, text)
    assert not marker.exists()


@pytest.mark.parametrize("text,message", [
    ("", "subset is empty"),
    ("slice ==", "expected a number or a quoted string at 'the end'"),
    ("slice = 2", "unexpected text"),
    ("slice in 1, 2", "expected \\["),
    ("(slice == 1", "expected \\)"),
    ("slice not 2", "expected 'in' after 'not'"),
])
def test_syntax_errors_say_where(text, message):
    with pytest.raises(DataError, match=message):
        parse_filter(text)


def test_unknown_column_and_type_errors_are_clear():
    with pytest.raises(DataError, match="unknown cell annotation\\(s\\) batch .*available: slice"):
        select_cells(OBS, "batch == 1")
    with pytest.raises(DataError, match="column 'donor' is not numeric"):
        select_cells(OBS, "donor > 1")
    with pytest.raises(DataError, match="'<' needs a number"):
        select_cells(OBS, "donor < 'd2'")
