from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("matrixapp", "0001_initial")]

    operations = [
        migrations.AddField("note", "pinned", models.BooleanField(default=False)),
        migrations.AddIndex("item", models.Index(fields=["qty"], name="item_qty_idx")),
    ]
