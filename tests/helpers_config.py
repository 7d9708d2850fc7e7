"""Configuration text shared by tests."""

# The smallest useful configuration: one OpenAI-compatible provider (credential from the
# environment), one model, one team.
MINIMAL_CONFIG_API_BASE = "https://eu.api.openai.com/v1"
MINIMAL_CONFIG = """
providers:
  - name: openai-eu
    kind: openai_compatible
    api_base: https://eu.api.openai.com/v1
    api_key: ${EXAMPLE_API_KEY}
    region: eu
models:
  - name: small
    deployments:
      - provider: openai-eu
        model: gpt-4o-mini
        input_cost_per_mtok: 0.15
        output_cost_per_mtok: 0.60
        context_window: 128000
teams:
  - slug: search
    allowed_models: [small]
"""
