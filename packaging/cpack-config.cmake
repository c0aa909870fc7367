# SPDX-License-Identifier: Apache-2.0
# CPACK_PROJECT_CONFIG_FILE: read by cpack before it builds the packages.
#   - the Maintainer field (maintainer.cmake);
#   - libmuster-client0's Depends, from dpkg-shlibdeps run here on the
#     library.  CPack's own dpkg-shlibdeps pass is off for that package
#     (packaging/CMakeLists.txt) because with it CPack also writes a
#     postinst and postrm that call ldconfig (lintian:
#     maintscript-calls-ldconfig), where a Debian library package has the
#     ldconfig trigger instead (packaging/deb/libclient/triggers).
include(${CMAKE_CURRENT_LIST_DIR}/maintainer.cmake)

if(DEFINED CPACK_GENERATOR AND CPACK_MUSTER_CLIENT_LIB)
  if(NOT EXISTS "${CPACK_MUSTER_CLIENT_LIB}")
    message(FATAL_ERROR "muster: ${CPACK_MUSTER_CLIENT_LIB} is not built")
  endif()
  find_program(_shlibdeps dpkg-shlibdeps)
  if(NOT _shlibdeps)
    message(FATAL_ERROR "muster: dpkg-shlibdeps is not installed (dpkg-dev)")
  endif()
  # dpkg-shlibdeps wants a debian/control beside it, as CPack gives it.
  set(_dir "${CPACK_TOPLEVEL_DIRECTORY}/muster-shlibdeps")
  file(MAKE_DIRECTORY "${_dir}/debian")
  file(WRITE "${_dir}/debian/control" "")
  execute_process(COMMAND ${_shlibdeps} -O "${CPACK_MUSTER_CLIENT_LIB}"
    WORKING_DIRECTORY "${_dir}" RESULT_VARIABLE _rc
    OUTPUT_VARIABLE _out ERROR_VARIABLE _err OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT _rc EQUAL 0 OR NOT _out MATCHES "^shlibs:Depends=(.+)$")
    message(FATAL_ERROR "muster: dpkg-shlibdeps ${CPACK_MUSTER_CLIENT_LIB} failed: ${_err}")
  endif()
  set(CPACK_DEBIAN_LIBCLIENT_PACKAGE_DEPENDS "${CMAKE_MATCH_1}")
  file(REMOVE_RECURSE "${_dir}")
endif()
