#!/usr/bin/env bash
# One-off: backfill order totals for orders created before 2023-03 (INC-2291).
# Kept for reference; nobody owns this script.
set -euo pipefail
psql "$ORDERS_DB_URL" -c "UPDATE orders SET total_minor = 0 WHERE total_minor IS NULL"
