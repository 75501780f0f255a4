from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("shop", "0001_initial")]

    operations = [
        TrigramExtension(),
        migrations.AddField(
            model_name="order", name="note", field=models.TextField(blank=True, default="")
        ),
        migrations.RunSQL(
            "COMMENT ON TABLE shop_order IS 'one row per order'",
            reverse_sql="COMMENT ON TABLE shop_order IS NULL",
        ),
    ]
