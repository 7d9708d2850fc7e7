"""The policy engine: how levels merge, what each denial says, clamp versus reject, features,
blocked terms (never echoed), routes, and the limit and budget scopes a request is held to.

Pure: tables are built in memory, as policies/snapshot.py would build them from the database.
"""

import hashlib
import time

import pytest

from policies.engine import PolicyDenied, PolicyRequest, Rules
from policies.snapshot import PolicyTable
from policies.types import BudgetScope, LimitScope
from tenants.selectors import KeyPrincipal

ORG, TEAM, PROJECT, KEY = 1, 3, 5, 7


def principal(**overrides) -> KeyPrincipal:
    values = {
        "key_id": KEY,
        "key_prefix": "gw-abc",
        "team_id": TEAM,
        "team_slug": "search",
        "org_id": ORG,
        "project_id": PROJECT,
        "user_id": None,
        "allowed_models": None,
        "expires_at": None,
        "revoked": False,
        "key_name": "ci-bot",
        "team_models": None,
    }
    return KeyPrincipal(**{**values, **overrides})


def table(org=None, team=None, project=None, key=None, **extra) -> PolicyTable:
    def rules(spec, scope_id):
        return {} if spec is None else {scope_id: Rules(scope_id=scope_id, **spec)}

    return PolicyTable(
        built_at=time.monotonic(),
        organizations={ORG: ("acme", "Europe/Paris")},
        org_rules=rules(org, ORG),
        team_rules=rules(team, TEAM),
        project_rules=rules(project, PROJECT),
        key_rules=rules(key, KEY),
        project_slugs={PROJECT: "web"},
        **extra,
    )


def request(**overrides) -> PolicyRequest:
    values = {
        "model": "small",
        "features": frozenset(),
        "output_tokens": 0,
        "output_param": "max_tokens",
        "texts": lambda: ["hello there"],
    }
    return PolicyRequest(**{**values, **overrides})


def denial_of(policy, req):
    with pytest.raises(PolicyDenied) as caught:
        policy.check_request(req)
    return caught.value.denial


fs = frozenset

# --- the merge table ----------------------------------------------------------------------------

# (case, levels, principal overrides, what to check, expected)
MERGE_CASES = [
    ("nothing set allows every model", {}, {}, ("may_use", "anything"), True),
    (
        "org and team lists intersect",
        {
            "org": {"allowed_models": fs({"small", "large"})},
            "team": {"allowed_models": fs({"small", "huge"})},
        },
        {},
        ("models", ["huge", "large", "small"]),
        [False, False, True],
    ),
    (
        "the team's own list (tenants) and the key's narrowing still apply",
        {},
        {"team_models": fs({"small", "large"}), "allowed_models": fs({"small"})},
        ("models", ["small", "large"]),
        [True, False],
    ),
    (
        "a key policy narrows, never widens",
        {
            "team": {"allowed_models": fs({"small"})},
            "key": {"allowed_models": fs({"small", "large"})},
        },
        {},
        ("models", ["small", "large"]),
        [True, False],
    ),
    (
        "providers intersect",
        {
            "org": {"allowed_providers": fs({"a", "b"})},
            "project": {"allowed_providers": fs({"b", "c"})},
        },
        {},
        ("routes", [("a", ""), ("b", ""), ("c", "")]),
        [False, True, False],
    ),
    (
        "regions intersect with providers",
        {"team": {"allowed_regions": fs({"eu"})}, "key": {"allowed_providers": fs({"b"})}},
        {},
        ("routes", [("b", "eu"), ("b", "us"), ("a", "eu"), ("b", "")]),
        [True, False, False, False],
    ),
    (
        "a region allows its sub-regions, a sub-region not its parent",
        {"team": {"allowed_regions": fs({"eu", "us-east"})}},
        {},
        ("routes", [("a", "eu-west"), ("a", "us-east"), ("a", "us"), ("a", "us-west")]),
        [True, True, False, False],
    ),
    (
        "nested regions at two levels leave the narrower one",
        {"org": {"allowed_regions": fs({"eu"})}, "team": {"allowed_regions": fs({"eu-west"})}},
        {},
        ("routes", [("a", "eu-west"), ("a", "eu-central"), ("a", "eu"), ("a", "uk")]),
        [True, False, False, False],
    ),
    (
        "max_tokens takes the minimum",
        {"org": {"max_tokens": 4096}, "team": {"max_tokens": 1024}, "key": {"max_tokens": 2048}},
        {},
        ("clamp", 5000),
        1024,
    ),
    (
        "features intersect",
        {
            "org": {"allowed_features": fs({"tools", "streaming"})},
            "team": {"allowed_features": fs({"streaming", "images"})},
        },
        {},
        ("features", [fs({"streaming"}), fs({"tools"}), fs({"images"})]),
        [True, False, False],
    ),
    (
        "privacy takes the most private set value",
        {
            "org": {"privacy_mode": "full"},
            "team": {"privacy_mode": "redacted"},
            "key": {"privacy_mode": "hashed"},
        },
        {},
        ("privacy", None),
        "hashed",
    ),
    (
        "privacy defaults to metadata",
        {"org": {"privacy_mode": ""}},
        {},
        ("privacy", None),
        "metadata",
    ),
    (
        "budgets are not merged: one scope per level",
        {
            "org": {"budget_micros": 100_000_000},
            "team": {"budget_micros": 50_000_000, "budget_hard": False},
            "key": {"budget_micros": 5_000_000, "budget_clamp": True},
        },
        {},
        ("budgets", None),
        [
            ("organization", ORG, 100_000_000, True, False),
            ("team", TEAM, 50_000_000, False, False),
            ("key", KEY, 5_000_000, True, True),
        ],
    ),
    (
        "rate limits are not merged: one scope per level, key first",
        {
            "org": {"rpm": 1000},
            "team": {"rpm": 600, "tpm": 200_000},
            "key": {"tpm": 10_000},
            "project": {"rpm": 10},
        },
        {},
        ("scopes", None),
        [
            (f"gw:rl:key:{KEY}", None, 10_000),
            (f"gw:rl:project:{PROJECT}", 10, None),
            (f"gw:rl:team:{TEAM}", 600, 200_000),
            (f"gw:rl:org:{ORG}", 1000, None),
        ],
    ),
    (
        "a key without a project has no project level",
        {"project": {"allowed_models": fs({"none-of-these"}), "rpm": 1}},
        {"project_id": None},
        ("models", ["small"]),
        [True],
    ),
]


