"""Certificates for the local control plane, made with openssl (no Go or Python crypto dependency)."""

from __future__ import annotations

import subprocess
from pathlib import Path

SERVER_SANS = (
    "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,"
    "DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.96.0.1"
)

# CN/O pairs of the client certificates: the apiserver derives user and groups from them.
CLIENTS: dict[str, tuple[str, str]] = {
    "admin": ("kubernetes-admin", "system:masters"),
    "kube-controller-manager": ("system:kube-controller-manager", ""),
    "kube-scheduler": ("system:kube-scheduler", ""),
    "kwok": ("kwok-controller", "system:masters"),
}


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])} failed: {result.stderr.strip()}")


def _subject(cn: str, org: str) -> str:
    return f"/CN={cn}" + (f"/O={org}" if org else "")


def _signed_cert(pki: Path, name: str, subject: str, extensions: str) -> None:
    ext = pki / f"{name}.ext"
    ext.write_text(extensions)
    _openssl("genrsa", "-out", f"{name}.key", "2048", cwd=pki)
    _openssl("req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr", cwd=pki)
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "3650", "-sha256", "-extfile", ext.name, "-out", f"{name}.crt", cwd=pki,
    )


def ensure_pki(pki: Path) -> None:
    """Create the CA, serving, client and service-account keys once; reused across restarts."""
    if (pki / "done").exists():
        return
    pki.mkdir(parents=True, exist_ok=True)
    _openssl("genrsa", "-out", "ca.key", "2048", cwd=pki)
    _openssl(
        "req", "-x509", "-new", "-nodes", "-key", "ca.key", "-subj", "/CN=modeldeploy-local-ca",
        "-days", "3650", "-sha256", "-out", "ca.crt", cwd=pki,
    )
    _signed_cert(
        pki, "apiserver", "/CN=kube-apiserver",
        f"basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
        f"extendedKeyUsage=serverAuth\nsubjectAltName={SERVER_SANS}\n",
    )
    for name, (cn, org) in CLIENTS.items():
        _signed_cert(
            pki, name, _subject(cn, org),
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n",
        )
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)
    (pki / "done").write_text("ok\n")


def write_kubeconfig(path: Path, server: str, pki: Path, client: str) -> None:
    """A kubeconfig with absolute file references, readable by kubectl, helm and the Python client."""
    path.write_text(
        f"""apiVersion: v1
kind: Config
clusters:
- name: modeldeploy-local
  cluster:
    server: {server}
    certificate-authority: {pki / "ca.crt"}
users:
- name: {client}
  user:
    client-certificate: {pki / f"{client}.crt"}
    client-key: {pki / f"{client}.key"}
contexts:
- name: modeldeploy-local
  context:
    cluster: modeldeploy-local
    user: {client}
current-context: modeldeploy-local
"""
    )
