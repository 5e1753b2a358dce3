"""jsonschema's IRI format checks, made fast around its public API: imported without building
rfc3987-syntax's grammar until a value needs it, and an ASCII URL settled by RFC 3986's
expressions first. Every validation that imports jsonschema calls :func:`import_jsonschema`
first: CycloneDX's validator (:mod:`upm_ci.sbom_validation`) and oras
(:mod:`upm_ci.image.registry`), which imports jsonschema for its own schemas."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable

__all__ = ["fast_iri_reference_check", "import_jsonschema"]

#: jsonschema's formats that rfc3987-syntax checks, and the rule of its grammar for each.
_RFC3987_SYNTAX_FORMATS = {"iri": "iri", "iri-reference": "iri_reference"}


def import_jsonschema() -> None:
    """Import jsonschema with rfc3987-syntax's IRI checks loaded when one is first needed.

    jsonschema imports rfc3987-syntax at its own import when it is installed (cyclonedx's
    ``json-validation`` extra installs it), and rfc3987-syntax builds an Earley parser of its
    grammar at import: about 1.8 s, paid by every phase that validates a CycloneDX document,
    while the fast check (:func:`fast_iri_reference_check`) answers for every URL our SBOMs
    carry without it. So jsonschema is imported with rfc3987-syntax marked unavailable
    (``sys.modules[name] = None``, which makes its import raise ImportError, as the import
    system documents); the same two checks, each importing rfc3987-syntax on its first call,
    are then registered where jsonschema registers its own (Draft 7, 2019-09 and 2020-12, and
    :class:`jsonschema.FormatChecker`'s defaults). Verdicts are rfc3987-syntax's, as before.

    Changes nothing when jsonschema or rfc3987-syntax is already imported, when rfc3987-syntax
    is not installed, or when jsonschema checks IRIs with something else (``rfc3987``).
    """
    name = "rfc3987_syntax"
    if "jsonschema" in sys.modules or name in sys.modules:
        return
    if importlib.util.find_spec(name) is None:
        importlib.import_module("jsonschema")
        return
    sys.modules[name] = None  # type: ignore[assignment]
    try:
        jsonschema = importlib.import_module("jsonschema")
    finally:
        if name in sys.modules and sys.modules[name] is None:
            del sys.modules[name]
    checkers = [
        jsonschema.Draft7Validator.FORMAT_CHECKER,
        jsonschema.Draft201909Validator.FORMAT_CHECKER,
        jsonschema.Draft202012Validator.FORMAT_CHECKER,
    ]
    for format_name, rule in _RFC3987_SYNTAX_FORMATS.items():
        if format_name in checkers[0].checkers:
            continue  # checked by another library (``rfc3987``): leave it as it is
        check = _rfc3987_syntax_check(rule)
        for checker in checkers:
            checker.checks(format_name, ValueError)(check)
        jsonschema.FormatChecker.checkers[format_name] = (check, ValueError)


def _rfc3987_syntax_check(rule: str) -> Callable[[object], bool]:
    """jsonschema's own check of ``rule`` (``is_iri``/``is_iri_reference``), importing
    rfc3987-syntax on its first call."""

    def check(instance: object) -> bool:
        if not isinstance(instance, str):
            return True
        from rfc3987_syntax import is_valid_syntax  # type: ignore[import-untyped]

        return bool(is_valid_syntax(rule, instance))

    check.__name__ = f"is_{rule}"
    return check


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
    import_jsonschema()
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
