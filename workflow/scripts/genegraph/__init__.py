"""genegraph: single-cell datasets to gene graphs and unified gene embeddings.

The library behind the Snakemake workflow. One module per thing it computes; AnnData in, AnnData out.
"""

__version__ = "0.1.0"
