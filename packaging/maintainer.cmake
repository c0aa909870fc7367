# SPDX-License-Identifier: Apache-2.0
# The packages' Maintainer field, "Name <email>", found when the packages
# are built - never a placeholder person.  In order:
#   1. -DMUSTER_MAINTAINER="Name <email>" given to cmake (scripts/package
#      passes what it found with the rules below);
#   2. DEBFULLNAME and DEBEMAIL, Debian's convention (dch reads them; as
#      there, DEBEMAIL may be "Name <email>" by itself);
#   3. git config user.name and user.email of the source tree.
# A name or an address missing from all of them is an error that says so.
#
# Two uses:
#   - cpack reads this file as CPACK_PROJECT_CONFIG_FILE (packaging/
#     CMakeLists.txt): it sets CPACK_PACKAGE_CONTACT and
#     CPACK_DEBIAN_PACKAGE_MAINTAINER, or stops cpack with the reason;
#   - cmake -DMUSTER_SOURCE_DIR=DIR -P packaging/maintainer.cmake prints
#     the field (scripts/package, before its build), or fails.

# muster_maintainer(<out> <source dir> <error out>)
function(muster_maintainer out srcdir why)
  set(name "$ENV{DEBFULLNAME}")
  set(email "$ENV{DEBEMAIL}")
  if(email MATCHES "^(.*[^ ]) *<([^<>]*)>$")
    if(name STREQUAL "")
      set(name "${CMAKE_MATCH_1}")
    endif()
    set(email "${CMAKE_MATCH_2}")
  endif()
  find_program(MUSTER_GIT git)
  if(MUSTER_GIT AND IS_DIRECTORY "${srcdir}")
    if(name STREQUAL "")
      execute_process(COMMAND ${MUSTER_GIT} -C "${srcdir}" config user.name
        OUTPUT_VARIABLE name OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
    endif()
    if(email STREQUAL "")
      execute_process(COMMAND ${MUSTER_GIT} -C "${srcdir}" config user.email
        OUTPUT_VARIABLE email OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
    endif()
  endif()
  set(${out} "" PARENT_SCOPE)
  set(${why} "" PARENT_SCOPE)
  if(name STREQUAL "" OR email STREQUAL "")
    set(${why} "no maintainer for the packages' Maintainer field: set DEBFULLNAME and DEBEMAIL (as for dch), or git config user.name and user.email, or pass -DMUSTER_MAINTAINER='Name <email>' to cmake" PARENT_SCOPE)
    return()
  endif()
  muster_maintainer_check("${name} <${email}>" bad)
  if(bad)
    set(${why} "${bad}" PARENT_SCOPE)
    return()
  endif()
  set(${out} "${name} <${email}>" PARENT_SCOPE)
endfunction()

# Debian policy 5.6.2: "Name <address>", one line, an address with an @.
function(muster_maintainer_check value bad)
  if(value MATCHES "^[^<>\n]*[^ <>\n] <[^ <>@\n]+@[^ <>@\n]+>$")
    set(${bad} "" PARENT_SCOPE)
  else()
    set(${bad} "bad maintainer '${value}' (want 'Name <user@example.org>')" PARENT_SCOPE)
  endif()
endfunction()

if(DEFINED CPACK_GENERATOR)
  if(NOT CPACK_MUSTER_MAINTAINER STREQUAL "")
    set(_m "${CPACK_MUSTER_MAINTAINER}")
    muster_maintainer_check("${_m}" _why)
  else()
    muster_maintainer(_m "${CPACK_MUSTER_SOURCE_DIR}" _why)
  endif()
  if(_why)
    message(FATAL_ERROR "muster: ${_why}")
  endif()
  set(CPACK_PACKAGE_CONTACT "${_m}")
  set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${_m}")
elseif(CMAKE_SCRIPT_MODE_FILE)
  if(NOT MUSTER_SOURCE_DIR)
    get_filename_component(MUSTER_SOURCE_DIR "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
  endif()
  muster_maintainer(_m "${MUSTER_SOURCE_DIR}" _why)
  if(_why)
    message(FATAL_ERROR "${_why}")
  endif()
  # To stdout (message() writes to stderr).
  execute_process(COMMAND ${CMAKE_COMMAND} -E echo "${_m}")
endif()
