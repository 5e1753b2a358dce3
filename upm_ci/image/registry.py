"""Push a built image to an OCI registry by digest, store its Sigstore bundles next to it.

The image is the OCI image layout the build wrote (``ImageRecord.layout``): its bytes are
pushed as they are, so the digest recorded at build is the registry's. Order, as RELEASE.md
asks: every blob, then the image manifest **by digest**, then the tags last. A tag that
already points at another digest is refused (:class:`PolicyError`, exit 1) before anything
is sent, and checked again right before tagging; nothing moves.

Registry operations go through the ``oras`` SDK (``oras.provider.Registry``: ``upload_blob``
for blobs, ``do_request`` on its session for manifests, which oras' ``upload_manifest`` would
re-serialise and so change the digest). oras' own retry decorator sleeps 3 s to 83 s
between five attempts and retries 4xx too; :class:`OciRegistry` calls the undecorated
``do_request`` (``functools.wraps``' ``__wrapped__``) and retries with
:func:`upm_ci.retry.call_with_retry` instead: 5xx, 429 and dropped connections, never
other 4xx; running out is a :class:`ServiceError` (exit 3).

Every step is a ledger entry (destination ``oci://HOST``): ``started`` before, ``done``
after, saved at once, so a re-run after a kill skips what is done and finishes the rest.

Bundles are stored as OCI referrers in the layout cosign and ``gh attestation verify
--bundle-from-oci`` read: an image manifest with ``artifactType``
``application/vnd.dev.sigstore.bundle.v0.3+json``, the empty config, the bundle JSON as its
only layer and ``subject`` = the image manifest; plus the referrers tag schema's fallback
index at tag ``sha256-<hex>``, read and extended so earlier referrers never vanish
(distribution 2.x has no referrers API).
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from upm_ci import gha
from upm_ci.errors import InputError, PolicyError, ServiceError
from upm_ci.layout import check_plain_name
from upm_ci.manifest import ImageRecord, Manifest
from upm_ci.retry import HttpStatusError, RetryPolicy, call_with_retry, classify, describe

log = logging.getLogger(__name__)
T = TypeVar("T")

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST)
EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"
EMPTY_JSON = b"{}"
SIGSTORE_BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
#: Annotations cosign's new bundle format sets on a referrer (what kind of bundle it is).
CONTENT_ANNOTATION = "dev.sigstore.bundle.content"
PREDICATE_ANNOTATION = "dev.sigstore.bundle.predicateType"
#: The ledger destination of a registry host.
LEDGER_PREFIX = "oci://"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- references


@dataclass(frozen=True)
class ImageName:
    """``HOST/NAME`` with an optional ``:TAG`` or ``@DIGEST``."""

    host: str
    name: str
    tag: str = ""
    digest: str = ""

    @property
    def repository(self) -> str:
        return f"{self.host}/{self.name}"

    def __str__(self) -> str:
        if self.digest:
            return f"{self.repository}@{self.digest}"
        return f"{self.repository}:{self.tag}" if self.tag else self.repository


def parse_reference(ref: str, *, where: str = "image reference") -> ImageName:
    """``HOST[:PORT]/NAME[:TAG|@sha256:HEX]``; InputError naming ``where`` otherwise.

    The registry host is always explicit (no implied Docker Hub): a release names where it goes.
    """
    text = ref.strip()
    if text.startswith("oci://"):
        text = text[len("oci://") :]
    digest = ""
    if "@" in text:
        text, digest = text.split("@", 1)
        if not (digest.startswith("sha256:") and len(digest) == 71):
            raise InputError(f"{where}: {ref!r}: the digest is not sha256:<64 hex digits>")
    host, _, rest = text.partition("/")
    tag = ""
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:
        rest, tag = rest.rsplit(":", 1)
    if not rest or not host or not ("." in host or ":" in host or host == "localhost"):
        raise InputError(
            f"{where}: {ref!r} is not HOST/NAME[:TAG|@DIGEST]",
            hint="name the registry, e.g. ghcr.io/owner/name:1.2.0 or 127.0.0.1:5000/name@sha256:…",
        )
    if rest != rest.lower() or any(c in rest for c in " \\\t\n"):
        raise InputError(f"{where}: {ref!r}: repository names are lower case, no spaces")
    return ImageName(host=host, name=rest, tag=tag, digest=digest)


def is_local(host: str) -> bool:
    """127.0.0.1/localhost registries speak plain HTTP (as docker, gh and oras treat them)."""
    bare = host.rsplit(":", 1)[0] if not host.startswith("[") else host
    return bare in ("127.0.0.1", "localhost", "[::1]")


# --------------------------------------------------------------------------- credentials


@dataclass(frozen=True)
class RegistryCredentials:
    """HTTP Basic credentials of a registry; both values are masked when made."""

    username: str = ""
    password: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        if self.password:
            gha.mask(self.password)
        if bool(self.username) != bool(self.password):
            raise InputError(
                "--registry-username and --registry-password go together",
                hint="set both (UPM_REGISTRY_USERNAME, UPM_REGISTRY_PASSWORD) or neither",
            )

    def __bool__(self) -> bool:
        return bool(self.username)


# --------------------------------------------------------------------------- the client


class OciRegistry:
    """One registry host through oras, with upm-ci's retries and errors."""

    def __init__(
        self,
        host: str,
        credentials: RegistryCredentials | None = None,
        *,
        retry: RetryPolicy | None = None,
        insecure: bool | None = None,
    ) -> None:
        from upm_ci.jsonschema_formats import import_jsonschema

        import_jsonschema()  # oras imports jsonschema: without seconds of IRI grammar
        import oras.provider  # type: ignore[import-untyped]  # oras has no py.typed

        class _Registry(oras.provider.Registry):  # type: ignore[misc]
            # oras' do_request is wrapped in a retry decorator with fixed 3-83 s sleeps that
            # also retries 4xx; call_with_retry decides here, so take the plain method.
            do_request = oras.provider.Registry.do_request.__wrapped__

        self.host = host
        self._retry = retry
        credentials = credentials or RegistryCredentials()
        self._has_credentials = bool(credentials)
        self._oras = _Registry(
            hostname=host,
            insecure=is_local(host) if insecure is None else insecure,
            auth_backend="basic" if credentials else "token",
        )
        if credentials:
            self._oras.auth.set_basic_auth(credentials.username, credentials.password)

    # -- plumbing
    def _container(self, name: str) -> Any:
        return self._oras.get_container(f"{self.host}/{name}")

    def _url(self, path: str) -> str:
        return f"{self._oras.prefix}://{path}"

    def _call(self, fn: Callable[[], T], what: str) -> T:
        try:
            return call_with_retry(fn, what=what, classify=classify, policy=self._retry)
        except (ServiceError, PolicyError, InputError):
            raise
        except Exception as e:  # noqa: BLE001 - oras and requests share no base class
            if type(e).__name__ in ("MissingSchema", "InvalidSchema", "InvalidURL"):
                # oras' anonymous-token path, given a Basic challenge, asks its "realm" as a URL.
                raise InputError(
                    f"{what}: the registry {self.host} asks for credentials",
                    hint="pass --registry-username/--registry-password (UPM_REGISTRY_USERNAME/"
                    "UPM_REGISTRY_PASSWORD)",
                ) from None
            raise ServiceError(f"{what} at {self.host}: {gha.redact(describe(e))}") from None

    def _checked(self, response: Any, what: str, ok: tuple[int, ...]) -> Any:
        """``response`` if its status is in ``ok``; retryable statuses raise for the retry
        loop; 401/403 are bad credentials (exit 2); other 4xx a refusal (exit 3)."""
        status = response.status_code
        if status in ok:
            return response
        if status >= 500 or status in (408, 429):
            raise HttpStatusError(response)
        if status in (401, 403):
            raise InputError(
                f"{what}: the registry {self.host} refused the credentials (HTTP {status})"
                if self._has_credentials
                else f"{what}: the registry {self.host} asks for credentials (HTTP {status})",
                hint="pass --registry-username/--registry-password (UPM_REGISTRY_USERNAME/"
                "UPM_REGISTRY_PASSWORD) of an account that may push there",
            )
        raise ServiceError(f"{what}: {self.host} answered HTTP {status}: {_errors(response)}")

    # -- blobs
    def blob_exists(self, name: str, digest: str) -> bool:
        container = self._container(name)

        def ask() -> bool:
            r = self._oras.do_request(self._url(container.get_blob_url(digest)), "HEAD")
            answered: int = self._checked(r, f"HEAD blob {digest[:19]}", (200, 404)).status_code
            return answered == 200

        return self._call(ask, f"blob {digest[:19]}")

    def upload_blob(self, name: str, path: Path, descriptor: dict[str, Any]) -> None:
        """Upload one blob (oras skips one the registry already has)."""
        container = self._container(name)
        layer = {k: descriptor[k] for k in ("mediaType", "digest", "size")}

        def send() -> None:
            r = self._oras.upload_blob(str(path), container, layer)
            self._checked(r, f"upload of blob {layer['digest'][:19]}", (200, 201, 202))

        self._call(send, f"upload of blob {layer['digest'][:19]}")

    def upload_bytes(self, name: str, data: bytes, media_type: str) -> dict[str, Any]:
        """Upload ``data`` as a blob; return its descriptor."""
        descriptor = {"mediaType": media_type, "digest": sha256_digest(data), "size": len(data)}
        with tempfile.TemporaryDirectory(prefix="upm-blob-") as tmp:
            path = Path(tmp) / "blob"
            path.write_bytes(data)
            self.upload_blob(name, path, descriptor)
        return descriptor

    def get_blob(self, name: str, digest: str, *, limit: int = 64 << 20) -> bytes:
        """A blob's bytes, checked against ``digest`` (PolicyError when they differ)."""
        container = self._container(name)

        def fetch() -> bytes:
            r = self._oras.get_blob(container, digest)
            data: bytes = self._checked(r, f"blob {digest[:19]}", (200,)).content
            return data

        data = self._call(fetch, f"blob {digest[:19]} of {name}")
        if len(data) > limit:
            raise PolicyError(f"{self.host}/{name}: blob {digest} is over {limit} bytes")
        if sha256_digest(data) != digest:
            raise PolicyError(f"{self.host}/{name}: blob {digest} does not hash to its digest")
        return data

    # -- manifests
    def put_manifest(self, name: str, reference: str, data: bytes, media_type: str) -> str:
        """PUT manifest bytes at ``reference`` (a digest or a tag); return the registry's digest."""
        container = self._container(name)
        url = self._url(container.manifest_url(reference))

        def send() -> str:
            r = self._oras.do_request(url, "PUT", data=data, headers={"Content-Type": media_type})
            self._checked(r, f"manifest {reference}", (200, 201))
            return str(r.headers.get("Docker-Content-Digest", ""))

        answered = self._call(send, f"manifest PUT {name}:{reference}")
        expected = sha256_digest(data)
        if answered and answered != expected:
            raise ServiceError(
                f"{self.host}/{name}: stored the manifest as {answered}, not {expected}"
            )
        return expected

    def get_manifest(self, name: str, reference: str) -> tuple[bytes, str, str] | None:
        """(bytes, media type, digest of the bytes) of a manifest, or None when not there."""
        container = self._container(name)
        url = self._url(container.manifest_url(reference))

        def fetch() -> tuple[bytes, str, str] | None:
            r = self._oras.do_request(url, "GET", headers={"Accept": ", ".join(MANIFEST_TYPES)})
            if self._checked(r, f"manifest {reference}", (200, 404)).status_code == 404:
                return None
            media = str(r.headers.get("Content-Type", "")).split(";")[0].strip()
            return r.content, media, sha256_digest(r.content)

        return self._call(fetch, f"manifest {name}:{reference}")

    def referrers_api(self, name: str, digest: str) -> list[dict[str, Any]] | None:
        """The referrers API's answer, or None when the registry has none (distribution 2.x).

        oras-py 0.2.43 has no method for it; this is one GET through oras' own session.
        """
        url = self._url(f"{self.host}/v2/{name}/referrers/{digest}")

        def fetch() -> list[dict[str, Any]] | None:
            r = self._oras.do_request(url, "GET", headers={"Accept": OCI_INDEX})
            if self._checked(r, "referrers", (200, 404)).status_code == 404:
                return None
            if not str(r.headers.get("Content-Type", "")).startswith(OCI_INDEX):
                return None
            manifests = r.json().get("manifests", [])
            return [m for m in manifests if isinstance(m, dict)]

        return self._call(fetch, f"referrers of {name}@{digest[:19]}")


