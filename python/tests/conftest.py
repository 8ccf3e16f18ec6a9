import keel  # noqa: F401  (registers the envs)
import pytest


@pytest.fixture(params=keel.env_ids())
def env_id(request):
    return request.param
