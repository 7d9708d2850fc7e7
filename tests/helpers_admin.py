"""Posting admin forms: the management data of inlines a test does not fill in."""

# The inlines each admin page carries, by their form prefix.
KEY_INLINES = ("policy",)
TEAM_INLINES = ("memberships", "policy", "model_limits", "compliance_requirements")
ORGANIZATION_INLINES = ("policy", "model_limits", "compliance_requirements")


def empty_inlines(*prefixes: str) -> dict[str, str]:
    """Management-form fields saying the inlines `prefixes` post no forms (and have none)."""
    data = {}
    for prefix in prefixes:
        data[f"{prefix}-TOTAL_FORMS"] = "0"
        data[f"{prefix}-INITIAL_FORMS"] = "0"
        data[f"{prefix}-MIN_NUM_FORMS"] = "0"
        data[f"{prefix}-MAX_NUM_FORMS"] = "1000"
    return data
