"""The shop's models, as its migrations leave them."""

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models


class Customer(models.Model):
    name = models.CharField(max_length=100)
    email = models.EmailField(unique=True)


class Order(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="orders")
    placed = models.DateTimeField()
    total = models.DecimalField(max_digits=10, decimal_places=2)
    tags = ArrayField(models.CharField(max_length=20), default=list)
    note = models.TextField(blank=True, default="")

    class Meta:
        indexes = [
            models.Index(fields=["placed"], name="order_placed_idx"),
            GinIndex(fields=["tags"], name="order_tags_gin"),
        ]
