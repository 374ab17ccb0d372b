#!/usr/bin/env python3
"""Runs REDbot (PyPI `redbot`, mnot's HTTP linter) on one URL, with optional request headers,
prints its summary -- every note with its level, category and name -- and exits 1 when a note
is at the "warning" or "bad" level (subnotes included) and not named with --allow, else 0.

    redbot_check.py [--allow NOTE_NAME]... URL [Header: value]...
"""

import sys
from configparser import ConfigParser

import thor
from httplint.note import levels
from redbot.resource import HttpResource


def main() -> int:
    args, allowed = sys.argv[1:], set()
    while args and args[0] == "--allow":
        allowed.add(args[1])
        args = args[2:]
    url, headers = args[0], []
    for arg in args[1:]:
        name, _, value = arg.partition(":")
        headers.append((name.strip(), value.strip()))
    parser = ConfigParser()
    parser.read_dict({"redbot": {"enable_local_access": "True"}})
    resource = HttpResource(parser["redbot"])
    resource.set_request(url, headers=headers)

    @thor.events.on(resource)
    def check_done() -> None:
        thor.stop()

    resource.check()
    thor.run()
    if resource.fetch_error is not None:
        print(f"REDbot could not fetch {url}: {resource.fetch_error}")
        return 2
    status = resource.response.status_code
    print(f"REDbot {url} {headers} -> {status}")
    findings = 0
    for note in resource.response.notes:
        for n in [note, *note.subnotes]:
            level = n.level.value if n.level else "info"
            name = type(n).__name__
            flagged = n.level in (levels.WARN, levels.BAD)
            mark = " (allowed)" if flagged and name in allowed else ""
            print(f"  [{level}] {n.category.value}: {n.summary} [{name}]{mark}")
            if flagged and name not in allowed:
                findings += 1
    print(f"REDbot: {findings} finding(s) at warning or bad level")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
