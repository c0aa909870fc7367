# SPDX-License-Identifier: Apache-2.0
# find_package(muster): the module SDK as muster-dev installs it
# (/usr/share/cmake/muster).  Gives muster_add_module(NAME SOURCES...) and
# MUSTER_MODULE_INCLUDE_DIR.  Relocatable: paths are found from this file,
# so an SDK unpacked under another root (dpkg -x) works with
# CMAKE_PREFIX_PATH=ROOT/usr.
get_filename_component(_muster_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
set(MUSTER_MODULE_INCLUDE_DIR "${_muster_prefix}/include")
if(NOT EXISTS "${MUSTER_MODULE_INCLUDE_DIR}/muster/module.h")
  set(muster_FOUND FALSE)
  set(muster_NOT_FOUND_MESSAGE "no muster/module.h in ${MUSTER_MODULE_INCLUDE_DIR}")
  return()
endif()
include("${CMAKE_CURRENT_LIST_DIR}/MusterModule.cmake")
unset(_muster_prefix)
