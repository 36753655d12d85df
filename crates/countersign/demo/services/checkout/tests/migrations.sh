#!/bin/sh
# checkout-unit: the checkout schema's migrations are numbered without gaps and each one is
# complete, written as JUnit XML to target/junit/checkout-unit.xml. Plain POSIX sh.
# Run from the repository root: sh services/checkout/tests/migrations.sh
set -u
dir=services/checkout/migrations
report=target/junit/checkout-unit.xml
mkdir -p target/junit
cases=""
failures=0

check() {
    name=$1
    why=$2
    shift 2
    if "$@"; then
        cases="$cases    <testcase classname=\"checkout.migrations\" name=\"$name\"/>
"
    else
        failures=$((failures + 1))
        cases="$cases    <testcase classname=\"checkout.migrations\" name=\"$name\"><failure message=\"$why\"/></testcase>
"
    fi
}

# numbered_without_gaps: 0001_…, 0002_…, … with no number missing or repeated.
numbered_without_gaps() {
    expected=1
    for file in "$dir"/*.sql; do
        number=$(basename "$file" | cut -c1-4)
        [ "$number" = "$(printf '%04d' "$expected")" ] || return 1
        expected=$((expected + 1))
    done
}

# statements_end: every migration's last statement is terminated.
statements_end() {
    for file in "$dir"/*.sql; do
        tail -n 1 "$file" | grep -q ';$' || return 1
    done
}

check numbered_without_gaps "the migrations' numbers have a gap or a repeat" numbered_without_gaps
check statements_end "a migration ends without a semicolon" statements_end

{
    echo '<?xml version="1.0" encoding="UTF-8"?>'
    echo "<testsuite name=\"checkout-unit\" tests=\"2\" failures=\"$failures\">"
    printf '%s' "$cases"
    echo '</testsuite>'
} >"$report"
[ "$failures" -eq 0 ]
