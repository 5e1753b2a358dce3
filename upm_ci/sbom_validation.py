"""An SBOM is never invalid: the validators both SBOM steps (the wheel's, :mod:`upm_ci.sbom`;
the image's, :mod:`upm_ci.image.sbom`) run before anything is written."""

from __future__ import annotations

from typing import Any

from upm_ci.errors import PolicyError
from upm_ci.jsonschema_formats import fast_iri_reference_check

__all__ = ["validate_cyclonedx", "validate_spdx"]


def validate_cyclonedx(text: str) -> None:
    """CycloneDX 1.6 JSON schema validation; an invalid document is never written."""
    fast_iri_reference_check()  # imports jsonschema first, its IRI checks deferred
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if error is not None:
        raise PolicyError(f"CycloneDX SBOM failed schema validation, not written: {error}")


def validate_spdx(document: Any) -> str:
    """spdx-tools' full validation, then its JSON; an invalid document is never written."""
    import io

    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document
    from spdx_tools.spdx.writer.json.json_writer import write_document_to_stream

    messages = validate_full_spdx_document(document)
    if messages:
        shown = "; ".join(m.validation_message for m in messages[:3])
        raise PolicyError(f"SPDX SBOM failed validation, not written: {shown}")
    out = io.StringIO()
    write_document_to_stream(document, out, validate=False)
    return out.getvalue() + "\n"
