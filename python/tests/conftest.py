import keel  # noqa: F401  (registers the envs)
import pytest

# The generic env tests run over every registered id; of the 104 Atari games (one code path,
# differing only in the ROM) they take two. envs/tests/atari.rs makes every game.
_ATARI_SAMPLE = {"keel/Pong-v5", "keel/Breakout-v5"}
_ATARI = {env_id for env_id, description in keel._core.env_descriptions() if description.startswith("Atari 2600")}


@pytest.fixture(params=[i for i in keel.env_ids() if i not in _ATARI or i in _ATARI_SAMPLE])
def env_id(request):
    return request.param
