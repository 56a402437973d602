"""Field types of the ``etcd`` section: members as ``host:port`` or URLs, and the protocol."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import BeforeValidator, PlainValidator

from pgwarden.config.fields import parse_address, reject, shown
from pgwarden.model.node import Address

PROTOCOLS = ("http", "https")


@dataclass(frozen=True, slots=True)
class EtcdHost:
    """One ``etcd.hosts`` entry: its address and the scheme written with it (None: none)."""

    address: Address
    scheme: str | None = None


def parse_etcd_host(value: object) -> EtcdHost:
    """``host:port``, ``http://host:port`` or ``https://host:port`` (Patroni accepts all three)."""
    if not isinstance(value, str):
        reject(
            f"expected a host:port string, got {shown(value)}", "write it as host:port, e.g. 192.0.2.21:2379"
        )
    text = value.strip()
    scheme, sep, rest = text.partition("://")
    if not sep:
        return EtcdHost(parse_address(text))
    if scheme.lower() not in PROTOCOLS:
        reject(
            f"{shown(value)}: {scheme}:// is not http:// or https://", "write https://host:port or host:port"
        )
    if "/" in rest.rstrip("/"):
        reject(
            f"{shown(value)} has a path", "write only the scheme, host and port, e.g. https://192.0.2.21:2379"
        )
    return EtcdHost(parse_address(rest.rstrip("/")), scheme.lower())


def _split_hosts(value: object) -> object:
    # One comma-separated string (YAML or PGWARDEN_ETCD_HOSTS) or a YAML list.
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _protocol(value: object) -> str:
    if isinstance(value, str) and value.strip().lower() in PROTOCOLS:
        return value.strip().lower()
    reject(f"{shown(value)} is not a protocol etcd speaks", "write http or https")


EtcdHostField = Annotated[EtcdHost, PlainValidator(parse_etcd_host)]
EtcdHostList = Annotated[list[EtcdHostField], BeforeValidator(_split_hosts)]
EtcdProtocol = Annotated[str, PlainValidator(_protocol)]
