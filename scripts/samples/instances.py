"""Small, deterministic CT and MR instances made with pydicom.

Every UID sits under one fixed root so that re-running the recorder produces the
same identifiers (and therefore the same C-GET identifiers and sub-operations).
Images are 64x64, 16 bits allocated / 12 stored, so each instance is ~8.5 KB.

Layout (patient -> study -> series -> instances):

* ``PAT001`` Doe^Alice, study 1 "CT chest": CT series 1 (3 images), CT series 2 (2 images)
* ``PAT002`` Roe^Bob,   study 2 "CT+MR mixed": CT series 1 (4 images), MR series 2 (1 image)
* ``PAT003`` Poe^Carol, study 3 "MR head": MR series 1 (3 images)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    ExplicitVRLittleEndian,
)

# pydicom's organisation root plus a fixed branch for this project's samples.
UID_ROOT = "1.2.826.0.1.3680043.8.498.4711."

CT_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.2")
MR_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.4")

ROWS = COLUMNS = 64


@dataclass(frozen=True)
class SeriesSpec:
    number: int
    modality: str  # "CT" or "MR"
    count: int
    description: str


@dataclass(frozen=True)
class StudySpec:
    number: int
    patient_id: str
    patient_name: str
    birth_date: str
    sex: str
    description: str
    series: tuple[SeriesSpec, ...]


STUDIES: tuple[StudySpec, ...] = (
    StudySpec(
        1,
        "PAT001",
        "Doe^Alice",
        "19700101",
        "F",
        "CT chest",
        (SeriesSpec(1, "CT", 3, "Axial 5mm"), SeriesSpec(2, "CT", 2, "Axial 2mm")),
    ),
    StudySpec(
        2,
        "PAT002",
        "Roe^Bob",
        "19651231",
        "M",
        "CT+MR mixed",
        (SeriesSpec(1, "CT", 4, "Abdomen"), SeriesSpec(2, "MR", 1, "Localizer")),
    ),
    StudySpec(
        3,
        "PAT003",
        "Poe^Carol",
        "19820615",
        "F",
        "MR head",
        (SeriesSpec(1, "MR", 3, "T1 axial"),),
    ),
)


def study_uid(study: int) -> str:
    return f"{UID_ROOT}1.{study}"


def series_uid(study: int, series: int) -> str:
    return f"{UID_ROOT}2.{study}.{series}"


def instance_uid(study: int, series: int, number: int) -> str:
    return f"{UID_ROOT}3.{study}.{series}.{number}"


def frame_of_reference_uid(study: int) -> str:
    return f"{UID_ROOT}4.{study}"


def study_spec(study: int) -> StudySpec:
    for spec in STUDIES:
        if spec.number == study:
            return spec
    raise KeyError(study)


def _pixels(study: int, series: int, number: int) -> bytes:
    y, x = np.mgrid[0:ROWS, 0:COLUMNS]
    values = (x * (3 + series) + y * (5 + study) + number * 97) % 4096
    return values.astype("<u2").tobytes()


def _make_one(spec: StudySpec, series: SeriesSpec, number: int) -> Dataset:
    sop_class = CT_IMAGE_STORAGE if series.modality == "CT" else MR_IMAGE_STORAGE
    sop_uid = instance_uid(spec.number, series.number, number)

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = "20240301"
    ds.SeriesDate = "20240301"
    ds.ContentDate = "20240301"
    ds.StudyTime = f"{9 + spec.number:02d}0000"
    ds.SeriesTime = f"{9 + spec.number:02d}{series.number:02d}00"
    ds.ContentTime = f"{9 + spec.number:02d}{series.number:02d}{number:02d}"
    ds.AccessionNumber = f"ACC{spec.number:04d}"
    ds.Modality = series.modality
    ds.Manufacturer = "trace_analyzer samples"
    ds.ReferringPhysicianName = "Ref^Doctor"
    ds.StudyDescription = spec.description
    ds.SeriesDescription = series.description
    ds.PatientName = spec.patient_name
    ds.PatientID = spec.patient_id
    ds.PatientBirthDate = spec.birth_date
    ds.PatientSex = spec.sex
    ds.SliceThickness = "5"
    if series.modality == "CT":
        ds.KVP = "120"
    else:
        ds.ScanningSequence = "SE"
        ds.SequenceVariant = "NONE"
        ds.ScanOptions = ""
        ds.MRAcquisitionType = "2D"
        ds.RepetitionTime = "500"
        ds.EchoTime = "15"
        ds.EchoTrainLength = "1"
        ds.MagneticFieldStrength = "1.5"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = study_uid(spec.number)
    ds.SeriesInstanceUID = series_uid(spec.number, series.number)
    ds.StudyID = f"S{spec.number}"
    ds.SeriesNumber = series.number
    ds.InstanceNumber = number
    ds.ImagePositionPatient = [-160, -160, -5 * number]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.FrameOfReferenceUID = frame_of_reference_uid(spec.number)
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ROWS
    ds.Columns = COLUMNS
    ds.PixelSpacing = [5, 5]
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    if series.modality == "CT":
        ds.RescaleIntercept = "-1024"
        ds.RescaleSlope = "1"
    ds.PixelData = _pixels(spec.number, series.number, number)
    ds["PixelData"].VR = "OW"
    return ds


def study_instances(study: int) -> list[Dataset]:
    """All instances of one study, in series / instance-number order."""
    spec = study_spec(study)
    out = []
    for series in spec.series:
        for number in range(1, series.count + 1):
            out.append(_make_one(spec, series, number))
    return out


def all_instances() -> list[Dataset]:
    out: list[Dataset] = []
    for spec in STUDIES:
        out.extend(study_instances(spec.number))
    return out


def write_instances(directory: Path, datasets: list[Dataset]) -> list[Path]:
    """Write each dataset as a DICOM file (with file meta) into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in datasets:
        path = directory / f"{ds.SOPInstanceUID}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
