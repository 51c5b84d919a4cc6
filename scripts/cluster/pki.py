"""A throwaway PKI made with `openssl`: one CA, serving and client certificates, the SA key pair.

Shared by the bare control plane of the chart tests and by the cluster: one way to make certs.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_OPENSSL_CONFIG = """\
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = unused
[ ca ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
[ server ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = ${ENV::SANS}
authorityKeyIdentifier = keyid
[ client ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
"""
_EC = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")


class PkiError(RuntimeError):
    """openssl is missing or refused a command (the message carries its stderr)."""


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


class Authority:
    """A CA in `directory`; `issue` signs server or client certificates with it."""

    def __init__(self, directory: Path, days: int = 2, name: str = "floodgate-test-ca") -> None:
        self.directory = directory
        self.days = days
        directory.mkdir(parents=True, exist_ok=True)
        self._config = directory / "openssl.cnf"
        self._config.write_text(_OPENSSL_CONFIG)
        self._run(
            "req", "-x509", *_EC, "-config", str(self._config), "-extensions", "ca",
            "-subj", f"/CN={name}", "-days", str(days), "-keyout", "ca.key", "-out", "ca.crt",
        )  # fmt: skip
        self.ca = KeyPair(directory / "ca.crt", directory / "ca.key")
        self.ca.key.chmod(0o600)

    def _run(self, *args: str, sans: str = "DNS:unused") -> None:
        openssl = shutil.which("openssl")
        if openssl is None:
            raise PkiError("openssl not found (Debian package 'openssl')")
        proc = subprocess.run(
            [openssl, *args],
            cwd=self.directory,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            env={"SANS": sans, "PATH": "/usr/bin:/bin"},
        )
        if proc.returncode != 0:
            raise PkiError(f"openssl {' '.join(args)} failed:\n{proc.stderr}")

    def issue(self, name: str, subject: str, sans: Sequence[str] = ()) -> KeyPair:
        """`subject` like `/O=system:nodes/CN=system:node:x`; with `sans` a serving certificate."""
        extensions = "server" if sans else "client"
        san_text = ", ".join(sans) or "DNS:unused"
        self._run(
            "req", "-new", *_EC, "-config", str(self._config), "-subj", subject,
            "-keyout", f"{name}.key", "-out", f"{name}.csr", sans=san_text,
        )  # fmt: skip
        self._run(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-set_serial", str(secrets.randbits(63)), "-days", str(self.days), "-sha256",
            "-extfile", str(self._config), "-extensions", extensions, "-out", f"{name}.crt",
            sans=san_text,
        )  # fmt: skip
        pair = KeyPair(self.directory / f"{name}.crt", self.directory / f"{name}.key")
        pair.key.chmod(0o600)
        return pair

    def service_account_keys(self) -> KeyPair:
        """RSA key pair that signs (private) and verifies (public, as `cert`) SA tokens."""
        rsa = ("-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048")
        self._run("genpkey", *rsa, "-out", "sa.key")
        self._run("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub")
        (self.directory / "sa.key").chmod(0o600)
        return KeyPair(self.directory / "sa.pub", self.directory / "sa.key")
