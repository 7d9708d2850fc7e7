"""The residency vocabulary (routing/regions.py): names, cloud region ids, nesting."""

import pytest

from routing.regions import (
    AWS,
    AZURE,
    CLOUD,
    GCP,
    PARENT,
    SUBREGIONS,
    VOCABULARY,
    region_problem,
    residency_of,
    vocabulary_problem,
    within,
)


def test_every_cloud_id_maps_into_the_vocabulary_and_no_id_means_two_things():
    assert set(CLOUD.values()) <= set(VOCABULARY)
    for one, other in ((AWS, AZURE), (AWS, GCP), (AZURE, GCP)):
        for shared in set(one) & set(other):
            assert one[shared] == other[shared], shared
    assert not set(CLOUD) & set(VOCABULARY)  # an id is never also a vocabulary name


def test_sub_regions_belong_to_their_parent():
    assert PARENT["eu-west"] == "eu" and PARENT["us-east"] == "us"
    assert all(sub.startswith(parent + "-") for parent, subs in SUBREGIONS.items() for sub in subs)
    assert {"eu", "uk", "us", "ca", "ap", "sa", "me", "af", "on-prem"} == set(SUBREGIONS)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("eu", "eu"),
        ("EU-West", "eu-west"),
        (" on-prem ", "on-prem"),
        ("us-east-1", "us-east"),
        ("eu-west-2", "uk-south"),  # AWS London is the UK, not the EU
        ("westeurope", "eu-west"),
        ("WestEurope", "eu-west"),
        ("europe-west4", "eu-west"),
        ("europe-west2", "uk-south"),
        ("", ""),
        ("global", None),
        ("local", None),
        ("mars-1", None),
    ],
)
def test_residency_of(value, expected):
    assert residency_of(value) == expected


def test_an_unknown_region_is_refused_naming_the_vocabulary():
    assert region_problem("us-east-1") is None and region_problem("") is None
    message = region_problem("local")
    assert message.startswith("'local' is not a region: use one of eu, eu-west,")
    assert "on-prem" in message and "us-east-1" in message


def test_policies_name_vocabulary_regions_only():
    assert vocabulary_problem("eu-west") is None
    assert "is in 'eu-west'" in vocabulary_problem("westeurope")
    assert vocabulary_problem("europe").startswith("'europe' is not one of eu,")


@pytest.mark.parametrize(
    ("residency", "allowed", "inside"),
    [
        ("eu-west", {"eu"}, True),
        ("eu", {"eu"}, True),
        ("eu", {"eu-west"}, False),  # anywhere in Europe is not necessarily eu-west
        ("eu-central", {"eu-west"}, False),
        ("uk-south", {"eu"}, False),
        ("us-east", {"eu", "us"}, True),
        ("", {"eu"}, False),  # no region is inside no restriction
        ("on-prem", ["on-prem"], True),
    ],
)
def test_within_is_hierarchical(residency, allowed, inside):
    assert within(residency, allowed) is inside
