"""The PS3.15 header profile on real (deid-data) and generated headers."""
from __future__ import annotations

import datetime as dt

import pydicom
import pytest

from radiograph_deid.config import HeaderConfig
from radiograph_deid.dicom_profile import HeaderDeidentifier, age_between, profile_keywords_valid
from radiograph_deid.enums import DeidMethodCode
from radiograph_deid.pseudonym import Pseudonymizer, load_or_create_key
from radiograph_deid.synthetic import FAKE_PHI, sample_radiograph

from .conftest import deid_data, pydicom_data

KEY = bytes(range(32))


def all_strings(ds: pydicom.Dataset) -> list[str]:
    out = []
    for elem in ds.iterall():
        if elem.VR not in ("SQ", "OB", "OW", "UN") and elem.value is not None:
            out.append(str(elem.value))
    if getattr(ds, "file_meta", None) is not None:
        out += [str(e.value) for e in ds.file_meta]
    return out


def deidentify(ds: pydicom.Dataset, key: bytes = KEY, **opts: bool):
    report = HeaderDeidentifier(HeaderConfig(**opts), Pseudonymizer(key))(ds)
    return ds, report


def test_profile_table_uses_only_real_keywords() -> None:
    assert list(profile_keywords_valid()) == []


def test_no_fake_phi_survives_anywhere() -> None:
    ds, _ = sample_radiograph(64, 64)
    original_uids = {ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID}
    deidentify(ds)
    text = "\n".join(all_strings(ds))
    for kw, value in FAKE_PHI.items():
        if kw == "StudyDescription":  # "CHEST PA" is clinical; its name parts are checked via PatientName
            continue
        for part in value.replace("^", " ").split():
            if len(part) > 2:
                assert part not in text, f"{part!r} survived"
    assert not any(e.tag.is_private for e in ds)
    assert not any(0x6000 <= e.tag.group <= 0x60FF for e in ds)
    assert not original_uids & {ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID}
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.PatientIdentityRemoved == "YES"
    assert ds.LongitudinalTemporalInformationModified == "REMOVED"
    assert "BurnedInAnnotation" not in ds  # the input's claim is never carried over
    assert ds.ImageLaterality == "L" and ds.BodyPartExamined == "CHEST"  # clinically needed, kept
    codes = [item.CodeValue for item in ds.DeidentificationMethodCodeSequence]
    assert codes == [DeidMethodCode.BASIC_PROFILE.value_code]


def test_real_dx_header_loses_its_phi() -> None:
    ds = pydicom.dcmread(deid_data("animals/cat.dcm"))
    name, pid = str(ds.PatientName), str(ds.PatientID)
    report = deidentify(ds)[1]
    text = "\n".join(all_strings(ds))
    assert "Wetzel" not in text and (not pid or pid not in text)
    assert str(ds.PatientName) != name
    for date_kw in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate", "PatientBirthDate"):
        assert not ds.get(date_kw)
    assert {"tag", "keyword", "action"} <= set(report.as_records()[0])
    assert all(wetzel not in str(report.as_records()) for wetzel in ("Wetzel", name))


def test_pseudonyms_and_uids_are_consistent_per_key_and_differ_across_keys() -> None:
    a1, _ = sample_radiograph(32, 32)
    a2 = pydicom.dcmread(pydicom.filebase.DicomBytesIO(_to_bytes(a1)))
    b = pydicom.dcmread(pydicom.filebase.DicomBytesIO(_to_bytes(a1)))
    deidentify(a1)
    deidentify(a2)
    deidentify(b, key=bytes(32))
    assert a1.PatientID == a2.PatientID and a1.StudyInstanceUID == a2.StudyInstanceUID
    assert a1.PatientID != b.PatientID and a1.StudyInstanceUID != b.StudyInstanceUID
    assert a1.PatientID.startswith("ANON-")
    assert len(a1.StudyInstanceUID) <= 64 and a1.StudyInstanceUID.startswith("2.25.")
    assert KEY.hex() not in _to_bytes(a1).hex()


def _to_bytes(ds: pydicom.Dataset) -> bytes:
    buf = pydicom.filebase.DicomBytesIO()
    ds.save_as(buf, write_like_original=False)
    return buf.getvalue()


def test_retain_longitudinal_option_shifts_dates_keeping_intervals() -> None:
    ds, _ = sample_radiograph(32, 32)
    ds.SeriesDate = "20240310"  # five days after the study
    deidentify(ds, retain_longitudinal_modified_dates=True)
    study = dt.datetime.strptime(ds.StudyDate, "%Y%m%d")
    series = dt.datetime.strptime(ds.SeriesDate, "%Y%m%d")
    assert ds.StudyDate != FAKE_PHI["StudyDate"]
    assert (series - study).days == 5
    assert not ds.get("PatientBirthDate")
    assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
    codes = [item.CodeValue for item in ds.DeidentificationMethodCodeSequence]
    assert DeidMethodCode.RETAIN_LONGITUDINAL_MODIFIED_DATES.value_code in codes


