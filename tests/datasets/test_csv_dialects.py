"""CSV files with other delimiters and encodings: detected, or as chosen on
the source, and recorded with the version."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from datasets import services
from datasets.models import DataSource, IngestionStatus, Snapshot
from datasets.readers import csv_dialect, detect_delimiter, detect_encoding

ROWS = [("name", "city", "fee"), ("José", "Zürich", "10,5"), ("Zoë", "Köln", "7"), ("Ann", "", "3")]


def encoded(delimiter: str, encoding: str) -> bytes:
    lines = []
    for row in ROWS:
        # A decimal comma is quoted when the comma is the delimiter.
        cells = [f'"{c}"' if delimiter in c else c for c in row]
        lines.append(delimiter.join(cells))
    text = "\n".join(lines) + "\n"
    return text.encode(encoding)


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1252"])
def test_delimiter_and_encoding_are_detected(delimiter: str, encoding: str) -> None:
    data = encoded(delimiter, encoding)
    dialect = csv_dialect(data, complete=True)
    assert (dialect.delimiter, dialect.encoding, dialect.detected) == (delimiter, encoding, True)


def test_bytes_cp1252_leaves_undefined_are_latin_1() -> None:
    assert detect_encoding("a\nb\x81\n".encode("latin-1"), complete=True) == "latin-1"
    assert detect_encoding("a\n€\n".encode("cp1252"), complete=True) == "cp1252"


def test_a_cut_off_utf_8_character_at_the_end_of_a_sample_is_still_utf_8() -> None:
    sample = "a,b\nü,é\n".encode()[:-2]
    assert detect_encoding(sample, complete=False) == "utf-8"


def test_quoted_delimiters_do_not_fool_detection() -> None:
    text = 'id;comment\n1;"a, b, c"\n2;"d, e"\n3;f\n'
    assert detect_delimiter(text) == ";"
    assert detect_delimiter("just one column\nvalue\n") == ","


def test_a_choice_on_the_source_wins() -> None:
    data = encoded(";", "utf-8")
    dialect = csv_dialect(data, complete=True, delimiter=",", encoding="latin-1")
    assert (dialect.delimiter, dialect.encoding, dialect.detected) == (",", "latin-1", False)


@pytest.mark.parametrize(
    ("delimiter", "encoding"), [(";", "cp1252"), ("\t", "utf-8-sig"), ("|", "utf-8")]
)
def test_an_upload_is_read_with_what_was_detected_and_says_so(
    upload_source: Any, ingest: Any, client_for: Any, alice: Any, delimiter: str, encoding: str
) -> None:
    ingestion = ingest(upload_source, data=encoded(delimiter, encoding))
    assert ingestion.status == IngestionStatus.SUCCEEDED, ingestion.error
    snapshot = ingestion.snapshot
    assert [c["name"] for c in snapshot.columns] == ["name", "city", "fee"]
    assert (snapshot.csv_delimiter, snapshot.csv_encoding, snapshot.csv_detected) == (
        delimiter,
        encoding,
        True,
    )
    # What the profile (read again from the store) sees is the same table.
    snapshot.profile.refresh_from_db()
    names = {c["name"]: c for c in snapshot.profile.data["columns"]}
    assert ["José", 1] in names["name"]["top"]
    assert names["city"]["blank"] == 1
    page = client_for(alice).get(f"/projects/churn/data/{upload_source.pk}/v1/").content.decode()
    assert "(detected)" in page


def test_the_api_shows_how_a_version_was_read(
    upload_source: Any, ingest: Any, api_for: Any, alice: Any
) -> None:
    ingest(upload_source, data=encoded(";", "cp1252"))
    body = api_for(alice).get(f"/api/projects/churn/sources/{upload_source.pk}/snapshots/1/").json()
    assert (body["csv_delimiter"], body["csv_encoding"], body["csv_detected"]) == (
        ";",
        "cp1252",
        True,
    )


def test_a_source_can_fix_the_dialect(project: Any, alice: Any, ingest: Any) -> None:
    source = services.source_create(
        actor=alice,
        project=project,
        name="Fixed",
        kind="upload",
        config={"delimiter": "\t", "encoding": "latin-1"},
    )
    assert source.config == {"delimiter": "tab", "encoding": "latin-1"}
    ingestion = ingest(source, data=encoded("\t", "latin-1"))
    assert ingestion.status == IngestionStatus.SUCCEEDED, ingestion.error
    snapshot = ingestion.snapshot
    assert (snapshot.csv_delimiter, snapshot.csv_encoding, snapshot.csv_detected) == (
        "\t",
        "latin-1",
        False,
    )


def test_a_utf_8_choice_refuses_a_latin_1_file_with_the_reason(project: Any, alice: Any) -> None:
    from tests.datasets.conftest import upload

    source = services.source_create(
        actor=alice, project=project, name="Strict", kind="upload", config={"encoding": "utf-8"}
    )
    with pytest.raises(ValidationError, match="not UTF-8 text"):
        services.snapshot_upload(actor=alice, source=source, upload=upload(encoded(";", "cp1252")))
    assert not Snapshot.objects.exists()


@pytest.mark.parametrize(
    ("config", "field"), [({"delimiter": "::"}, "delimiter"), ({"encoding": "utf-16"}, "encoding")]
)
def test_unknown_choices_are_refused(
    project: Any, alice: Any, api_for: Any, config: dict[str, str], field: str
) -> None:
    response = api_for(alice).post(
        "/api/projects/churn/sources/",
        {"name": "X", "kind": "upload", "config": config},
        format="json",
    )
    assert response.status_code == 400
    assert field in response.json()
    assert not DataSource.objects.exists()


def test_the_form_takes_the_choices(project: Any, alice: Any, client_for: Any) -> None:
    response = client_for(alice).post(
        "/projects/churn/data/new/",
        {
            "name": "Semicolons",
            "kind": "upload",
            "location": "cloud",
            "mode": "batch",
            "delimiter": ";",
            "encoding": "cp1252",
        },
    )
    assert response.status_code == 302
    assert DataSource.objects.get().config == {"delimiter": ";", "encoding": "cp1252"}
