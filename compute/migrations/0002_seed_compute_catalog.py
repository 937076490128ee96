"""Seed the compute catalog with Azure sizes and their pay-as-you-go list
prices (Linux VMs, East US, USD per hour) as of January 2025, rounded to the
cent's hundredth. Prices change: the date is recorded with each size, and
admins keep them current in the admin site or through the API."""

from __future__ import annotations

import datetime
from decimal import Decimal

from django.db import migrations

PRICE_DATE = datetime.date(2025, 1, 15)
REGION = "eastus"
# name, vCPUs, memory GB, GPUs, GPU type, USD per hour
SIZES = [
    ("Standard_DS1_v2", 1, "3.5", 0, "", "0.0730"),
    ("Standard_D2s_v3", 2, "8", 0, "", "0.0960"),
    ("Standard_DS11_v2", 2, "14", 0, "", "0.1850"),
    ("Standard_DS3_v2", 4, "14", 0, "", "0.2930"),
    ("Standard_D4s_v3", 4, "16", 0, "", "0.1920"),
    ("Standard_E4s_v3", 4, "32", 0, "", "0.2520"),
    ("Standard_F8s_v2", 8, "16", 0, "", "0.3380"),
    ("Standard_D8s_v3", 8, "32", 0, "", "0.3840"),
    ("Standard_E8s_v3", 8, "64", 0, "", "0.5040"),
    ("Standard_D16s_v3", 16, "64", 0, "", "0.7680"),
    ("Standard_E16s_v3", 16, "128", 0, "", "1.0080"),
    ("Standard_NC4as_T4_v3", 4, "28", 1, "NVIDIA T4", "0.5260"),
    ("Standard_NC8as_T4_v3", 8, "56", 1, "NVIDIA T4", "0.7520"),
    ("Standard_NC6s_v3", 6, "112", 1, "NVIDIA V100", "3.0600"),
    ("Standard_NC24ads_A100_v4", 24, "220", 1, "NVIDIA A100 80GB", "3.6730"),
]


def seed(apps, schema_editor):
    ComputeSize = apps.get_model("compute", "ComputeSize")
    for name, vcpus, memory, gpus, gpu_type, price in SIZES:
        ComputeSize.objects.get_or_create(
            provider="azure",
            name=name,
            defaults={
                "region": REGION,
                "vcpus": vcpus,
                "memory_gb": Decimal(memory),
                "gpus": gpus,
                "gpu_type": gpu_type,
                "hourly_price": Decimal(price),
                "currency": "USD",
                "price_date": PRICE_DATE,
            },
        )


def unseed(apps, schema_editor):
    ComputeSize = apps.get_model("compute", "ComputeSize")
    ComputeSize.objects.filter(
        provider="azure", name__in=[s[0] for s in SIZES], price_date=PRICE_DATE
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("compute", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
