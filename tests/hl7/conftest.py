"""Shared HL7 fixtures: a registered elder, a lab sender, a peer list, (builders in messages.py)."""

import pytest
from django.core.cache import cache

from guardians import services as guardian_services
from lookups.audit import Actor
from lookups.fhir import tokens
from lookups.hl7 import peers as peer_config

from .messages import KNOWN


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()


@pytest.fixture
def elder(staff, clinic):
    return guardian_services.person_register(
        actor=Actor.for_user(staff), clinic=clinic, full_name="Wang Fang", id_number=KNOWN, is_elder=True
    )


@pytest.fixture
def lab(clinic):
    sender, _token = tokens.sender_create(name="City Lab", clinic_ids=[clinic.pk])
    return sender


@pytest.fixture
def peers(lab):
    return peer_config.load([{"facility": "CITYLAB", "sender": lab.name, "addresses": ["10.20.0.0/28", "127.0.0.1"]}])
