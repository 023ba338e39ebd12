"""Helpers for ``scripts/record_samples.py``: test instances, capture control,
DICOM peers (pynetdicom and DCMTK), crafted-capture transforms and the manifest.

Nothing here is part of the ``trace_analyzer`` package; the modules are only
used to (re)build the bundled sample captures in ``sample_pcaps/``.
"""
