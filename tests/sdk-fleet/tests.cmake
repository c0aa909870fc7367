# SPDX-License-Identifier: Apache-2.0
# fleetcheck's own tests, appended by tests/system/test_sdk_fleet.py to the
# installed template's CMakeLists.txt in place of hello's: the installed
# muster-runner (MUSTER_RUNNER, from find_package) runs the module with the
# fake timedatectl in tests/tools first.
enable_testing()
set(FLEETCHECK_TOOLS MUSTER_TOOLS_DIR=${CMAKE_CURRENT_SOURCE_DIR}/tests/tools)
add_test(NAME fleetcheck.synced COMMAND ${MUSTER_RUNNER} --run $<TARGET_FILE:fleetcheck>)
set_tests_properties(fleetcheck.synced PROPERTIES ENVIRONMENT "${FLEETCHECK_TOOLS}"
  PASS_REGULAR_EXPRESSION "PASS: clock synchronized")
add_test(NAME fleetcheck.bad-argument COMMAND ${MUSTER_RUNNER} --run $<TARGET_FILE:fleetcheck> hang=maybe)
set_tests_properties(fleetcheck.bad-argument PROPERTIES ENVIRONMENT "${FLEETCHECK_TOOLS}"
  PASS_REGULAR_EXPRESSION "ERROR: .*hang")
