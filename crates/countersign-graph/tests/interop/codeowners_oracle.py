"""The differential oracle of tests/codeowners.rs: PyPI `codeowners` answers, for each path,
which line of a CODEOWNERS text decides its owners.

One JSON request per input line, {"codeowners": TEXT, "paths": [PATH, ...]}; one JSON answer
per output line, the list of 1-based line numbers (null where no line matches).
"""

import json
import sys

from codeowners import CodeOwners

for request in sys.stdin:
    request = json.loads(request)
    owners = CodeOwners(request["codeowners"])
    lines = [owners.matching_line(path)[1] for path in request["paths"]]
    sys.stdout.write(json.dumps(lines) + "\n")
    sys.stdout.flush()
