# SPDX-License-Identifier: Apache-2.0
# muster_add_module(NAME SOURCES...) builds NAME.so: a module for
# muster-runner, with hidden visibility so that only the descriptor made
# by MUSTER_MODULE() is exported.  Output: ${MUSTER_MODULE_DIR} if set by
# the caller's folder, else the folder's binary dir.
#
# In this tree it is include()d from the top CMakeLists.txt; installed
# (muster-dev) it comes with find_package(muster), which sets
# MUSTER_MODULE_INCLUDE_DIR to the installed SDK header's folder.
if(NOT DEFINED MUSTER_MODULE_INCLUDE_DIR)
  set(MUSTER_MODULE_INCLUDE_DIR ${CMAKE_CURRENT_LIST_DIR}/include)
endif()

function(muster_add_module name)
  add_library(${name} MODULE ${ARGN})
  set_target_properties(${name} PROPERTIES
    PREFIX ""
    OUTPUT_NAME ${name}
    C_VISIBILITY_PRESET hidden)
  if(MUSTER_MODULE_DIR)
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${MUSTER_MODULE_DIR})
  endif()
  target_include_directories(${name} PRIVATE ${MUSTER_MODULE_INCLUDE_DIR})
  if(NOT MUSTER_SANITIZE AND NOT MUSTER_FUZZ)
    # A module may use libc only; anything else unresolved is a build error,
    # not a load failure on a host.
    target_link_options(${name} PRIVATE -Wl,--no-undefined)
  endif()
endfunction()
