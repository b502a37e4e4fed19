"""The HTML report of a run: the gene-level sections (:mod:`.html`) and one module per cell-level task stage
(``genegraph.report.<stage>``), each with ``section(inputs) -> (id, title, caption, body HTML)``."""