@pytest.mark.parametrize(
    ("levels", "overrides", "check", "expected"),
    [c[1:] for c in MERGE_CASES],
    ids=[c[0] for c in MERGE_CASES],
)
def test_merge(levels, overrides, check, expected):
    policy = table(**levels).effective(principal(**overrides))
    what, arg = check
    if what == "may_use":
        assert policy.may_use(arg) is expected
    elif what == "models":
        assert [policy.may_use(m) for m in arg] == expected
    elif what == "routes":
        assert [policy.allows_route(p, r) for p, r in arg] == expected
    elif what == "clamp":
        assert policy.check_request(request(output_tokens=arg)) == expected
    elif what == "features":
        found = []
        for features in arg:
            try:
                policy.check_request(request(features=features))
                found.append(True)
            except PolicyDenied:
                found.append(False)
        assert found == expected
    elif what == "privacy":
        assert policy.privacy_mode == expected
    elif what == "budgets":
        assert [
            (b.level, b.scope_id, b.limit_micros, b.hard, b.clamp) for b in policy.budgets
        ] == expected
    elif what == "scopes":
        assert [(s.key, s.rpm, s.tpm) for s in policy.limit_scopes("small", None)] == expected


# --- denials ------------------------------------------------------------------------------------


def test_model_denial_names_the_level_whose_list_refuses():
    policy = table(team={"allowed_models": fs({"small", "large"})}).effective(principal())

    denial = policy.model_denial("huge")

    assert not policy.may_use("huge")
    assert denial.message == "team 'search' allows models: large, small"
    assert (denial.code, denial.param, denial.status) == ("model_not_allowed", "model", 403)


def test_model_denial_names_the_key_when_the_key_narrowed_it_away():
    p = principal(team_models=fs({"small", "large"}), allowed_models=fs({"small"}))
    policy = table().effective(p)

    assert policy.model_denial("large").message == "key 'ci-bot' allows models: small"
    assert policy.model_denial("huge").message == "team 'search' allows models: large, small"


def test_model_denial_names_the_organization_first():
    levels = {"org": {"allowed_models": fs({"small"})}, "team": {"allowed_models": fs({"large"})}}
    policy = table(**levels).effective(principal())

    assert policy.model_denial("large").message == "organization 'acme' allows models: small"


def test_max_tokens_reject_names_the_level_the_cap_and_the_ask():
    policy = table(key={"max_tokens": 512, "max_tokens_reject": True}).effective(principal())

    denial = denial_of(policy, request(output_tokens=4096))

    assert denial.message == "key 'ci-bot' caps max_tokens at 512; the request asks for 4096"
    assert (denial.code, denial.param, denial.status) == ("max_tokens_exceeded", "max_tokens", 403)


def test_max_tokens_denial_names_the_parameter_the_client_used():
    policy = table(team={"max_tokens": 100, "max_tokens_reject": True}).effective(principal())

    denial = denial_of(policy, request(output_tokens=101, output_param="max_completion_tokens"))

    assert denial.param == "max_completion_tokens"
    assert "caps max_completion_tokens at 100" in denial.message


