import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _clear_cache():
    """The laboratory API's rate limits count in the cache: each test starts from zero."""
    cache.clear()
