import pytest


@pytest.fixture(params=["python", "node", "ruby"])
def runtime(request):
    return request.param
