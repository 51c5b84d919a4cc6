"""A minimal Kubernetes client for one job: merge-patching RateLimitPolicy status.

Status is written from the operator's own loop rather than from kopf timers, because kopf puts a
finalizer on every object with a timer, and a finalizer would make `kubectl delete rlp` hang
whenever the operator is down. Credentials come from kopf's own login functions (service account
in a pod, KUBECONFIG elsewhere).
"""

from __future__ import annotations

import base64
import ssl
import tempfile
from pathlib import Path
from typing import Any

import httpx
import kopf

from floodgate.operator.crd import GROUP, PLURAL, VERSION


def connection_info(settings: kopf.OperatorSettings) -> kopf.ConnectionInfo:
    info = kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(
        settings=settings
    )
    if info is None:
        raise kopf.LoginError("no service account token and no KUBECONFIG: cannot reach the API")
    return info


def _pem(data: str | bytes) -> bytes:
    raw = data.encode() if isinstance(data, str) else data
    return raw if raw.lstrip().startswith(b"-----") else base64.b64decode(raw)


def _ssl_context(info: kopf.ConnectionInfo, workdir: Path) -> ssl.SSLContext | bool:
    if info.insecure:
        return False
    context = ssl.create_default_context()
    if info.ca_path:
        context.load_verify_locations(cafile=str(info.ca_path))
    elif info.ca_data:
        context.load_verify_locations(cadata=_pem(info.ca_data).decode())
    cert, key = info.certificate_path, info.private_key_path
    if info.certificate_data and info.private_key_data:
        # ssl wants files; they live in a private temp dir (an emptyDir under a read-only root).
        cert, key = workdir / "client.crt", workdir / "client.key"
        cert.write_bytes(_pem(info.certificate_data))
        key.write_bytes(_pem(info.private_key_data))
        key.chmod(0o600)
    if cert and key:
        context.load_cert_chain(str(cert), str(key))
    return context


class StatusWriter:
    def __init__(self, info: kopf.ConnectionInfo) -> None:
        self._workdir = tempfile.TemporaryDirectory(prefix="floodgate-operator-")
        headers = {"Content-Type": "application/merge-patch+json"}
        if info.token:
            headers["Authorization"] = f"{info.scheme or 'Bearer'} {info.token}"
        self._client = httpx.AsyncClient(
            base_url=info.server,
            verify=_ssl_context(info, Path(self._workdir.name)),
            headers=headers,
            timeout=5.0,
        )

    async def close(self) -> None:
        await self._client.aclose()
        self._workdir.cleanup()

    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> bool:
        """Merge-patch the status subresource; False when the object is gone (deleted meanwhile)."""
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}/status"
        response = await self._client.patch(path, json={"status": status})
        if response.status_code == 404:
            return False
        response.raise_for_status()
        return True