@pytest.mark.parametrize(
    ("reject", "asked", "expected"),
    [
        (False, 4096, 512),  # clamp: lowered to the cap
        (False, 100, None),  # under the cap: the body is left alone
        (False, 512, None),  # at the cap
        (False, 0, 512),  # none given: the cap is set
        (True, 100, None),
        (True, 0, 512),  # reject mode also fills in a missing value
    ],
)
def test_clamp_versus_reject(reject, asked, expected):
    policy = table(team={"max_tokens": 512, "max_tokens_reject": reject}).effective(principal())

    assert policy.check_request(request(output_tokens=asked)) == expected


def test_the_mode_is_that_of_the_level_whose_cap_binds():
    # The organization rejects over 4096, the team clamps at 1024: 2000 is clamped, not refused.
    levels = {
        "org": {"max_tokens": 4096, "max_tokens_reject": True},
        "team": {"max_tokens": 1024},
    }
    policy = table(**levels).effective(principal())
    assert policy.check_request(request(output_tokens=2000)) == 1024

    # The other way round: the binding cap rejects.
    levels = {"org": {"max_tokens": 4096}, "team": {"max_tokens": 1024, "max_tokens_reject": True}}
    policy = table(**levels).effective(principal())
    assert denial_of(policy, request(output_tokens=2000)).message.startswith("team 'search' caps")


def test_on_a_tie_the_rejecting_level_binds():
    levels = {"org": {"max_tokens": 1024}, "key": {"max_tokens": 1024, "max_tokens_reject": True}}
    policy = table(**levels).effective(principal())

    assert denial_of(policy, request(output_tokens=2000)).message.startswith("key 'ci-bot' caps")


@pytest.mark.parametrize(
    ("feature", "param"),
    [
        ("tools", "tools"),
        ("images", "messages"),
        ("json_mode", "response_format"),
        ("streaming", "stream"),
    ],
)
def test_feature_denial_names_the_level_and_the_feature(feature, param):
    # The team allows something else; the organization allows everything.
    policy = table(team={"allowed_features": fs({"x"})}).effective(principal())

    denial = denial_of(policy, request(features=fs({feature})))

    assert denial.message == f"team 'search' does not allow {feature}"
    assert (denial.code, denial.param, denial.status) == ("feature_not_allowed", param, 403)


def test_a_request_without_features_passes_any_feature_list():
    policy = table(org={"allowed_features": fs({"streaming"})}).effective(principal())

    assert policy.check_request(request(features=fs())) is None
    assert policy.check_request(request(features=fs({"streaming"}))) is None


# --- blocked terms ------------------------------------------------------------------------------

TERMS = ("project falcon", "c++", "secret")


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("tell me about Project   Falcon please", 0),  # case and spacing do not matter
        ("is C++ fast?", 1),  # terms of punctuation match as whole words too
        ("the SECRET is out", 2),
        ("secret", 2),  # the whole text
        ("unsecret, then secret.", 2),  # a later occurrence that is a whole word
    ],
)
def test_blocked_term_denial_names_the_rule_never_the_text(text, rule):
    policy = table(team={"blocked_terms": TERMS}).effective(principal())

    denial = denial_of(policy, request(texts=lambda: ["harmless", text]))

    assert denial.message == f"prompt matches team 'search' rule blocked_terms[{rule}]"
    assert denial.code == "blocked_term"
    assert TERMS[rule].split()[0].lower() not in denial.message.lower()
    assert text not in denial.message


@pytest.mark.parametrize(
    "text", ["secretary", "top-secretive", "unsecret", "falcon project", "c+", "abc++", "x_secret"]
)
def test_blocked_terms_match_whole_words_only(text):
    policy = table(team={"blocked_terms": TERMS}).effective(principal())

    assert policy.check_request(request(texts=lambda: [text])) is None


def test_blocked_terms_of_every_level_apply_and_name_their_level():
    levels = {"org": {"blocked_terms": ("alpha",)}, "key": {"blocked_terms": ("", "beta")}}
    policy = table(**levels).effective(principal())

    assert denial_of(policy, request(texts=lambda: ["alpha"])).message.endswith(
        "organization 'acme' rule blocked_terms[0]"
    )
    assert denial_of(policy, request(texts=lambda: ["Beta!"])).message.endswith(
        "key 'ci-bot' rule blocked_terms[1]"
    )


def test_the_prompt_is_not_read_when_no_term_is_blocked():
    def texts():
        raise AssertionError("read")

    policy = table(team={"max_tokens": 10}).effective(principal())

    assert policy.check_request(request(texts=texts, output_tokens=5)) is None