def test_clean_descriptors_option_keeps_description_without_identifiers() -> None:
    ds, _ = sample_radiograph(32, 32)
    deidentify(ds, clean_descriptors=True)
    assert "CHEST PA" in ds.StudyDescription
    assert "DOE" not in ds.StudyDescription and "JANE" not in ds.StudyDescription
    ds2, _ = sample_radiograph(32, 32)
    deidentify(ds2)
    assert "StudyDescription" not in ds2


def test_key_file_is_created_private_and_reused(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("RADIOGRAPH_DEID_KEY", raising=False)
    path = tmp_path / "k" / "secret.key"
    key = load_or_create_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_or_create_key(path) == key and len(key) == 32


@pytest.mark.parametrize("retain_patient_characteristics", [False, True])
@pytest.mark.parametrize("rel", ["ultrasounds/ultrasound-multiframe.dcm", "ultrasounds/GREYSCALE_IMAGE.dcm",
                                 "ultrasounds/RGB_IMAGE.dcm", "humans/ctbrain1.dcm"])
def test_real_headers_keep_no_identifier_value(rel: str, retain_patient_characteristics: bool) -> None:
    """Every value of an identifying attribute in a real header (names, IDs, dates, procedure step IDs) is gone
    from the whole de-identified dataset, sequences included."""
    ds = pydicom.dcmread(deid_data(rel), stop_before_pixels=True)
    secrets = set()
    for elem in ds.iterall():
        if elem.VR in ("PN", "DA", "DT") or elem.keyword.endswith(("ID", "Name", "Number")) and elem.VR in ("SH", "LO", "PN"):
            if elem.value and len(str(elem.value)) >= 4 and elem.keyword not in ("ManufacturerModelName", "ViewName"):
                secrets.add(str(elem.value))
    assert secrets, "the real header should carry identifiers to remove"
    deidentify(ds, retain_patient_characteristics=retain_patient_characteristics)
    text = "\n".join(all_strings(ds))
    assert not [s for s in secrets if s in text]


CHARACTERISTICS = ("PatientAge", "PatientSex", "PatientWeight", "PatientSize", "SmokingStatus", "PregnancyStatus")


@pytest.mark.parametrize("rel", ["ultrasounds/RGB_IMAGE.dcm", "ultrasounds/GREYSCALE_IMAGE.dcm", "humans/ctbrain1.dcm"])
def test_retain_patient_characteristics_keeps_a_real_patients_age_sex_and_body(rel: str) -> None:
    before = pydicom.dcmread(deid_data(rel), stop_before_pixels=True)
    present = {kw: before.get(kw) for kw in CHARACTERISTICS if before.get(kw) not in (None, "")}
    assert "PatientAge" in present and "PatientSex" in present, "the real header should state age and sex"
    ds, report = deidentify(pydicom.dcmread(deid_data(rel), stop_before_pixels=True),
                            retain_patient_characteristics=True)
    for kw, value in present.items():
        if kw == "PatientAge":  # ctbrain1's "75Y" is no valid age string; written as one
            assert ds.PatientAge == f"{int(str(value)[:-1]):03d}{str(value)[-1]}"
        else:
            assert ds.get(kw) == value, kw
    kept = {r["keyword"] for r in report.as_records() if r["action"] == "K"}
    assert kept == set(present)
    codes = [item.CodeValue for item in ds.DeidentificationMethodCodeSequence]
    assert DeidMethodCode.RETAIN_PATIENT_CHARACTERISTICS.value_code in codes
    plain, _ = deidentify(pydicom.dcmread(deid_data(rel), stop_before_pixels=True))
    assert "PatientAge" not in plain and plain.PatientSex == "" and "PatientWeight" not in plain
    assert DeidMethodCode.RETAIN_PATIENT_CHARACTERISTICS.value_code not in [
        item.CodeValue for item in plain.DeidentificationMethodCodeSequence]


@pytest.mark.filterwarnings("ignore:Invalid value for VR")  # invalid on purpose, as real headers can be
@pytest.mark.parametrize(("age", "top", "written"), [
    ("093Y", 90, "090Y"), ("089Y", 90, "089Y"), ("75Y", 90, "075Y"), ("093Y", 80, "080Y"), ("011M", 90, "011M"),
    ("999M", 90, "999M"), ("99", 90, None), ("N/A", 90, None), ("1000Y", 90, None)])
def test_a_kept_age_is_a_valid_age_string_and_old_ages_are_top_coded(age: str, top: int, written: str | None) -> None:
    ds, _ = sample_radiograph(32, 32)
    ds.PatientAge = age
    del ds.PatientBirthDate  # no age from dates in place of an invalid one
    deidentify(ds, retain_patient_characteristics=True, age_top_code_years=top)
    assert ds.get("PatientAge") == written


@pytest.mark.filterwarnings("ignore:Invalid value for VR")  # invalid on purpose, as real headers can be
def test_a_characteristic_that_is_not_a_valid_value_gets_the_basic_profiles_action() -> None:
    ds, _ = sample_radiograph(32, 32)
    ds.PatientSex, ds.PatientWeight, ds.PregnancyStatus = "N/A", "-70", 7
    ds.EthnicGroup = "DOE 1961"
    ds.Allergies = "penicillin (HOUSE)"
    ds.MedicalAlerts = "none"  # not among the option's attributes: removed as in the Basic Profile
    _, report = deidentify(ds, retain_patient_characteristics=True)
    assert ds.PatientSex == ""  # Z in the Basic Profile
    assert "PatientWeight" not in ds and "PregnancyStatus" not in ds and "MedicalAlerts" not in ds
    assert "DOE" not in ds.EthnicGroup
    assert ds.Allergies.startswith("penicillin") and "HOUSE" not in ds.Allergies
    actions = {r["keyword"]: r["action"] for r in report.as_records()}
    assert actions["PatientSex"] == "Z" and actions["PatientWeight"] == "X" and actions["Allergies"] == "C"
    with pytest.raises(ValueError, match="age_top_code_years"):
        HeaderConfig(age_top_code_years=0)


@pytest.mark.parametrize(("path", "age"), [(lambda: deid_data("animals/cat.dcm"), "009Y"),
                                           (lambda: pydicom_data("RG1_UNCR.dcm"), "064Y")])
def test_a_radiograph_whose_header_states_no_age_keeps_the_age_its_removed_dates_gave(path, age: str) -> None:
    """The real DX and CR state a birth date and a study date but no age: the option writes the age at the
    study (cat: 2011-01-06 to 2020-02-09; RG1: 1940-03-05 to 2004-08-26) and the dates still go."""
    before = pydicom.dcmread(path(), stop_before_pixels=True)
    assert not before.get("PatientAge") and before.PatientBirthDate and before.StudyDate
    ds, report = deidentify(pydicom.dcmread(path(), stop_before_pixels=True), retain_patient_characteristics=True)
    assert ds.PatientAge == age
    assert not ds.get("PatientBirthDate") and not ds.get("StudyDate")
    assert {"tag": "(0010,1010)", "keyword": "PatientAge", "action": "A"} in report.as_records()
    plain, _ = deidentify(pydicom.dcmread(path(), stop_before_pixels=True))
    assert "PatientAge" not in plain


@pytest.mark.parametrize(("birth", "on", "age"), [
    ("20240101", "20240120", "019D"), ("20240131", "20240229", "029D"), ("20240101", "20250615", "017M"),
    ("20240101", "20251231", "023M"), ("20240101", "20260101", "002Y"), ("19200101", "20240101", "104Y"),
    ("20240120", "20240101", None), ("", "20240101", None), ("2024", "20240101", None)])
def test_an_age_between_two_dates_is_an_age_string_in_its_unit(birth: str, on: str, age: str | None) -> None:
    assert age_between(birth, on) == age


def test_an_age_from_dates_is_top_coded_and_a_stated_age_wins() -> None:
    ds, _ = sample_radiograph(32, 32)  # born 1961-04-12, studied 2024-03-05: 62
    deidentify(ds, retain_patient_characteristics=True)
    assert ds.PatientAge == "062Y"
    ds, _ = sample_radiograph(32, 32)
    ds.PatientBirthDate = "19200101"
    deidentify(ds, retain_patient_characteristics=True)
    assert ds.PatientAge == "090Y"
    ds, _ = sample_radiograph(32, 32)
    ds.PatientAge = "061Y"  # the header's own age stands
    deidentify(ds, retain_patient_characteristics=True)
    assert ds.PatientAge == "061Y"
    ds, _ = sample_radiograph(32, 32)
    ds.PatientAge = "61"  # no valid age: the dates' stands in its place
    deidentify(ds, retain_patient_characteristics=True)
    assert ds.PatientAge == "062Y"


@pytest.mark.filterwarnings("ignore:Invalid value for VR")
def test_a_weight_a_file_holds_as_no_number_is_removed_not_kept(tmp_path) -> None:
    """Real headers hold what pydicom would refuse to set (a DS of "ab"): read from the file, the option finds it
    no number and removes it (X), as the Basic Profile does."""
    ds, _ = sample_radiograph(32, 32)
    ds.PatientWeight = "70"
    raw = _to_bytes(ds)
    at = raw.find(b"\x10\x00\x30\x10DS\x02\x0070")  # (0010,1030) DS, 2 bytes, explicit VR little endian
    assert at > 0
    read = pydicom.dcmread(pydicom.filebase.DicomBytesIO(raw[: at + 8] + b"ab" + raw[at + 10 :]))
    _, report = deidentify(read, retain_patient_characteristics=True)
    assert "PatientWeight" not in read
    assert {"tag": "(0010,1030)", "keyword": "PatientWeight", "action": "X"} in report.as_records()
