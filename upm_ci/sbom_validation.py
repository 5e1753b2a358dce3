"""An SBOM is never invalid: the validators both SBOM steps (the wheel's, :mod:`upm_ci.sbom`;
the image's, :mod:`upm_ci.image.sbom`) run before anything is written."""

from __future__ import annotations

from typing import Any

from upm_ci.errors import PolicyError

__all__ = ["fast_iri_reference_check", "validate_cyclonedx", "validate_spdx"]


def fast_iri_reference_check() -> None:
    """Check an ASCII ``iri-reference`` (every URL in a CycloneDX document) as an RFC 3986
    URI-reference first: a few microseconds with rfc3986-validator's expressions (what
    jsonschema itself checks ``uri-reference`` with), where the stock check (rfc3987-syntax's
    Earley parser) takes about 0.1 s a value. For ASCII text the two grammars are the same (an
    IRI adds only non-ASCII characters), and whatever the fast check does not accept still goes
    to the stock one, so the validation accepts and refuses exactly what it did. An IP literal
    (``[``) always goes to the stock one: rfc3987-syntax refuses compressed IPv6 (``[::1]``),
    which RFC 3986 allows, and its verdict stands.

    Registered once on jsonschema's Draft 7 format checker (the one CycloneDX's validator
    uses) through its public ``checks``; without rfc3986-validator nothing changes.
    """
    from jsonschema import Draft7Validator  # type: ignore[import-untyped]

    try:
        from rfc3986_validator import validate_rfc3986  # type: ignore[import-untyped]
    except ImportError:
        return
    checker = Draft7Validator.FORMAT_CHECKER
    stock = checker.checkers.get("iri-reference")
    if stock is None or getattr(stock[0], "upm_fast_path", False):
        return
    stock_check, raises = stock

    def iri_reference(instance: object) -> bool:
        if isinstance(instance, str) and instance.isascii() and "[" not in instance:
            if validate_rfc3986(instance, rule="URI_reference"):
                return True
        return bool(stock_check(instance))

    iri_reference.upm_fast_path = True  # type: ignore[attr-defined]
    checker.checks("iri-reference", raises)(iri_reference)


def validate_cyclonedx(text: str) -> None:
    """CycloneDX 1.6 JSON schema validation; an invalid document is never written."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    fast_iri_reference_check()
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
