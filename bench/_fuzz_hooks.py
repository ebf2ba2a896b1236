"""Schemathesis CLI hooks for bench/fuzz.py (loaded through SCHEMATHESIS_HOOKS).

They steer half the generated path parameters to the seeded run and the token's project,
read from the environment that bench/fuzz.py sets, as the suite's fuzz test does.
"""

from __future__ import annotations

import schemathesis

from tests.support.fuzzing import steer_from_environment


@schemathesis.hook
def flatmap_path_parameters(context, path_parameters):
    return steer_from_environment(path_parameters)
