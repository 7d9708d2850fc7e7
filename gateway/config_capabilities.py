"""A deployment's `capabilities` in a configuration file, read and checked.

    capabilities: {context_window: 128000, max_output_tokens: 16384,
                   tools: true, vision: false, json_mode: true, streaming: true}

Kept apart from the loader's walk through the file, like config_timeouts.py: it returns the
model values and what is wrong (field, message), and the loader reports the problems its own
way. Every name may be left out: features default to true, limits to unknown
(routing/capabilities.py says why).

`context_window` was a field of the deployment itself before capabilities existed, and is still
read there. Given in both places with different values, which one is meant is a guess: an error.
"""

import difflib

from routing.capabilities import FEATURE_FIELDS, LIMITS, NAMES

SECTION = "capabilities"
_KNOWN = f"known: {', '.join(NAMES)}"


def _tokens(value) -> tuple[int | None, str | None]:
    """A token count: a whole number >= 1 (a string of digits too: `${VAR}` gives text)."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, float):
        return None, f"must be a whole number of tokens, not {value!r}"
    if not isinstance(value, int) or isinstance(value, bool):
        return None, f"not a number: {value!r}"
    if value < 1:
        return None, "must be at least 1"
    return value, None


def _unknown(name: str) -> str:
    close = difflib.get_close_matches(name, NAMES, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}? " if close else ""
    return f"unknown capability ({hint}{_KNOWN})"


def read_capabilities(item: dict) -> tuple[dict[str, object], list[tuple[str, str]]]:
    """The Deployment field values for `item`'s capabilities (absent: the defaults), and its
    problems as (field path under the deployment, message)."""
    values: dict[str, object] = dict.fromkeys(LIMITS)
    values.update(dict.fromkeys(FEATURE_FIELDS.values(), True))
    problems: list[tuple[str, str]] = []
    block = item.get(SECTION)
    if block is None:
        block = {}
    elif not isinstance(block, dict):
        problems.append((SECTION, f"must be a mapping of capability names to values ({_KNOWN})"))
        block = {}
    for name in sorted(str(k) for k in block if k not in NAMES):
        problems.append((f"{SECTION}.{name}", _unknown(name)))
    for name, field in FEATURE_FIELDS.items():
        if name in block:
            if isinstance(block[name], bool):
                values[field] = block[name]
            else:
                # bool("false") is True: a quoted "false" must not silently mean supported.
                message = f"must be true or false, not {block[name]!r}"
                problems.append((f"{SECTION}.{name}", message))
    for name in LIMITS:
        if block.get(name) is not None:
            values[name], problem = _tokens(block[name])
            if problem:
                problems.append((f"{SECTION}.{name}", problem))
    if item.get("context_window") is not None:
        legacy, problem = _tokens(item["context_window"])
        if problem:
            problems.append(("context_window", problem))
        elif block.get("context_window") is None:
            values["context_window"] = legacy
        elif values["context_window"] is not None and values["context_window"] != legacy:
            problems.append(
                (
                    f"{SECTION}.context_window",
                    f"{values['context_window']} differs from the deployment's context_window "
                    f"({legacy}); give it in one place",
                )
            )
    window, most = values["context_window"], values["max_output_tokens"]
    if window is not None and most is not None and most > window:
        problems.append(
            (
                f"{SECTION}.max_output_tokens",
                f"{most} is more than the context window ({window}), which holds the prompt and "
                "the answer",
            )
        )
    return values, problems
