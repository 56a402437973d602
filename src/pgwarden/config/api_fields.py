"""Field types of the API's access settings: ``api.allowlist`` networks and ``api.tls.verify_client``."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import BeforeValidator, PlainValidator

from pgwarden.config.fields import reject
from pgwarden.model.node import VerifyClient
from pgwarden.model.trust import Network

_FIX = "write an IP network such as 192.0.2.0/24 or a single address such as 192.0.2.31"


def parse_network(value: object) -> Network:
    """One allowlist entry; an address alone is its own /32 (/128). Host names are refused: they
    would need a DNS lookup on the API's event loop, and a lookup that lies would let anyone in."""
    if not isinstance(value, str) or not value.strip():
        reject(f"expected an IP network, got {value!r}", _FIX)
    text = value.strip()
    try:
        # strict=False: 192.0.2.5/24 means the network around it, as firewalls read it.
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        reject(f"{text!r} is not an IP address or network (host names are not accepted)", _FIX)


def _split(value: object) -> object:
    # One comma-separated string (PGWARDEN_API_ALLOWLIST) or a YAML list.
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


NetworkField = Annotated[Network, PlainValidator(parse_network)]
NetworkList = Annotated[list[NetworkField], BeforeValidator(_split)]


def _verify_client(value: object) -> VerifyClient:
    choices = ", ".join(v.value for v in VerifyClient)
    if isinstance(value, VerifyClient):
        return value
    if isinstance(value, str):
        for choice in VerifyClient:
            if choice.value == value.strip().lower():
                return choice
    reject(f"{value!r} is not a verify_client mode", f"use one of {choices}")


VerifyClientField = Annotated[VerifyClient, PlainValidator(_verify_client)]
