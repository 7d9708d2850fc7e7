"""Data residency: the fixed vocabulary of regions, and cloud region ids mapped onto it.

A deployment's `region` (its own, else its provider's) is either a vocabulary name (`eu`,
`eu-west`, `on-prem`, ...) or a cloud provider's region id that maps to one (AWS `us-east-1`
-> `us-east`, Azure `westeurope` -> `eu-west`, GCP `europe-west4` -> `eu-west`). Cloud ids are
kept as written because a bedrock deployment signs its requests for exactly that AWS region;
the routing table carries the vocabulary name beside it as the route's `residency`.

A sub-region belongs to its parent: a policy allowing `eu` allows `eu-west`; one allowing only
`eu-west` does not allow a deployment tagged just `eu` (it may be anywhere in Europe).

`eu` means the European regions outside the United Kingdom, which has its own `uk` (a UK data
rule is not satisfied by Frankfurt, nor an EU one by London). Cloud ids are matched without
regard to case; the tables below are the whole mapping (docs/routing.md prints them).
"""

from collections.abc import Iterable

# Parent -> its sub-regions. The vocabulary is every name here, parents and sub-regions.
SUBREGIONS: dict[str, tuple[str, ...]] = {
    "eu": ("eu-west", "eu-central", "eu-north", "eu-south"),
    "uk": ("uk-south", "uk-west"),
    "us": ("us-east", "us-west", "us-central"),
    "ca": ("ca-central", "ca-east", "ca-west"),
    "ap": ("ap-south", "ap-southeast", "ap-northeast", "ap-east"),
    "sa": ("sa-east", "sa-west"),
    "me": ("me-central", "me-south"),
    "af": ("af-south",),
    "on-prem": (),
}
PARENT: dict[str, str] = {sub: parent for parent, subs in SUBREGIONS.items() for sub in subs}
VOCABULARY: tuple[str, ...] = tuple(
    name for parent, subs in SUBREGIONS.items() for name in (parent, *subs)
)
_NAMES = frozenset(VOCABULARY)

