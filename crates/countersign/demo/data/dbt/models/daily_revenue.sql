select
    date_trunc(paid_at, day) as day,
    currency,
    sum(amount_minor) / 100.0 as revenue
from {{ ref('stg_payments') }}
group by 1, 2