def test_blocked_term_patterns_are_compiled_once_per_table():
    t = table(team={"blocked_terms": TERMS})

    first = t.effective(principal())
    assert t.effective(principal()) is first  # memoized: the pattern with it
    other_key = t.effective(principal(key_id=KEY + 1))
    assert [term.pattern for term in other_key._blocked] == [
        term.pattern for term in first._blocked
    ]
    assert other_key._blocked[0].pattern is first._blocked[0].pattern


# --- routes -------------------------------------------------------------------------------------


def test_route_denial_names_the_provider_rule():
    policy = table(team={"allowed_providers": fs({"openai-eu"})}).effective(principal())

    denial = policy.route_denial("small")

    assert denial.message == (
        "team 'search' allows providers: openai-eu; no deployment of 'small' is there"
    )
    assert (denial.code, denial.param, denial.status) == ("route_not_allowed", "model", 403)


def test_route_denial_names_every_rule_that_filters():
    levels = {"org": {"allowed_regions": fs({"eu"})}, "key": {"allowed_providers": fs({"b", "a"})}}
    policy = table(**levels).effective(principal())

    assert policy.route_denial("small").message == (
        "organization 'acme' allows regions: eu; key 'ci-bot' allows providers: a, b; "
        "no deployment of 'small' is within all of these"
    )


# --- scopes -------------------------------------------------------------------------------------


def test_scopes_and_labels_of_every_kind():
    levels = {
        "org": {"rpm": 1000, "user_rpm": 5, "user_tpm": 900},
        "team": {"tpm": 200_000, "user_rpm": 10},
        "project": {"rpm": 50},
        "key": {"rpm": 20},
    }
    t = table(
        **levels,
        org_model_limits={ORG: {"small": (300, None)}},
        team_model_limits={TEAM: {"small": (100, 50_000)}, 99: {"small": (1, 1)}},
    )
    policy = t.effective(principal())

    scopes = policy.limit_scopes("small", "alice@example.com")

    user = hashlib.sha256(b"alice@example.com").hexdigest()[:16]
    assert scopes == (
        LimitScope(f"gw:rl:key:{KEY}", "key 'ci-bot'", 20, None),
        LimitScope(f"gw:rl:project:{PROJECT}", "project 'web'", 50, None),
        LimitScope(f"gw:rl:team:{TEAM}", "team 'search'", None, 200_000),
        LimitScope(f"gw:rl:org:{ORG}", "organization 'acme'", 1000, None),
        LimitScope(f"gw:rl:team:{TEAM}:model:small", "model 'small' in team 'search'", 100, 50_000),
        LimitScope(
            f"gw:rl:org:{ORG}:model:small", "model 'small' in organization 'acme'", 300, None
        ),
        # The team's user_rpm, the organization's user_tpm (the team sets none).
        LimitScope(f"gw:rl:team:{TEAM}:user:{user}", "end users of team 'search'", 10, 900),
    )
    assert all("alice" not in s.key and "alice" not in s.label for s in scopes)


def test_model_scopes_only_for_their_model_and_user_scope_only_with_a_user():
    t = table(team={"rpm": 5, "user_rpm": 2}, team_model_limits={TEAM: {"small": (100, None)}})
    policy = t.effective(principal())

    assert [s.key for s in policy.limit_scopes("large", None)] == [f"gw:rl:team:{TEAM}"]
    assert len(policy.limit_scopes("small", None)) == 2
    assert len(policy.limit_scopes("small", "")) == 2
    assert len(policy.limit_scopes("small", "bob")) == 3


def test_no_limits_no_scopes_and_no_budgets():
    policy = table(team={"allowed_models": fs({"small"})}).effective(principal())

    assert policy.limit_scopes("small", "bob") == ()
    assert policy.budgets == ()


def test_budget_scope_labels_and_keys():
    policy = table(key={"budget_micros": 5_000_000}).effective(principal())

    assert policy.budgets == (
        BudgetScope("key", KEY, "key 'ci-bot'", 5_000_000, hard=True, clamp=False),
    )
    assert policy.budgets[0].key == f"gw:bud:key:{KEY}"


def test_timezone_is_the_organizations():
    assert table().effective(principal()).timezone == "Europe/Paris"


def test_a_key_without_a_name_is_named_by_its_prefix():
    policy = table(key={"rpm": 1}).effective(principal(key_name=""))

    assert policy.limit_scopes("small", None)[0].label == "key 'gw-abc'"


def test_a_changed_principal_is_merged_anew_in_the_same_table():
    t = table()
    before = t.effective(principal(team_models=fs({"small"})))
    after = t.effective(principal(team_models=fs({"small", "large"})))

    assert not before.may_use("large")
    assert after.may_use("large")


def test_blocked_terms_match_across_case_folding():
    policy = table(team={"blocked_terms": ("straße",)}).effective(principal())

    assert denial_of(policy, request(texts=lambda: ["die STRASSE"])).code == "blocked_term"
