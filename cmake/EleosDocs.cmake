# The reference manual: one section-3 man page per public function (groups share a page
# through .so links, as liburing's do) and one overview page per header, generated from the
# comments of include/eleos/*.h by scripts/gen_man.py into <build>/man/man3. The `docs`
# target is part of the default build, so `cmake --install` always finds the pages.
# tests/CMakeLists.txt registers test_docs_man, which fails when a public function has no
# comment or no page.
include(GNUInstallDirs)

set(ELEOS_PYTHON3 /usr/bin/python3 CACHE FILEPATH "Python 3 that runs scripts/gen_man.py")
set(ELEOS_MAN_DIR ${CMAKE_CURRENT_BINARY_DIR}/man/man3)
file(GLOB ELEOS_PUBLIC_HEADERS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/include/eleos/*.h)

add_custom_command(
  OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/man/man3.stamp
  COMMAND ${ELEOS_PYTHON3} ${PROJECT_SOURCE_DIR}/scripts/gen_man.py
          ${PROJECT_SOURCE_DIR}/include ${ELEOS_MAN_DIR}
  COMMAND ${CMAKE_COMMAND} -E touch ${CMAKE_CURRENT_BINARY_DIR}/man/man3.stamp
  DEPENDS ${ELEOS_PUBLIC_HEADERS} ${PROJECT_SOURCE_DIR}/scripts/gen_man.py
  COMMENT "Generating man pages from include/eleos/*.h"
  VERBATIM)
add_custom_target(docs ALL DEPENDS ${CMAKE_CURRENT_BINARY_DIR}/man/man3.stamp)

install(DIRECTORY ${ELEOS_MAN_DIR}/ DESTINATION ${CMAKE_INSTALL_MANDIR}/man3
        FILES_MATCHING PATTERN "*.3")