def _errors(response: Any) -> str:
    try:
        errors = response.json().get("errors", [])
        text = "; ".join(
            f"{e.get('code')}: {e.get('message')}" for e in errors if isinstance(e, dict)
        )
    except Exception:  # noqa: BLE001 - any body that is not the registry error JSON
        text = ""
    return gha.redact(text or str(response.reason or "no detail"))[:300]


# --------------------------------------------------------------------------- the layout


@dataclass
class LayoutImage:
    """The image manifest of an OCI image layout and the blobs it needs."""

    manifest: bytes
    media_type: str
    digest: str
    blobs: list[tuple[dict[str, Any], Path]]
    manifest_path: Path

    @property
    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.manifest)}


def read_layout(layout: Path, digest: str) -> LayoutImage:
    """The image ``digest`` of the OCI image layout ``layout``, every blob checked."""
    where = str(layout)
    if not (layout / "oci-layout").is_file() or not (layout / "index.json").is_file():
        raise InputError(f"{where}: not an OCI image layout", hint="run upm-ci build")
    path = layout / "blobs" / "sha256" / digest.removeprefix("sha256:")
    try:
        data = path.read_bytes()
    except OSError:
        raise InputError(
            f"{where}: no blob {digest} (the recorded image)", hint="rebuild"
        ) from None
    if sha256_digest(data) != digest:
        raise PolicyError(f"{where}: image manifest {digest} was changed after the build")
    try:
        doc = json.loads(data)
    except ValueError:
        raise InputError(f"{where}: image manifest {digest} is not JSON") from None
    media = doc.get("mediaType") or OCI_MANIFEST
    if media not in (OCI_MANIFEST, DOCKER_MANIFEST):
        raise InputError(f"{where}: {digest} is a {media}, not one image manifest")
    blobs: list[tuple[dict[str, Any], Path]] = []
    for descriptor in [doc.get("config"), *doc.get("layers", [])]:
        if not isinstance(descriptor, dict) or not str(descriptor.get("digest", "")).startswith(
            "sha256:"
        ):
            raise InputError(f"{where}: image manifest {digest} has a malformed descriptor")
        blob = layout / "blobs" / "sha256" / descriptor["digest"].removeprefix("sha256:")
        check_plain_name(blob.name, where=where)
        if not blob.is_file() or blob.stat().st_size != descriptor.get("size"):
            raise InputError(f"{where}: blob {descriptor['digest']} missing or of another size")
        blobs.append((descriptor, blob))
    return LayoutImage(data, media, digest, blobs, path)


