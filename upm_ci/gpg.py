"""GPG for the release: detached signatures made by sign and checked by verify.

Both sides run gpg the same way (:class:`GpgHome`): in a throw-away GNUPGHOME, in batch mode,
with gpg's machine-readable status lines (``--status-file``, kept apart from its output and
its messages) read by one parser (:class:`GpgStatus`). A signature counts only when gpg
reports ``VALIDSIG`` for an accepted key; ``BADSIG``, ``ERRSIG``/``NO_PUBKEY`` and
``NODATA``/``BADARMOR`` say why it does not.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from upm_ci import gha
from upm_ci.errors import InputError
from upm_ci.layout import GPG_SIG_SUFFIX
from upm_ci.manifest import write_text_atomic

_STATUS_PREFIX = "[GNUPG:] "
_PRIVATE_KEY_BLOCK = "-----BEGIN PGP PRIVATE KEY BLOCK-----"


@dataclass(frozen=True)
class GpgStatus:
    """gpg's status lines (``[GNUPG:] KEYWORD ARG...``) as (keyword, args) pairs."""

    lines: tuple[tuple[str, tuple[str, ...]], ...]

    @classmethod
    def parse(cls, text: str) -> GpgStatus:
        lines = []
        for line in text.splitlines():
            if line.startswith(_STATUS_PREFIX):
                keyword, *args = line[len(_STATUS_PREFIX) :].split()
                lines.append((keyword, tuple(args)))
        return cls(tuple(lines))

    def has(self, *keywords: str) -> bool:
        return any(keyword in keywords for keyword, _ in self.lines)

    def args(self, keyword: str) -> list[tuple[str, ...]]:
        """The arguments of every ``keyword`` line, in order."""
        return [args for k, args in self.lines if k == keyword]

    def valid_signature(self) -> tuple[str, str] | None:
        """(signing key fingerprint, primary key fingerprint) of the first good signature."""
        for args in self.args("VALIDSIG"):
            if args:
                return args[0], args[-1]
        return None

    def imported(self) -> list[str]:
        """Fingerprints of the keys an ``--import`` took."""
        return [args[1] for args in self.args("IMPORT_OK") if len(args) > 1]


@dataclass(frozen=True)
class GpgResult:
    returncode: int
    stdout: str
    stderr: str
    status: GpgStatus

    def error_line(self) -> str:
        """gpg's last message (redacted), or its exit code."""
        lines = [x for x in gha.redact(self.stderr).splitlines() if x.strip()]
        return lines[-1] if lines else f"exit {self.returncode}"


class GpgHome:
    """A throw-away GNUPGHOME (mode 0700) and the one way to run gpg in it; removed on exit.

    ``agent``: whether gpg may start its agent (needed for secret keys); the agent is killed
    on exit. A passphrase goes to gpg on stdin (``--passphrase-fd 0``), never in argv.
    """

    def __init__(self, *, agent: bool = False, prefix: str = "upm-gnupg-") -> None:
        self.agent = agent
        self.path = Path(tempfile.mkdtemp(prefix=prefix))
        os.chmod(self.path, 0o700)

    def __enter__(self) -> GpgHome:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def run(self, *args: str, passphrase: str | None = None) -> GpgResult:
        cmd = ["gpg", "--homedir", str(self.path), "--batch", "--yes", "--no-tty"]
        if not self.agent:
            cmd.append("--no-autostart")
        if passphrase is not None:
            cmd += ["--pinentry-mode", "loopback", "--passphrase-fd", "0"]
        fd, status_name = tempfile.mkstemp(prefix="status-", dir=self.path)
        os.close(fd)
        status_file = Path(status_name)
        try:
            proc = subprocess.run(
                [*cmd, "--status-file", str(status_file), *args],
                input=(passphrase + "\n") if passphrase is not None else "",
                capture_output=True,
                text=True,
                check=False,
            )
            status = GpgStatus.parse(status_file.read_text("utf-8", "replace"))
        finally:
            status_file.unlink(missing_ok=True)
        return GpgResult(proc.returncode, proc.stdout, proc.stderr, status)

    def import_keys(self, keys: Iterable[Path]) -> list[str]:
        """Import key files; the fingerprints gpg reports as imported ([] if it failed)."""
        result = self.run("--import", *map(str, keys))
        return result.status.imported() if result.returncode == 0 else []

    def close(self) -> None:
        home = self.path
        if not home.exists():
            return
        if self.agent:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(
                    ["gpgconf", "--homedir", str(home), "--kill", "all"],
                    capture_output=True,
                    check=False,
                    timeout=10,
                )
        shutil.rmtree(home, ignore_errors=True)


# --------------------------------------------------------------------------- signing


