"""trace_analyzer: rebuild and check DICOM C-GET exchanges from captures."""