def layout_dir(manifest: Manifest, record: ImageRecord, dist_dir: Path) -> Path:
    """Where the build wrote the image: ``record.layout`` (relative to the manifest's
    directory, confined to it), else ``<dist>/oci-image``."""
    relative = str(getattr(record, "layout", "") or "")
    if not relative:
        return Path(dist_dir) / "oci-image"
    base = manifest.base.resolve()
    path = (base / relative).resolve()
    if not path.is_relative_to(base):
        raise InputError(f"{manifest.path}: images[{record.ref}].layout leaves {base}")
    return path


# --------------------------------------------------------------------------- push


@dataclass
class PushStep:
    """One row of the push: what, and whether it was sent now or found done."""

    item: str
    state: str  # "pushed", "done before", "tagged", "stored"


@dataclass
class PushResult:
    repository: str
    digest: str
    steps: list[PushStep] = field(default_factory=list)


def _ledger(manifest: Manifest, host: str, item: str) -> bool:
    entry = manifest.ledger_entry(LEDGER_PREFIX + host, item)
    return entry is not None and entry.state == "done"


def _mark(manifest: Manifest, host: str, item: str, digest: str, state: str, url: str = "") -> None:
    manifest.record_ledger(
        LEDGER_PREFIX + host, item, sha256=digest.removeprefix("sha256:"), state=state, url=url
    )


