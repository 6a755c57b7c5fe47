#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# Validates fireflies against a JSON schema with python3-jsonschema (a real validator, Debian 12).
#   validate_fireflies.py SCHEMA < datagrams      (one firefly per line; syslog header optional)
# Exit 0 when every one is valid, 1 otherwise (errors on stdout), 2 on usage/setup errors.
import json
import sys

import jsonschema

HEADER_END = " firefly-json - "

def main():
    if len(sys.argv) != 2:
        print("usage: validate_fireflies.py SCHEMA < fireflies", file=sys.stderr)
        return 2
    with open(sys.argv[1]) as f:
        schema = json.load(f)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    bad = count = 0
    for n, line in enumerate(sys.stdin, 1):
        line = line.rstrip("\n")
        if not line:
            continue
        count += 1
        body = line.split(HEADER_END, 1)[1] if line.startswith("<") else line
        try:
            doc = json.loads(body)
        except ValueError as e:
            print(f"firefly {n}: not JSON: {e}")
            bad += 1
            continue
        for err in validator.iter_errors(doc):
            print(f"firefly {n}: {'/'.join(map(str, err.absolute_path))}: {err.message}")
            bad += 1
    print(f"{count} fireflies, {bad} errors")
    return 1 if bad or count == 0 else 0

if __name__ == "__main__":
    sys.exit(main())
