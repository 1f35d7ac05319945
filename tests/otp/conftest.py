import pytest
import trio.testing


@pytest.fixture
def mock_clock():
    return trio.testing.MockClock(autojump_threshold=0)