def check_tags(registry: OciRegistry, image: ImageName, digest: str, tags: list[str]) -> None:
    """PolicyError when any tag points at another digest (nothing is moved)."""
    moved = []
    for tag in tags:
        found = registry.get_manifest(image.name, tag)
        if found is not None and found[2] != digest:
            moved.append(f"{tag} -> {found[2]}")
    if moved:
        raise PolicyError(
            f"{image.repository}: tag {', '.join(moved)}, not {digest}; nothing was moved",
            hint="a released tag never moves: release a new version",
        )


def push_image(
    manifest: Manifest,
    record: ImageRecord,
    layout: Path,
    *,
    credentials: RegistryCredentials | None = None,
    retry: RetryPolicy | None = None,
) -> PushResult:
    """Blobs, then the manifest by digest, then the tags; resumable from the ledger."""
    image = parse_reference(record.repository or record.ref, where=f"images[{record.ref}]")
    for tag in record.tags:
        if not tag or len(tag) > 128 or any(not (c.isalnum() or c in "._-") for c in tag):
            raise InputError(f"images[{record.ref}].tags: {tag!r} is not a valid tag")
    local = read_layout(layout, record.digest)
    registry = OciRegistry(image.host, credentials, retry=retry)
    result = PushResult(image.repository, record.digest)
    check_tags(registry, image, record.digest, record.tags)  # before anything is sent
    for descriptor, path in local.blobs:
        item = f"{image.name}/blobs/{descriptor['digest']}"
        if _ledger(manifest, image.host, item):
            result.steps.append(PushStep(item, "done before"))
            continue
        _mark(manifest, image.host, item, descriptor["digest"], "started")
        registry.upload_blob(image.name, path, descriptor)
        _mark(manifest, image.host, item, descriptor["digest"], "done")
        result.steps.append(PushStep(item, "pushed"))
    item = f"{image.name}@{record.digest}"
    if _ledger(manifest, image.host, item):
        result.steps.append(PushStep(item, "done before"))
    else:
        _mark(manifest, image.host, item, record.digest, "started")
        registry.put_manifest(image.name, record.digest, local.manifest, local.media_type)
        _mark(
            manifest, image.host, item, record.digest, "done", f"{image.repository}@{record.digest}"
        )
        result.steps.append(PushStep(item, "pushed"))
    check_tags(registry, image, record.digest, record.tags)  # again: nobody moved one since
    for tag in record.tags:
        item = f"{image.name}:{tag}"
        if _ledger(manifest, image.host, item):
            result.steps.append(PushStep(item, "done before"))
            continue
        _mark(manifest, image.host, item, record.digest, "started")
        registry.put_manifest(image.name, tag, local.manifest, local.media_type)
        _mark(manifest, image.host, item, record.digest, "done", f"{image.repository}:{tag}")
        result.steps.append(PushStep(item, "tagged"))
    return result


