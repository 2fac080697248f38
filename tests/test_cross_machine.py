"""Same spec, same answer across machines: real specs rerun here equal the records stored for this arithmetic.

tests/data/arithmetic_expected.json holds the fingerprints (accuracy, ECE, a hash of every test prediction) that each
arithmetic (pin and processor, ``arithmetic.arithmetic_key``) gave; the test reruns the ones for this machine.
"""

from __future__ import annotations

import pytest

from vpcost_utils.errors import MissingFileError
from vpcost_utils.running.runs import execute
from vpcost_utils.studies import cross_machine

EXPECTED = cross_machine.expected_here()


@pytest.mark.parametrize("spec", cross_machine.SPECS, ids=lambda s: s.run_id)
def test_a_real_spec_gives_the_record_stored_for_this_arithmetic(spec):
    if spec.run_id not in EXPECTED:
        pytest.skip(f"no record of {spec.run_id} stored for this arithmetic ({cross_machine.arithmetic_key()}); "
                    "`python -m vpcost_utils.studies.cross_machine` prints the entry to add")
    try:
        record = execute(spec, progress=False)
    except MissingFileError as exc:
        pytest.skip(f"real files not in the test cache ({exc}); `make fetch` puts them there")
    made, expected = cross_machine.fingerprint(record), EXPECTED[spec.run_id]
    assert {k: made[k] for k in expected} == expected  # an entry from another session may hold fewer fields
