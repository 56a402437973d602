"""Turns a validated ``etcd`` section into EtcdSettings: the protocol it implies, and the settings
that cannot work together (TLS files over plain HTTP, a key without its certificate, ...)."""

from __future__ import annotations

from pgwarden.config.explain import Finding
from pgwarden.config.node_schema import EtcdModel
from pgwarden.model.node import EtcdSettings


def etcd_settings(model: EtcdModel, findings: list[Finding]) -> EtcdSettings:
    """The settings; problems are appended to ``findings`` (the result is then not used)."""
    schemes = sorted({h.scheme for h in model.hosts if h.scheme})
    if len(schemes) > 1:
        findings.append(
            Finding(
                ("etcd", "hosts"), "mixes http:// and https:// members", "write every member with https://"
            )
        )
    files = [name for name in ("cacert", "cert", "key") if getattr(model, name)]
    protocol = model.protocol or (schemes[0] if schemes else "https" if files else "http")
    if model.protocol and schemes and schemes != [model.protocol]:
        findings.append(
            Finding(
                ("etcd", "protocol"),
                f"is {model.protocol}, but etcd.hosts are written with {schemes[0]}://",
                "write the hosts as host:port and keep protocol, or leave protocol out",
            )
        )
    if protocol == "http" and files:
        findings.append(
            Finding(
                ("etcd", "protocol"),
                f"etcd.{files[0]} is set, but etcd is spoken to over plain http",
                "set etcd.protocol: https (or write the hosts as https://host:port)",
            )
        )
    if model.key and not model.cert:
        findings.append(
            Finding(("etcd", "key"), "is set without etcd.cert", "set etcd.cert to the client certificate")
        )
    if (model.username is None) != (model.password is None):
        missing = "password" if model.password is None else "username"
        findings.append(
            Finding(
                ("etcd", missing),
                f"is missing: etcd authenticates users by name and password ({missing} not set)",
                f"set etcd.{missing} (or PGWARDEN_ETCD_{missing.upper()}), or remove the other",
            )
        )
    return EtcdSettings(
        hosts=tuple(h.address for h in model.hosts),
        prefix=model.prefix,
        bind_address=model.bind_address,
        protocol=protocol,
        cacert=model.cacert,
        cert=model.cert,
        key=model.key,
        username=model.username,
        password=model.password,
    )
