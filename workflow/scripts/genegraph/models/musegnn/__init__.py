"""MuSe-GNN: the cross-graph TransformerConv model (:mod:`.model`), its losses (:mod:`.losses`), gene
correspondences between graphs (:mod:`.pairs`) and the training stage (:mod:`.train`, entry point
:func:`~genegraph.models.musegnn.train.train_musegnn`)."""
