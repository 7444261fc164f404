"""Concrete datasets (subclasses of foundations.dataset_base.DatasetBase)."""
