"""Prior-knowledge edge types: STRING protein links mapped to genes, MSigDB hallmark sets."""