class GpgSigner:
    """The release key in a :class:`GpgHome`: detached armored signatures, its public key."""

    def __init__(self, private_key: str, passphrase: str | None) -> None:
        gha.mask(private_key)
        if passphrase:
            gha.mask(passphrase)
        self._key = private_key
        self._passphrase = passphrase or ""
        self._home: GpgHome | None = None
        self.fingerprint = ""
        self._lock = threading.Lock()

    def __enter__(self) -> GpgSigner:
        if shutil.which("gpg") is None:
            raise InputError("--gpg-key given but gpg is not installed", hint="install gnupg")
        key_text = self._read_key()
        self._home = GpgHome(agent=True)
        try:
            key_file = self._home.path / "release-key.asc"
            key_file.write_text(key_text, encoding="utf-8")
            os.chmod(key_file, 0o600)
            self._gpg("--import", str(key_file), what="--gpg-key: import")
            key_file.unlink()
            listing = self._gpg("--with-colons", "--list-secret-keys", what="--gpg-key")
            fprs = [line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")]
            if not fprs:
                raise InputError(
                    "--gpg-key: holds no secret key", hint="export it with --export-secret-keys"
                )
            self.fingerprint = fprs[0]
            probe = self._home.path / "probe"
            probe.write_bytes(b"upm-ci passphrase probe")
            self._detach_sign(probe, self._home.path / "probe.asc", what="--gpg-passphrase")
        except BaseException:
            self._cleanup()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._cleanup()

    def _read_key(self) -> str:
        text = self._key.strip()
        if _PRIVATE_KEY_BLOCK in text:
            return text + "\n"
        path = Path(text)
        try:
            if len(text) < 4096 and path.is_file():
                content = path.read_text(encoding="utf-8")
                gha.mask(content)
                if _PRIVATE_KEY_BLOCK in content:
                    return content
        except (OSError, UnicodeDecodeError):
            pass
        raise InputError(
            "--gpg-key (UPM_GPG_PRIVATE_KEY): neither an armored private key nor a readable file"
            " holding one",
            hint="pass the output of `gpg --armor --export-secret-keys KEYID`",
        )

    def _run(self, *args: str, passphrase: bool = False) -> GpgResult:
        assert self._home is not None
        return self._home.run(*args, passphrase=self._passphrase if passphrase else None)

    def _gpg(self, *args: str, what: str, passphrase: bool = False) -> str:
        result = self._run(*args, passphrase=passphrase)
        if result.returncode != 0:
            raise InputError(f"{what}: gpg failed: {result.error_line()}")
        return result.stdout

    def _detach_sign(self, path: Path, out: Path, *, what: str) -> None:
        tmp = out.with_name(f".{out.name}.tmp")
        try:
            self._gpg(
                "--local-user",
                self.fingerprint,
                "--armor",
                "--detach-sign",
                "--output",
                str(tmp),
                str(path),
                what=what,
                passphrase=True,
            )
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)

    def sign(self, path: Path) -> Path:
        """Write ``<path>.asc`` (detached, armored) and return it."""
        out = path.with_name(path.name + GPG_SIG_SUFFIX)
        with self._lock:
            self._detach_sign(path, out, what=f"gpg signing of {path.name}")
        return out

    def verifies(self, signature: Path, path: Path) -> bool:
        """True if ``signature`` is this key's valid signature of ``path`` (resume)."""
        if not signature.is_file():
            return False
        result = self._run("--verify", str(signature), str(path))
        valid = result.status.valid_signature()
        return result.returncode == 0 and valid is not None and valid[0] == self.fingerprint

    def export_public(self, out: Path) -> Path:
        write_text_atomic(
            out, self._gpg("--armor", "--export", self.fingerprint, what="gpg export")
        )
        return out

    def _cleanup(self) -> None:
        home, self._home = self._home, None
        if home is not None:
            home.close()


# --------------------------------------------------------------------------- verifying


def verify_signatures(
    keys: list[Path], pairs: Iterable[tuple[Path, Path | None]], fingerprint: str = ""
) -> dict[str, tuple[bool, str]]:
    """``gpg --verify`` each (signature, file) in a throw-away GNUPGHOME holding only ``keys``:
    signature name -> (counts, reason).

    A signature counts when it is good and made by one of the imported keys, or, with
    ``fingerprint``, by that key only (primary or subkey fingerprint).
    """
    pairs = list(pairs)
    if shutil.which("gpg") is None:
        return {sig.name: (False, "gpg is not installed: cannot check it") for sig, _ in pairs}
    results: dict[str, tuple[bool, str]] = {}
    with GpgHome(prefix="upm-gpg-") as home:
        fingerprints = home.import_keys(keys)
        if not fingerprints:
            reason = f"public key {', '.join(k.name for k in keys)} could not be imported"
            return {sig.name: (False, reason) for sig, _ in pairs}
        accepted = [fingerprint] if fingerprint else fingerprints
        for sig, subject in pairs:
            if subject is None:
                results[sig.name] = (False, "signature of a file that is not in the release")
                continue
            results[sig.name] = signature_outcome(
                home.run("--verify", str(sig), str(subject)), accepted
            )
    return results


def signature_outcome(result: GpgResult, fingerprints: list[str]) -> tuple[bool, str]:
    """Whether a ``gpg --verify`` shows a good signature by one of ``fingerprints``, and why."""
    status = result.status
    valid = status.valid_signature()
    if result.returncode == 0 and valid and set(valid) & set(fingerprints):
        return True, f"good signature by {valid[1][-16:]}"
    if result.returncode == 0 and valid:
        return False, f"signed by {valid[1][-16:]}, not by the pinned key"
    if status.has("BADSIG"):
        return False, "bad signature: the file is not what was signed"
    if status.has("NO_PUBKEY", "ERRSIG"):
        return False, "signed by another key than the release key"
    if status.has("NODATA", "BADARMOR"):
        return False, "not a valid OpenPGP signature (corrupted .asc)"
    return False, f"gpg --verify failed (exit {result.returncode})"
