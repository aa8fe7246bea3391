"""Test-only: django-axes refuses ``authenticate()`` calls without a request (e.g. the test
client's ``login()``). Production settings use axes' own backend unchanged."""

from axes.backends import AxesStandaloneBackend


class AxesBackendForTests(AxesStandaloneBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
