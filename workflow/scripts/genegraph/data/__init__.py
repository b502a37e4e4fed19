"""Reading, checking and cleaning datasets: the sheet, downloads, readers, the canonical dataset, QC."""
