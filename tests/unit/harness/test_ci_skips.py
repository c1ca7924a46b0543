"""The CI skip hook (tests/fixtures/ci_skips.py), run on small generated suites with pytester.

Each test runs pytest in-process on a few lines of test code, once as a developer would (no
``CI``) and once as CI does, and checks the outcome counts.
"""

from __future__ import annotations

import pytest

SUITE = {
    "test_mixed": """
        import pytest

        def test_passes():
            pass

        @pytest.mark.skipif(True, reason="libfaketime is not installed")
        def test_skipif_at_setup():
            pass

        def test_skips_while_running():
            pytest.importorskip("a_module_that_is_not_installed")

        @pytest.mark.platform("needs an Edge TPU on the USB bus")
        def test_declared_platform_skip():
            pytest.skip("no Edge TPU here")

        @pytest.mark.xfail(reason="known bug", strict=True)
        def test_expected_failure():
            assert False
    """,
    "test_module_skip": """
        import pytest

        pytest.importorskip("tritonclient_that_is_not_installed")

        def test_never_collected():
            pass
    """,
}


def run(pytester: pytest.Pytester, ci: str | None) -> pytest.RunResult:
    pytester.makepyfile(**SUITE)
    with pytest.MonkeyPatch.context() as patch:
        if ci is None:
            patch.delenv("CI", raising=False)
        else:
            patch.setenv("CI", ci)
        return pytester.runpytest_inprocess("-p", "tests.fixtures.ci_skips", "-rA")


def test_outside_ci_skips_stay_skips(pytester: pytest.Pytester) -> None:
    result = run(pytester, None)
    result.assert_outcomes(passed=1, skipped=4, xfailed=1)


@pytest.mark.parametrize("ci", ["0", "false", ""])
def test_a_ci_variable_that_says_no_is_not_ci(pytester: pytest.Pytester, ci: str) -> None:
    result = run(pytester, ci)
    result.assert_outcomes(passed=1, skipped=4, xfailed=1)


def test_in_ci_every_undeclared_skip_fails(pytester: pytest.Pytester) -> None:
    result = run(pytester, "true")
    # skipif at setup is reported as an error of the setup phase; the rest fail outright
    result.assert_outcomes(passed=1, failed=2, errors=1, skipped=1, xfailed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*skipped: libfaketime is not installed*",
            "*skipped: could not import 'a_module_that_is_not_installed'*",
            "*the module skipped itself: could not import 'tritonclient_that_is_not_installed'*",
        ]
    )
    result.stdout.fnmatch_lines(["*a skip in CI is a failure*"])
    result.stdout.fnmatch_lines(["SKIPPED*no Edge TPU here"])


def test_a_module_skipped_at_import_fails_as_one_item_and_the_rest_still_runs(
    pytester: pytest.Pytester,
) -> None:
    result = run(pytester, "true")
    result.stdout.fnmatch_lines(["FAILED test_module_skip.py::[[]module skipped[]]*"])
    assert "Interrupted" not in result.stdout.str()


def test_a_platform_marker_without_a_reason_does_not_declare_anything(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.platform("")
        def test_blank_reason():
            pytest.skip("no reason given")
        """
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CI", "1")
        result = pytester.runpytest_inprocess("-p", "tests.fixtures.ci_skips")
    result.assert_outcomes(failed=1)
