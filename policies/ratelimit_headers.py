"""OpenAI's x-ratelimit-* response headers, for the tightest scope of each dimension.

OpenAI clients read these (limit, remaining, and the time until the limit is back to full) to
pace themselves, so the gateway speaks the same format: durations like Go prints them, `20ms`,
`1.5s`, `6m0s`.
"""

# Indexes into the script's six header numbers: (limit, remaining, reset_us) for requests, then
# for tokens; a limit of -1 means no scope of that dimension.
_DIMENSIONS = (("requests", 0), ("tokens", 3))


def duration(us: int) -> str:
    """Microseconds as OpenAI writes a reset time: `0s`, `20ms`, `1.5s`, `6m0s`, `1h0m0s`.
    Rounded up to the millisecond: a client that waits that long finds the allowance back."""
    ms = -(-max(us, 0) // 1000)
    if ms < 1000:
        return f"{ms}ms" if ms else "0s"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    text = f"{seconds}.{millis:03d}".rstrip("0") if millis else str(seconds)
    if hours:
        return f"{hours}h{minutes}m{text}s"
    if minutes:
        return f"{minutes}m{text}s"
    return f"{text}s"


def ratelimit_headers(numbers) -> dict[str, str]:
    """The headers from the script's (limit, remaining, reset_us) for requests and tokens."""
    headers = {}
    for name, at in _DIMENSIONS:
        limit = int(numbers[at])
        if limit < 0:
            continue
        headers[f"x-ratelimit-limit-{name}"] = str(limit)
        headers[f"x-ratelimit-remaining-{name}"] = str(max(int(numbers[at + 1]), 0))
        headers[f"x-ratelimit-reset-{name}"] = duration(int(numbers[at + 2]))
    return headers