# --------------------------------------------------------------------------- referrers


def referrer_manifest(
    bundle: bytes, subject: dict[str, Any], annotations: dict[str, str]
) -> tuple[bytes, dict[str, Any]]:
    """The referrer manifest of one Sigstore bundle (bytes, and its bundle layer descriptor).

    Serialised compactly with sorted keys: the same bundle always gives the same digest.
    """
    layer = {"mediaType": SIGSTORE_BUNDLE, "digest": sha256_digest(bundle), "size": len(bundle)}
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": SIGSTORE_BUNDLE,
        "config": {
            "mediaType": EMPTY_CONFIG,
            "digest": sha256_digest(EMPTY_JSON),
            "size": len(EMPTY_JSON),
        },
        "layers": [layer],
        "subject": subject,
        "annotations": annotations,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode(), layer


def bundle_annotations(bundle: bytes) -> dict[str, str]:
    """What cosign writes on a bundle referrer: DSSE or message signature, predicate type."""
    try:
        doc = json.loads(bundle)
    except ValueError:
        raise InputError("Sigstore bundle is not JSON") from None
    if not isinstance(doc, dict):
        raise InputError("Sigstore bundle is not a JSON object")
    envelope = doc.get("dsseEnvelope")
    if not isinstance(envelope, dict):
        return {CONTENT_ANNOTATION: "message-signature"}
    import base64

    try:
        statement = json.loads(base64.b64decode(envelope.get("payload", "")))
        predicate = str(statement.get("predicateType", ""))
    except (ValueError, TypeError, AttributeError):
        predicate = ""
    return {CONTENT_ANNOTATION: "dsse-envelope", PREDICATE_ANNOTATION: predicate}


