#!/bin/sh
# payments-unit: the rules of the decline-code table, written as JUnit XML to
# target/junit/payments-unit.xml. Plain POSIX sh, so a runner needs nothing but a shell.
# Run from the repository root: sh services/payments/tests/decline_codes.sh
set -u
table=services/payments/data/decline-codes.json
report=target/junit/payments-unit.xml
mkdir -p target/junit
cases=""
failures=0

# check NAME WHY-IT-FAILS COMMAND...: one test case, passed when COMMAND succeeds.
check() {
    name=$1
    why=$2
    shift 2
    if "$@"; then
        cases="$cases    <testcase classname=\"payments.decline_codes\" name=\"$name\"/>
"
    else
        failures=$((failures + 1))
        cases="$cases    <testcase classname=\"payments.decline_codes\" name=\"$name\"><failure message=\"$why\"/></testcase>
"
    fi
}

# retries CODE true|false: the table's retry flag of CODE is that.
retries() {
    grep "\"$1\":" "$table" | grep -q "\"retry\": $2"
}

check hard_decline_is_never_retried \
    "code 05 (do not honour) is retried: card schemes fine merchants who retry hard declines" \
    retries 05 false
check issuer_unavailable_is_retried "code 91 (issuer unavailable) is not retried" retries 91 true
check every_code_has_a_meaning "a decline code has no meaning" \
    test "$(grep -c '"meaning": "[^"]' "$table")" -eq "$(grep -c '"retry":' "$table")"

{
    echo '<?xml version="1.0" encoding="UTF-8"?>'
    echo "<testsuite name=\"payments-unit\" tests=\"3\" failures=\"$failures\">"
    printf '%s' "$cases"
    echo '</testsuite>'
} >"$report"
[ "$failures" -eq 0 ]
