#!/usr/bin/env python3
"""Runs REDbot (PyPI `redbot`, mnot's HTTP linter) on one URL with optional request headers,
prints every note (level, category, name) and exits 1 when one is at the "warning" or
"bad" level (subnotes included), else 0.

    redbot_check.py URL [Header: value]...
"""

import sys
from configparser import ConfigParser

import thor
from httplint.note import levels
from redbot.resource import HttpResource


def main() -> int:
    url, headers = sys.argv[1], []
    for arg in sys.argv[2:]:
        name, _, value = arg.partition(":")
        headers.append((name.strip(), value.strip()))
    config = ConfigParser()
    config.read_dict({"redbot": {"enable_local_access": "True"}})
    resource = HttpResource(config["redbot"])
    resource.set_request(url, headers=headers)

    @thor.events.on(resource)
    def check_done() -> None:
        thor.stop()

    resource.check()
    thor.run()
    if resource.fetch_error is not None:
        print(f"REDbot could not fetch {url}: {resource.fetch_error}")
        return 2
    print(f"REDbot {url} {headers} -> {resource.response.status_code}")
    findings = 0
    for note in resource.response.notes:
        for n in [note, *note.subnotes]:
            level = n.level.value if n.level else "info"
            print(f"  [{level}] {n.category.value}: {n.summary} [{type(n).__name__}]")
            findings += n.level in (levels.WARN, levels.BAD)
    print(f"REDbot: {findings} finding(s) at warning or bad level")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
