"""DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile, with three options.

Options (configurable): Retain Longitudinal Temporal Information with Modified Dates, Clean Descriptors, Retain
Patient Characteristics.
Beyond the table, and as the standard requires: private attributes, overlays (60xx) and curves (50xx) are
removed, and every UID that is not a standard (registry) UID is remapped. As defence in depth, any person name,
date or time the table does not name is removed too.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable

import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import UID_dictionary

from . import __version__
from .config import HeaderConfig
from .enums import (AgeUnit, DeidMethodCode, HeaderAction, PatientSex, PatientSexNeutered, PregnancyStatus,
                    SmokingStatus)
from .pseudonym import Pseudonymizer, da_date

A = HeaderAction

# Annex E Table E.1-1, Basic Profile column (where it offers a choice, the one this tool applies).
BASIC_PROFILE: dict[str, HeaderAction] = {
    **{k: A.REMOVE for k in """
    AcquisitionComments AcquisitionContextSequence AcquisitionDeviceProcessingDescription
    AcquisitionProtocolDescription ActualHumanPerformersSequence AdditionalPatientHistory AdmissionID
    AdmittingDate AdmittingDiagnosesCodeSequence AdmittingDiagnosesDescription AdmittingTime Allergies Arbitrary
    AuthorObserverSequence BranchOfService CassetteID CommentsOnThePerformedProcedureStep
    ConfidentialityConstraintOnPatientDataDescription ContentCreatorIdentificationCodeSequence
    ContributionDescription CountryOfResidence CurrentPatientLocation CustodialOrganizationSequence
    DataSetTrailingPadding DerivationDescription DetectorID DeviceSerialNumber DigitalSignaturesSequence
    DischargeDiagnosisDescription DistributionAddress DistributionName EthnicGroup FrameComments GantryID
    GeneratorID HumanPerformerName HumanPerformerOrganization IconImageSequence IdentifyingComments
    ImageComments ImagePresentationComments ImagingServiceRequestComments Impressions InstitutionAddress
    InstitutionCodeSequence InstitutionName InstitutionalDepartmentName InsurancePlanIdentification
    IntendedRecipientsOfResultsIdentificationSequence InterpretationApproverSequence InterpretationAuthor
    InterpretationDiagnosisDescription InterpretationIDIssuer InterpretationRecorder InterpretationText
    InterpretationTranscriber IssuerOfAdmissionID IssuerOfPatientID IssuerOfServiceEpisodeID
    LastMenstrualDate MAC MedicalAlerts MedicalRecordLocator MilitaryRank ModifiedAttributesSequence
    ModifiedImageDescription ModifyingDeviceID NameOfPhysiciansReadingStudy NamesOfIntendedRecipientsOfResults
    Occupation OperatorIdentificationSequence OperatorsName OriginalAttributesSequence OrderCallbackPhoneNumber
    OrderEnteredBy OrderEntererLocation OtherPatientIDs OtherPatientIDsSequence OtherPatientNames
    ParticipantSequence PatientAddress PatientComments PatientState PatientTransportArrangements PatientAge
    PatientBirthName PatientBirthTime PatientInstitutionResidence PatientInsurancePlanCodeSequence
    PatientMotherBirthName PatientPrimaryLanguageCodeSequence PatientPrimaryLanguageModifierCodeSequence
    PatientReligiousPreference PatientSize PatientTelephoneNumbers PatientWeight PatientSexNeutered
    PerformedLocation PerformedProcedureStepDescription PerformedProcedureStepID PerformedProcedureStepStartDate
    PerformedProcedureStepStartTime PerformedProcedureStepEndDate PerformedProcedureStepEndTime
    PerformedStationAETitle PerformedStationGeographicLocationCodeSequence PerformedStationName
    PerformedStationNameCodeSequence PerformingPhysicianIdentificationSequence PerformingPhysicianName
    PersonAddress PersonTelephoneNumbers PhysicianApprovingInterpretation PhysiciansReadingStudyIdentificationSequence
    PhysiciansOfRecord PhysiciansOfRecordIdentificationSequence PlateID PreMedication PregnancyStatus
    ReasonForTheImagingServiceRequest ReasonForStudy ReferencedDigitalSignatureSequence ReferencedPatientAliasSequence
    ReferencedPatientSequence ReferencedPerformedProcedureStepSequence ReferencedSOPInstanceMACSequence
    ReferencedStudySequence ReferringPhysicianAddress ReferringPhysicianIdentificationSequence
    ReferringPhysicianTelephoneNumbers RegionOfResidence RequestAttributesSequence RequestedContrastAgent
    RequestedProcedureComments RequestedProcedureDescription RequestedProcedureID RequestedProcedureLocation
    RequestingPhysician RequestingService ResponsibleOrganization ResponsiblePerson ResultsComments
    ResultsDistributionListSequence ResultsIDIssuer ReviewerName ScheduledHumanPerformersSequence
    ScheduledPatientInstitutionResidence ScheduledPerformingPhysicianIdentificationSequence
    ScheduledPerformingPhysicianName ScheduledProcedureStepEndDate ScheduledProcedureStepEndTime
    ScheduledProcedureStepDescription ScheduledProcedureStepLocation ScheduledProcedureStepStartDate
    ScheduledProcedureStepStartTime ScheduledStationAETitle ScheduledStationGeographicLocationCodeSequence
    ScheduledStationName ScheduledStationNameCodeSequence ScheduledStudyLocation ScheduledStudyLocationAETitle
    SeriesDate SeriesTime ServiceEpisodeDescription ServiceEpisodeID SmokingStatus SourceImageSequence
    SpecialNeeds StationName StudyComments StudyIDIssuer TextComments TextString TimezoneOffsetFromUTC
    TopicAuthor TopicKeywords TopicSubject TopicTitle VerifyingOrganization VisitComments AcquisitionDate
    AcquisitionTime AcquisitionDateTime InstanceCreationDate InstanceCreationTime RequestedProcedureCodeSequence
    PerformedProtocolCodeSequence ScheduledProtocolCodeSequence ReferencedImageSequence ProtocolName
    StudyDescription SeriesDescription PerformedProcedureStepStartDateTime InstitutionalDepartmentTypeCodeSequence
    StationAETitle DeviceDescription ContentSequence RequestingPhysicianIdentificationSequence
    ClinicalTrialSponsorName ClinicalTrialProtocolName ClinicalTrialSiteName ClinicalTrialSubjectID
    ClinicalTrialSubjectReadingID ClinicalTrialTimePointID ClinicalTrialTimePointDescription
    ClinicalTrialCoordinatingCenterName PatientBreedDescription ResponsiblePersonRole ScheduledProcedureStepID
    ReasonForTheRequestedProcedure ConsultingPhysicianName ConsultingPhysicianIdentificationSequence
    PatientTelecomInformation PatientBirthDateInAlternativeCalendar PatientDeathDateInAlternativeCalendar
    PatientAlternativeCalendar ReferencedPatientPhotoSequence OrderPlacerIdentifierSequence
    OrderFillerIdentifierSequence IssuerOfAccessionNumberSequence PlacerOrderNumberProcedure
    FillerOrderNumberProcedure ScheduledProcedureStepModificationDateTime DeviceLabel LongDeviceDescription
    ManufacturerDeviceIdentifier UDISequence SourceSerialNumber PersonTelecomInformation ModifyingDeviceManufacturer
    TextValue DigitalSignatureUID AddressTrial CurrentObserverTrial TelephoneNumberTrial VerbalSourceTrial
    VerbalSourceIdentifierCodeSequenceTrial
    """.split()},
    **{k: A.ZERO for k in """
    AccessionNumber ContentCreatorName ContentDate ContentTime FillerOrderNumberImagingServiceRequest PatientID
    PatientBirthDate PatientSex PlacerOrderNumberImagingServiceRequest ReferringPhysicianName StudyDate StudyID
    StudyTime VerifyingObserverIdentificationCodeSequence
    """.split()},
    **{k: A.DUMMY for k in """
    PatientName VerifyingObserverName PersonName ContrastBolusAgent GraphicAnnotationSequence
    PersonIdentificationCodeSequence VerifyingObserverSequence
    """.split()},
    **{k: A.UID for k in """
    StudyInstanceUID SeriesInstanceUID SOPInstanceUID FrameOfReferenceUID SynchronizationFrameOfReferenceUID
    ConcatenationUID DimensionOrganizationUID IrradiationEventUID ReferencedSOPInstanceUID
    ReferencedFrameOfReferenceUID RelatedFrameOfReferenceUID InstanceCreatorUID DeviceUID FiducialUID
    DoseReferenceUID StorageMediaFileSetUID TransactionUID CreatorVersionUID MediaStorageSOPInstanceUID
    ReferencedSOPInstanceUIDInFile TemplateExtensionCreatorUID TemplateExtensionOrganizationUID UID
    """.split()},
}

# The Retain Patient Characteristics Option's column of Table E.1-1 (K: keep, C: clean): what a cohort needs to
# describe its patients (age, sex, body size) without naming them.
PATIENT_CHARACTERISTICS: dict[str, HeaderAction] = {
    **{k: A.KEEP for k in """
    EthnicGroup PatientAge PatientSex PatientSexNeutered PatientSize PatientWeight PregnancyStatus SmokingStatus
    """.split()},
    **{k: A.CLEAN for k in "Allergies PatientState PreMedication SpecialNeeds".split()},
}
# A kept coded characteristic must be one of its terms; anything else falls back to the Basic Profile's action.
_CODED: dict[str, frozenset[str]] = {kw: frozenset(m.value for m in codes) for kw, codes in (
    ("PatientSex", PatientSex), ("SmokingStatus", SmokingStatus), ("PregnancyStatus", PregnancyStatus),
    ("PatientSexNeutered", PatientSexNeutered))}
_AGE = re.compile(r"\s*0*(\d{1,3})\s*([DWMY])\s*")

# Descriptors the Clean Descriptors option keeps after cleaning instead of removing.
DESCRIPTORS = {
    "StudyDescription", "SeriesDescription", "ProtocolName", "ImageComments", "AcquisitionDeviceProcessingDescription",
    "DerivationDescription", "PerformedProcedureStepDescription", "RequestedProcedureDescription",
    "AdditionalPatientHistory", "ReasonForStudy", "FrameComments", "AcquisitionComments", "StudyComments",
}
# Kept although the generic catch-alls would otherwise touch them.
_KEEP = {"ImageLaterality", "Laterality", "ViewPosition", "BodyPartExamined", "PatientOrientation",
         "LongitudinalTemporalInformationModified", "PatientIdentityRemoved", "DeidentificationMethod"}
_DATE_VRS = {"DA", "DT", "TM"}
_ID_LIKE = re.compile(r"\b\d[\d\-/.: ]{4,}\d\b")


class HeaderProfileError(ValueError):
    pass


def age_string(value: str, top_years: int) -> str | None:
    """``value`` as a valid Age String ("75Y" -> "075Y"), an age over ``top_years`` years written as that many;
    None when it is no age (a bare "99": years or months?), so that it is removed, not guessed."""
    match = _AGE.fullmatch(value.upper())
    if match is None:
        return None
    count, unit = int(match.group(1)), AgeUnit(match.group(2))
    if unit is AgeUnit.YEARS:
        count = min(count, top_years)
    return f"{count:03d}{unit.value}"


def age_between(birth: str, on: str) -> str | None:
    """The Age String of someone born on the date ``birth`` at the date ``on`` (DA, or DT's date part): days under
    a month, months under two years, else years; None when either is no date or the birth is later."""
    born, seen = da_date(birth), da_date(on)
    if born is None or seen is None or seen < born:
        return None
    months = (seen.year - born.year) * 12 + seen.month - born.month - (seen.day < born.day)
    if months < 1:
        return f"{(seen - born).days:03d}D"
    return f"{months:03d}M" if months < 24 else f"{min(months // 12, 999):03d}Y"


@dataclass
class HeaderReport:
    """What was done to the header: (tag, keyword, action) triples; values are never recorded."""

    actions: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, elem: pydicom.DataElement, action: HeaderAction) -> None:
        self.actions.append((f"({elem.tag.group:04X},{elem.tag.element:04X})", elem.keyword or "private",
                             action.value))

    def as_records(self) -> list[dict[str, str]]:
        return [{"tag": t, "keyword": k, "action": a} for t, k, a in self.actions]


class HeaderDeidentifier:
    def __init__(self, cfg: HeaderConfig, pseudonymizer: Pseudonymizer) -> None:
        self.cfg = cfg
        self.ps = pseudonymizer

    def __call__(self, ds: Dataset) -> HeaderReport:
        """De-identify ``ds`` in place (file meta included)."""
        report = HeaderReport()
        original_pid = str(ds.get("PatientID", "") or "")
        issuer = str(ds.get("IssuerOfPatientID", "") or "")
        anchor = original_pid or str(ds.get("StudyInstanceUID", ""))  # no ID: pseudonym per study
        patient = self.ps.patient(anchor, issuer)
        self._pseudonym, self._shift = patient.patient_id, patient.date_shift
        self._identifiers = self._identifying_strings(ds)
        age = self._age_from_dates(ds)
        ds.remove_private_tags()
        self._walk(ds, report, top=True)
        if age is not None:
            ds.PatientAge = age
            report.add(ds["PatientAge"], A.AGE_FROM_DATES)
        self._file_meta(ds)
        self._stamp(ds)
        return report

    def _age_from_dates(self, ds: Dataset) -> str | None:
        """Under Retain Patient Characteristics, the age of a patient whose header states none (valid) but whose
        birth and study dates, which the profile removes, give it: many radiographs' headers state no age."""
        if not self.cfg.retain_patient_characteristics:
            return None
        if age_string(str(ds.get("PatientAge", "") or ""), self.cfg.age_top_code_years) is not None:
            return None
        on = next((str(ds.get(kw)) for kw in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate")
                   if ds.get(kw)), "")
        age = age_between(str(ds.get("PatientBirthDate", "") or ""), on)
        return None if age is None else age_string(age, self.cfg.age_top_code_years)

    @staticmethod
    def _identifying_strings(ds: Dataset) -> list[str]:
        """Values whose appearance inside a cleaned descriptor must be removed."""
        out: list[str] = []
        for kw in ("PatientName", "PatientID", "OtherPatientIDs", "AccessionNumber", "PatientBirthDate",
                   "ReferringPhysicianName", "InstitutionName", "StudyID", "OperatorsName", "PerformingPhysicianName"):
            v = ds.get(kw)
            if v:
                out += [p for p in re.split(r"[\^\s,]+", str(v)) if len(p) >= 2]
        return sorted(set(out), key=len, reverse=True)

    def _walk(self, ds: Dataset, report: HeaderReport, top: bool) -> None:
        for elem in list(ds):
            group = elem.tag.group
            if elem.tag.is_private or (0x5000 <= group <= 0x50FF) or (0x6000 <= group <= 0x60FF and group % 2 == 0):
                del ds[elem.tag]
                report.add(elem, A.REMOVE)
                continue
            if elem.tag == 0x7FE00010 or elem.keyword in _KEEP:
                continue
            action = self._action_for(elem)
            if action is None:
                if elem.VR == "SQ":
                    for item in elem.value:
                        self._walk(item, report, top=False)
                continue
            report.add(elem, self._apply(ds, elem, action, top))

    def _action_for(self, elem: pydicom.DataElement) -> HeaderAction | None:
        kw = elem.keyword
        if self.cfg.retain_patient_characteristics and kw in PATIENT_CHARACTERISTICS:
            return PATIENT_CHARACTERISTICS[kw]
        action = BASIC_PROFILE.get(kw)
        if self.cfg.clean_descriptors and kw in DESCRIPTORS:
            return A.CLEAN
        if action is not None:
            if self.cfg.retain_longitudinal_modified_dates and elem.VR in _DATE_VRS and kw != "PatientBirthDate":
                return A.SHIFT if elem.VR in ("DA", "DT") else None
            return action
        if elem.VR == "UI":
            return None if self._standard_uid(elem) else A.UID
        if elem.VR == "PN":
            return A.REMOVE
        if elem.VR in _DATE_VRS:
            if self.cfg.retain_longitudinal_modified_dates:
                return A.SHIFT if elem.VR in ("DA", "DT") else None
            return A.REMOVE
        return None

    @staticmethod
    def _standard_uid(elem: pydicom.DataElement) -> bool:
        values = elem.value if isinstance(elem.value, (list, pydicom.multival.MultiValue)) else [elem.value]
        return all(str(v) in UID_dictionary or not str(v) for v in values)

    def _apply(self, ds: Dataset, elem: pydicom.DataElement, action: HeaderAction, top: bool) -> HeaderAction:
        """Apply ``action`` to ``elem``; returns the action applied (a characteristic not valid to keep gets the
        Basic Profile's)."""
        tag = elem.tag
        if action is A.KEEP:
            kept = self._characteristic(elem)
            if kept is None:
                return self._apply(ds, elem, BASIC_PROFILE[elem.keyword], top)
            elem.value = kept
        elif action is A.REMOVE:
            del ds[tag]
        elif action is A.ZERO:
            if elem.keyword == "PatientID" and top:
                elem.value = self._pseudonym
            else:
                elem.value = Sequence() if elem.VR == "SQ" else ""
        elif action is A.DUMMY:
            if elem.VR == "SQ":
                elem.value = Sequence()
            else:
                elem.value = self._pseudonym if elem.VR == "PN" else "REMOVED"
        elif action is A.UID:
            values = elem.value if isinstance(elem.value, (list, pydicom.multival.MultiValue)) else [elem.value]
            mapped = [self.ps.uid(str(v)) for v in values if str(v)]
            elem.value = mapped if len(mapped) > 1 else (mapped[0] if mapped else "")
        elif action is A.SHIFT:
            elem.value = self.ps.shift_date(str(elem.value), self._shift) if elem.value else ""
        elif action is A.CLEAN:
            elem.value = self._clean(str(elem.value or ""))
        return action

    def _characteristic(self, elem: pydicom.DataElement) -> object | None:
        """The value a kept patient characteristic is written with, or None to drop it: an age as a valid age
        string, top-coded; a coded value only as one of its terms; a size or weight only as a number; free text
        (an ethnic group) cleaned of the patient's identifiers."""
        value = elem.value
        if value is None or value == "":
            return value
        if elem.keyword == "PatientAge":
            return age_string(str(value), self.cfg.age_top_code_years)
        if elem.keyword in _CODED:
            return value if str(value).strip() in _CODED[elem.keyword] else None
        if elem.VR == "DS":
            try:
                return value if float(value) >= 0 else None
            except (TypeError, ValueError):
                return None
        return self._clean(str(value))

    def _clean(self, text: str) -> str:
        for ident in self._identifiers:
            text = re.sub(re.escape(ident), "", text, flags=re.IGNORECASE)
        return re.sub(r"\s{2,}", " ", _ID_LIKE.sub("", text)).strip()

    def _file_meta(self, ds: Dataset) -> None:
        meta = getattr(ds, "file_meta", None)
        if meta is None:
            return
        if "SOPInstanceUID" in ds:
            meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        for kw in ("SourceApplicationEntityTitle", "SendingApplicationEntityTitle", "ReceivingApplicationEntityTitle",
                   "SourcePresentationAddress", "SendingPresentationAddress", "ReceivingPresentationAddress",
                   "PrivateInformation", "PrivateInformationCreatorUID"):
            if kw in meta:
                delattr(meta, kw)
        meta.ImplementationVersionName = f"RDEID_{__version__}"[:16]

    def _stamp(self, ds: Dataset) -> None:
        ds.PatientIdentityRemoved = "YES"
        ds.PatientID = self._pseudonym
        ds.PatientName = self._pseudonym
        ds.LongitudinalTemporalInformationModified = (
            "MODIFIED" if self.cfg.retain_longitudinal_modified_dates else "REMOVED")
        self.stamp_methods(ds, pixels_cleaned=False)

    def stamp_methods(self, ds: Dataset, pixels_cleaned: bool) -> None:
        """Set DeidentificationMethod and its code sequence; BurnedInAnnotation=NO only once pixels are clean."""
        codes = deid_methods(self.cfg, pixels_cleaned)
        ds.DeidentificationMethod = f"radiograph-deid {__version__}: PS3.15 " + "+".join(c.value_code for c in codes)
        seq = Sequence()
        for c in codes:
            item = Dataset()
            item.CodeValue = c.value_code
            item.CodingSchemeDesignator = "DCM"
            item.CodeMeaning = c.meaning
            seq.append(item)
        ds.DeidentificationMethodCodeSequence = seq
        if pixels_cleaned:
            ds.BurnedInAnnotation = "NO"
        elif "BurnedInAnnotation" in ds:
            del ds.BurnedInAnnotation  # never trust, never carry over, the input's claim


def deid_methods(cfg: HeaderConfig, pixels_cleaned: bool) -> list[DeidMethodCode]:
    """The profile and options a header de-identified under ``cfg`` is stamped with (CID 7050)."""
    codes = [DeidMethodCode.BASIC_PROFILE]
    if pixels_cleaned:
        codes.append(DeidMethodCode.CLEAN_PIXEL_DATA)
    if cfg.clean_descriptors:
        codes.append(DeidMethodCode.CLEAN_DESCRIPTORS)
    if cfg.retain_longitudinal_modified_dates:
        codes.append(DeidMethodCode.RETAIN_LONGITUDINAL_MODIFIED_DATES)
    if cfg.retain_patient_characteristics:
        codes.append(DeidMethodCode.RETAIN_PATIENT_CHARACTERISTICS)
    return codes


def profile_keywords_valid() -> Iterable[str]:
    """Keywords in the table unknown to pydicom's dictionary (a test keeps this empty)."""
    from pydicom.datadict import tag_for_keyword

    return [k for k in BASIC_PROFILE if tag_for_keyword(k) is None]
