# SPDX-License-Identifier: Apache-2.0
# find_package(muster): the module SDK as muster-dev installs it
# (PREFIX/share/cmake/muster).  Gives muster_add_module(NAME SOURCES...),
# MUSTER_MODULE_INCLUDE_DIR, and MUSTER_RUNNER (muster-runner, for tests).
# Relocatable: paths are found from this file, so an SDK installed under
# another prefix (cmake --install --prefix, dpkg -x) works once CMake is
# told where: CMAKE_PREFIX_PATH=PREFIX (docs/modules.md).
get_filename_component(_muster_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
set(MUSTER_MODULE_INCLUDE_DIR "${_muster_prefix}/include")
if(NOT EXISTS "${MUSTER_MODULE_INCLUDE_DIR}/muster/module.h")
  set(muster_FOUND FALSE)
  set(muster_NOT_FOUND_MESSAGE "no muster/module.h in ${MUSTER_MODULE_INCLUDE_DIR}")
  return()
endif()
# The runner of the same installation first (muster-dev's bin/muster-runner,
# or muster-agent's libexec/muster/muster-runner), then PATH.
find_program(MUSTER_RUNNER muster-runner
  HINTS "${_muster_prefix}/bin" "${_muster_prefix}/libexec/muster" NO_DEFAULT_PATH)
find_program(MUSTER_RUNNER muster-runner)
include("${CMAKE_CURRENT_LIST_DIR}/MusterModule.cmake")
unset(_muster_prefix)
