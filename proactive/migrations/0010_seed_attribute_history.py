"""Customers that existed before attribute history: their current attributes, valid from the
customer's created_at. That is the best knowledge we have (we do not know when a value was
set); it keeps a cut-off before the customer reached us from seeing their attributes."""

from django.db import migrations

SEED_SQL = """
INSERT INTO proactive_customerattributechange (tenant_id, customer_id, valid_from, attributes)
SELECT c.tenant_id, c.id, c.created_at, c.attributes
FROM proactive_customer c
WHERE c.attributes <> '{}'::jsonb
ON CONFLICT DO NOTHING
"""


class Migration(migrations.Migration):
    dependencies = [
        ("proactive", "0009_customer_attribute_change"),
    ]

    # Backwards: nothing to undo here (0009's reversal drops the table with its rows).
    operations = [migrations.RunSQL(SEED_SQL, reverse_sql=migrations.RunSQL.noop)]
