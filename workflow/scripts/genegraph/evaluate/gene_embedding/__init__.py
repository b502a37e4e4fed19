"""Gene-embedding evaluation: the six metrics, LISI, gene modules, function prediction."""
