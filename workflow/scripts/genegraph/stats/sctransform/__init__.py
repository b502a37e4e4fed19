"""SCTransform-v2 (Seurat-faithful): fit, regularisation, Pearson residuals."""
