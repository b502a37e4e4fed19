"""Models, one room each: MuSe-GNN (:mod:`.musegnn`) and its gene-embedding baselines (:mod:`.baselines`), the
cell-level models, and the layers they share (:mod:`.layers`)."""
