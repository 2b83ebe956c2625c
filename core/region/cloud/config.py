"""An account's provider config: decrypted only here, in the controller, for the driver."""
from __future__ import annotations

import json
from typing import Any

from core.errors import InputParameterError, ServiceUnavailableError

# Cloudpods' provider (brand) names -> our driver names (drivers/registry.py)
PROVIDERS: dict[str, str] = {"Aws": "aws", "Cloudpods": "cloudpods", "VMware": "esxi"}


def driver_for(provider: str) -> tuple[str, str]:
    """(brand, driver) for a provider given by brand or driver name, any case."""
    want = (provider or "").strip().lower()
    for brand, drv in PROVIDERS.items():
        if want in (brand.lower(), drv):
            return brand, drv
    raise InputParameterError(f"provider: {provider!r} is not supported (one of {', '.join(PROVIDERS)})")


def _cipher() -> Any:
    from core.region.hosted import runtime

    return runtime().cipher


def seal(secret: str) -> str:
    return str(_cipher().encrypt(json.dumps({"secret": secret})))


def unseal(blob: str) -> str:
    if not blob:
        return ""
    try:
        return str(json.loads(_cipher().decrypt(blob)).get("secret") or "")
    except ServiceUnavailableError:
        raise
    except Exception as exc:  # a rotated-away key: say so, never show the blob
        raise ServiceUnavailableError(f"the account's secret cannot be decrypted ({type(exc).__name__}): "
                                      "update its credential") from None


def account_config(account: Any, **extra: Any) -> dict[str, Any]:
    """What the driver gets: endpoint, account, secret, options (+ zone facts for a host)."""
    return {"access_url": account.access_url, "account": account.account, "secret": unseal(account.secret),
            "options": dict(account.options or {}), **extra}


def provider_of(account: Any) -> Any:
    """The account's CloudProvider (drivers.base), built from the registry by driver name."""
    from drivers.registry import get_driver

    return get_driver(account.driver).for_account(account_config(account))