def fallback_tag(digest: str) -> str:
    """The referrers tag schema's tag for ``digest``: ``sha256-<hex>``."""
    return digest.replace(":", "-", 1)


def add_to_fallback_index(
    registry: OciRegistry, name: str, subject_digest: str, descriptors: list[dict[str, Any]]
) -> str:
    """Read the fallback index at ``sha256-<hex>``, add ``descriptors`` not yet in it, write it
    back (earlier referrers stay); return the index digest."""
    tag = fallback_tag(subject_digest)
    found = registry.get_manifest(name, tag)
    manifests: list[dict[str, Any]] = []
    if found is not None:
        try:
            existing = json.loads(found[0])
            manifests = [m for m in existing.get("manifests", []) if isinstance(m, dict)]
        except (ValueError, AttributeError):
            log.warning("%s/%s:%s is not an index; replacing it", registry.host, name, tag)
    known = {m.get("digest") for m in manifests}
    added = [d for d in descriptors if d["digest"] not in known]
    if not added and found is not None:
        return found[2]
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests + added}
    data = json.dumps(index, sort_keys=True, separators=(",", ":")).encode()
    return registry.put_manifest(name, tag, data, OCI_INDEX)


def push_referrers(
    manifest: Manifest,
    record: ImageRecord,
    bundles_dir: Path,
    layout: Path,
    *,
    credentials: RegistryCredentials | None = None,
    retry: RetryPolicy | None = None,
) -> PushResult:
    """Store every bundle of ``record.referrers`` as a referrer of the image; record digests."""
    image = parse_reference(record.repository or record.ref, where=f"images[{record.ref}]")
    local = read_layout(layout, record.digest)
    registry = OciRegistry(image.host, credentials, retry=retry)
    result = PushResult(image.repository, record.digest)
    descriptors: list[dict[str, Any]] = []
    for referrer in record.referrers:
        check_plain_name(referrer.bundle, where=f"images[{record.ref}].referrers")
        path = Path(bundles_dir) / referrer.bundle
        try:
            bundle = path.read_bytes()
        except OSError:
            raise InputError(f"{path}: bundle not found", hint="run upm-ci sign") from None
        annotations = bundle_annotations(bundle)
        data, layer = referrer_manifest(bundle, local.descriptor, annotations)
        digest = sha256_digest(data)
        descriptors.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": len(data),
                "artifactType": SIGSTORE_BUNDLE,
                "annotations": annotations,
            }
        )
        item = f"{image.name}/referrers/{referrer.bundle}"
        if _ledger(manifest, image.host, item) and referrer.digest == digest:
            result.steps.append(PushStep(item, "done before"))
            continue
        _mark(manifest, image.host, item, digest, "started")
        registry.upload_bytes(image.name, EMPTY_JSON, EMPTY_CONFIG)
        registry.upload_blob(image.name, path, layer)
        registry.put_manifest(image.name, digest, data, OCI_MANIFEST)
        referrer.digest = digest
        _mark(manifest, image.host, item, digest, "done", f"{image.repository}@{digest}")
        result.steps.append(PushStep(item, "stored"))
    if descriptors:
        add_to_fallback_index(registry, image.name, record.digest, descriptors)
        result.steps.append(PushStep(f"{image.name}:{fallback_tag(record.digest)}", "indexed"))
    if manifest.path:
        manifest.save()
    return result


