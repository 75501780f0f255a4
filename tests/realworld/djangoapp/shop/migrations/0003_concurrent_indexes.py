from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction block
    dependencies = [("shop", "0002_trigram_note")]

    operations = [
        AddIndexConcurrently(
            model_name="order", index=models.Index(fields=["placed"], name="order_placed_idx")
        ),
        AddIndexConcurrently(
            model_name="order", index=GinIndex(fields=["tags"], name="order_tags_gin")
        ),
    ]
