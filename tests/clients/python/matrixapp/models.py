"""The Django client script's models: ``Item`` is sharded by id in the sharded layout."""

from django.db import models


class Item(models.Model):
    id = models.IntegerField(primary_key=True)
    name = models.CharField(max_length=40)
    qty = models.IntegerField()
    price = models.DecimalField(max_digits=10, decimal_places=2, null=True)

    class Meta:
        app_label = "matrixapp"


class Note(models.Model):
    body = models.CharField(max_length=100)
    pinned = models.BooleanField(default=False)

    class Meta:
        app_label = "matrixapp"
