"""The attacks reuse the unit tests' fakes and fixtures."""

from tests.unit.conftest import world  # noqa: F401 (a fixture)
from tests.unit.test_campaigns import night  # noqa: F401 (a fixture)