AWS: dict[str, str] = {
    "us-east-1": "us-east",
    "us-east-2": "us-east",
    "us-west-1": "us-west",
    "us-west-2": "us-west",
    "us-gov-east-1": "us-east",
    "us-gov-west-1": "us-west",
    "ca-central-1": "ca-central",
    "ca-west-1": "ca-west",
    "eu-west-1": "eu-west",  # Ireland
    "eu-west-2": "uk-south",  # London: the UK, not the EU
    "eu-west-3": "eu-west",  # Paris
    "eu-central-1": "eu-central",  # Frankfurt
    "eu-central-2": "eu-central",  # Zurich
    "eu-north-1": "eu-north",
    "eu-south-1": "eu-south",
    "eu-south-2": "eu-south",
    "ap-south-1": "ap-south",
    "ap-south-2": "ap-south",
    "ap-southeast-1": "ap-southeast",
    "ap-southeast-2": "ap-southeast",
    "ap-southeast-3": "ap-southeast",
    "ap-southeast-4": "ap-southeast",
    "ap-northeast-1": "ap-northeast",
    "ap-northeast-2": "ap-northeast",
    "ap-northeast-3": "ap-northeast",
    "ap-east-1": "ap-east",
    "sa-east-1": "sa-east",
    "me-south-1": "me-south",
    "me-central-1": "me-central",
    "il-central-1": "me-central",
    "af-south-1": "af-south",
}
AZURE: dict[str, str] = {
    "eastus": "us-east",
    "eastus2": "us-east",
    "westus": "us-west",
    "westus2": "us-west",
    "westus3": "us-west",
    "centralus": "us-central",
    "northcentralus": "us-central",
    "southcentralus": "us-central",
    "westcentralus": "us-central",
    "canadacentral": "ca-central",
    "canadaeast": "ca-east",
    "westeurope": "eu-west",  # Netherlands
    "northeurope": "eu-west",  # Ireland
    "francecentral": "eu-west",
    "germanywestcentral": "eu-central",
    "switzerlandnorth": "eu-central",
    "polandcentral": "eu-central",
    "swedencentral": "eu-north",
    "norwayeast": "eu-north",
    "italynorth": "eu-south",
    "spaincentral": "eu-south",
    "uksouth": "uk-south",
    "ukwest": "uk-west",
    "japaneast": "ap-northeast",
    "japanwest": "ap-northeast",
    "koreacentral": "ap-northeast",
    "eastasia": "ap-east",
    "southeastasia": "ap-southeast",
    "australiaeast": "ap-southeast",
    "australiasoutheast": "ap-southeast",
    "centralindia": "ap-south",
    "southindia": "ap-south",
    "westindia": "ap-south",
    "brazilsouth": "sa-east",
    "uaenorth": "me-central",
    "qatarcentral": "me-central",
    "southafricanorth": "af-south",
}
GCP: dict[str, str] = {
    "us-east1": "us-east",
    "us-east4": "us-east",
    "us-east5": "us-east",
    "us-central1": "us-central",
    "us-south1": "us-central",
    "us-west1": "us-west",
    "us-west2": "us-west",
    "us-west3": "us-west",
    "us-west4": "us-west",
    "northamerica-northeast1": "ca-central",
    "northamerica-northeast2": "ca-central",
    "europe-west1": "eu-west",  # Belgium
    "europe-west2": "uk-south",  # London
    "europe-west3": "eu-central",
    "europe-west4": "eu-west",  # Netherlands
    "europe-west6": "eu-central",
    "europe-west8": "eu-south",
    "europe-west9": "eu-west",
    "europe-west10": "eu-central",
    "europe-west12": "eu-south",
    "europe-north1": "eu-north",
    "europe-central2": "eu-central",
    "europe-southwest1": "eu-south",
    "asia-east1": "ap-east",
    "asia-east2": "ap-east",
    "asia-northeast1": "ap-northeast",
    "asia-northeast2": "ap-northeast",
    "asia-northeast3": "ap-northeast",
    "asia-south1": "ap-south",
    "asia-south2": "ap-south",
    "asia-southeast1": "ap-southeast",
    "asia-southeast2": "ap-southeast",
    "australia-southeast1": "ap-southeast",
    "australia-southeast2": "ap-southeast",
    "southamerica-east1": "sa-east",
    "southamerica-west1": "sa-west",
    "me-west1": "me-central",
    "me-central1": "me-central",
    "me-central2": "me-central",
    "africa-south1": "af-south",
}
# No id is in two tables with different meanings (checked by the tests).
CLOUD: dict[str, str] = {**AWS, **AZURE, **GCP}


def residency_of(value: str) -> str | None:
    """The vocabulary name a region value stands for; "" for none; None if it is unknown."""
    value = (value or "").strip()
    if not value:
        return ""
    lowered = value.lower()
    if lowered in _NAMES:
        return lowered
    return CLOUD.get(lowered)


def region_problem(value: str) -> str | None:
    """Why a deployment's or provider's region value is not accepted, or None."""
    if residency_of(value) is not None:
        return None
    return (
        f"{value!r} is not a region: use one of {', '.join(VOCABULARY)}, or a cloud region id "
        "that maps to one (AWS us-east-1, Azure westeurope, GCP europe-west4, ...)"
    )


def vocabulary_problem(name: str) -> str | None:
    """Why a policy's allowed_regions entry is not accepted (only vocabulary names), or None."""
    if name in _NAMES:
        return None
    hint = f" ({name!r} is in {CLOUD[name.lower()]!r})" if name.lower() in CLOUD else ""
    return f"{name!r} is not one of {', '.join(VOCABULARY)}{hint}"


def within(residency: str, allowed: Iterable[str]) -> bool:
    """Whether a route's residency is inside an allowed set: itself, or its parent, listed.
    No (or an unknown) residency is inside no restriction."""
    if not residency:
        return False
    allowed = allowed if isinstance(allowed, (set, frozenset)) else set(allowed)
    return residency in allowed or PARENT.get(residency, "") in allowed
