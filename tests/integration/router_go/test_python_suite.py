"""The Python router's own integration suite, run unchanged against the Go binary.

Importing the test functions here makes pytest collect them in this directory, where the ``procs``
fixture (conftest.py) starts ``mdroute`` instead of ``python -m mdserve.router``: any behaviour
difference between the two routers shows up as a failure here.
"""

from __future__ import annotations

import pytest

from tests.integration.router.test_errors import (  # noqa: F401
    test_failures_are_clear,
    test_no_table_yet_is_503_and_not_ready,
    test_request_ids_headers_and_bodies_pass_through,
    test_sigterm_finishes_in_flight_requests_and_exits_cleanly,
)
from tests.integration.router.test_feedback import (  # noqa: F401
    test_feedback_reaches_the_variant_that_predicted,
)
from tests.integration.router.test_http import *  # noqa: F403
from tests.integration.router.test_model_servers import (  # noqa: F401
    iris_model,
    test_ninety_ten_across_two_model_servers,
    test_shadow_to_a_model_server_is_invisible,
)
from tests.integration.router.test_reload import (  # noqa: F401
    test_invalid_table_keeps_last_good_one,
    test_route_change_takes_effect_within_a_second,
    test_weight_changes_under_load_fail_no_request,
)
from tests.integration.router.test_shadow import (  # noqa: F401
    test_shadow_never_changes_what_the_caller_sees,
)
from tests.integration.router.test_split import (  # noqa: F401
    test_rules_and_sticky_keys_always_hold,
    test_ten_thousand_requests_at_ninety_ten,
)

pytestmark = pytest.mark.integration
