"""Every coded value the product reads or writes, as an Enum (in the manner of highdicom)."""
from __future__ import annotations

from enum import Enum


class Decision(str, Enum):
    """What happened to one input file."""

    WRITTEN = "written"  # de-identified output written under OUTPUT
    QUARANTINED = "quarantined"  # copied untouched to the quarantine folder, with a reason
    SKIPPED = "skipped"  # not an image this tool handles; nothing written


class Stage(str, Enum):
    """The pipeline stage that made a decision."""

    READ = "read"
    HEADER = "header"
    DETECT = "detect"
    RETAIN = "retain"
    REDACT = "redact"
    VERIFY = "verify"
    WRITE = "write"


class BoxClass(str, Enum):
    LATERALITY = "laterality"
    OTHER_MARKER = "other_marker"


class BoxAction(str, Enum):
    REDACTED = "redacted"  # the whole box was filled
    KEPT_LATERALITY = "kept_laterality"  # only the laterality glyph kept, the rest of the box filled
    REJECTED = "rejected"  # a detector proposal not confirmed as text; pixels untouched


class HeaderAction(str, Enum):
    """Action codes of DICOM PS3.15 Annex E, Table E.1-1."""

    REMOVE = "X"
    ZERO = "Z"
    DUMMY = "D"
    UID = "U"
    KEEP = "K"
    CLEAN = "C"
    SHIFT = "S"  # dates under the Retain Longitudinal Temporal Information with Modified Dates option
    AGE_FROM_DATES = "A"  # Patient's Age written from the birth and study dates the profile removes (Retain
    #                       Patient Characteristics, where the header states no age)


class PatientSex(str, Enum):
    """Patient's Sex (0010,0040), PS3.3 C.7.1.1: the only values kept under Retain Patient Characteristics."""

    MALE = "M"
    FEMALE = "F"
    OTHER = "O"


class SmokingStatus(str, Enum):
    """Smoking Status (0010,21A0)."""

    YES = "YES"
    NO = "NO"
    UNKNOWN = "UNKNOWN"


class PregnancyStatus(str, Enum):
    """Pregnancy Status (0010,21C0), a US whose defined terms are 1-4 (written here as text)."""

    NOT_PREGNANT = "1"
    POSSIBLY_PREGNANT = "2"
    DEFINITELY_PREGNANT = "3"
    UNKNOWN = "4"


class PatientSexNeutered(str, Enum):
    """Patient's Sex Neutered (0010,2203)."""

    ALTERED = "ALTERED"
    UNALTERED = "UNALTERED"


class AgeUnit(str, Enum):
    """The unit letter of an Age String (AS, PS3.5 6.2): nnnD, nnnW, nnnM or nnnY."""

    DAYS = "D"
    WEEKS = "W"
    MONTHS = "M"
    YEARS = "Y"


class Photometric(str, Enum):
    MONOCHROME1 = "MONOCHROME1"
    MONOCHROME2 = "MONOCHROME2"
    RGB = "RGB"
    PALETTE_COLOR = "PALETTE COLOR"
    YBR_FULL = "YBR_FULL"
    YBR_FULL_422 = "YBR_FULL_422"
    YBR_ICT = "YBR_ICT"
    YBR_RCT = "YBR_RCT"


class DeidMethodCode(Enum):
    """CID 7050 De-identification Method (scheme DCM): (code value, code meaning)."""

    BASIC_PROFILE = ("113100", "Basic Application Confidentiality Profile")
    CLEAN_PIXEL_DATA = ("113101", "Clean Pixel Data Option")
    CLEAN_DESCRIPTORS = ("113105", "Clean Descriptors Option")
    RETAIN_LONGITUDINAL_MODIFIED_DATES = (
        "113107",
        "Retain Longitudinal Temporal Information Modified Dates Option",
    )
    RETAIN_PATIENT_CHARACTERISTICS = ("113108", "Retain Patient Characteristics Option")

    @property
    def value_code(self) -> str:
        return self.value[0]

    @property
    def meaning(self) -> str:
        return self.value[1]


class OutputNames(str, Enum):
    """How outputs are named: as their inputs, or from the de-identified header and a keyed digest (a site whose
    folders and files carry patients' names shares none of them)."""

    SAME = "same"
    PSEUDONYMOUS = "pseudonymous"


class NonImagePolicy(str, Enum):
    """What to do with a DICOM object that has no pixel data (SR, PR, KO...)."""

    SKIP = "skip"
    HEADER_ONLY = "header_only"


class CheckStatus(str, Enum):
    """How one part of ``radiograph-deid check`` went."""

    OK = "ok"
    WARN = "warn"  # works, with a limit the site should know (files of some syntax quarantined)
    FAIL = "FAIL"  # runs would quarantine every file, or could not start