def find_referrers(registry: OciRegistry, image: ImageName, digest: str) -> list[dict[str, Any]]:
    """Sigstore bundle referrers of ``digest``: the referrers API when there is one, plus the
    fallback index (distribution 2.x only has the latter); each descriptor once."""
    found: dict[str, dict[str, Any]] = {}
    api = registry.referrers_api(image.name, digest)
    index = registry.get_manifest(image.name, fallback_tag(digest))
    listed = list(api or [])
    if index is not None:
        try:
            listed += [m for m in json.loads(index[0]).get("manifests", []) if isinstance(m, dict)]
        except (ValueError, AttributeError):
            pass
    for m in listed:
        if m.get("artifactType") == SIGSTORE_BUNDLE and isinstance(m.get("digest"), str):
            found.setdefault(m["digest"], m)
    return list(found.values())


def retarget_image(record: ImageRecord, host: str) -> None:
    """Point ``record`` at registry ``host`` (same name, tags and digest): what a rehearsal
    does after build and before sign, so the image goes to its local registry and the
    attestations name where it really is."""
    image = parse_reference(record.repository or record.ref, where=f"images[{record.ref}]")
    record.repository = f"{host}/{image.name}"
    ref = parse_reference(record.ref, where=f"images[{record.ref}].ref")
    record.ref = f"{host}/{ref.name}" + (
        f"@{ref.digest}" if ref.digest else f":{ref.tag}" if ref.tag else ""
    )


def check_images_signed(manifest: Manifest, dist_dir: Path) -> None:
    """PolicyError unless every image has its signature, provenance and SBOM attestation
    bundles (``upm-ci sign``): only signed images are published."""
    wanted = {"signature", "provenance", "sbom-attestation"}
    for record in manifest.images:
        kinds = {r.kind for r in record.referrers if (Path(dist_dir) / r.bundle).is_file()}
        if not wanted <= kinds:
            raise PolicyError(
                f"{manifest.path or 'manifest'}: image {record.ref} has no "
                f"{', '.join(sorted(wanted - kinds))} bundle; nothing was published",
                hint="run `upm-ci sign`",
            )


def publish_images(
    manifest: Manifest,
    dist_dir: Path,
    *,
    credentials: RegistryCredentials | None = None,
    retry: RetryPolicy | None = None,
    require_signed: bool = True,
) -> list[PushResult]:
    """Publish phase: push every image of the manifest, then store its referrers (nothing
    when the manifest has no image). With ``require_signed`` (the default) an image without
    its three bundles is refused before anything is sent."""
    if require_signed:
        check_images_signed(manifest, dist_dir)
    results = []
    for record in manifest.images:
        layout = layout_dir(manifest, record, dist_dir)
        results.append(push_image(manifest, record, layout, credentials=credentials, retry=retry))
        if record.referrers:
            stored = push_referrers(
                manifest, record, dist_dir, layout, credentials=credentials, retry=retry
            )
            results[-1].steps += stored.steps
    return results


def credentials_options(f: Any) -> Any:
    """``--registry-username``/``--registry-password`` (``UPM_REGISTRY_USERNAME``/
    ``UPM_REGISTRY_PASSWORD``) for the CLI commands that talk to a registry; the password is
    masked the moment it is read."""
    import click

    def masked(ctx: Any, param: Any, value: str | None) -> str | None:
        if value:
            gha.mask(value)
        return value

    f = click.option(
        "--registry-password",
        envvar="UPM_REGISTRY_PASSWORD",
        show_envvar=True,
        default=None,
        callback=masked,
        help="Container registry password or token (HTTP Basic).",
    )(f)
    return click.option(
        "--registry-username",
        envvar="UPM_REGISTRY_USERNAME",
        show_envvar=True,
        default=None,
        help="Container registry user [default: anonymous].",
    )(f)
