# SPDX-License-Identifier: Apache-2.0
# `cpack -G DEB` in the build directory makes flowd_<version>_<arch>.deb.
set(CPACK_PACKAGE_NAME flowd)
set(CPACK_PACKAGE_VENDOR "flowd developers")
set(CPACK_PACKAGE_CONTACT "flowd developers <flowd@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Scitags flow and packet marking service (C++)")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_GENERATOR DEB)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
# As Debian builds its own packages: -O2 -g (RelWithDebInfo), stripped into the package.
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${CMAKE_SOURCE_DIR}/cmake/debian/conffiles)
include(CPack)
