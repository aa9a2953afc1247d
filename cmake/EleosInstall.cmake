# What `cmake --install BUILD --prefix P` (and `make install PREFIX=P`) puts under P:
#   include/eleos/*.h                         the public headers
#   LIBDIR/libeleos.so.0.1.0, .so.0, .so      the shared library (SONAME libeleos.so.0)
#   LIBDIR/libeleos.a                         the static library
#   LIBDIR/pkgconfig/eleos.pc                 pkg-config (relocatable: ${pcfiledir})
#   LIBDIR/cmake/Eleos/                       find_package(Eleos): Eleos::eleos,
#                                             Eleos::eleos_static
#   share/doc/eleos/                          README.md, LICENSE, CHANGELOG.md
include(CMakePackageConfigHelpers)

install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/eleos
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} FILES_MATCHING PATTERN "*.h")
set_target_properties(eleos_static PROPERTIES EXPORT_NAME eleos_static)
install(TARGETS eleos eleos_static EXPORT EleosTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} NAMELINK_COMPONENT Development
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
set(ELEOS_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/Eleos)
install(EXPORT EleosTargets NAMESPACE Eleos:: DESTINATION ${ELEOS_CMAKE_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/EleosConfig.cmake.in
  ${PROJECT_BINARY_DIR}/EleosConfig.cmake INSTALL_DESTINATION ${ELEOS_CMAKE_DIR})
# 0.x: a minor release may break the interface, so only the same minor version matches.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/EleosConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/EleosConfig.cmake ${PROJECT_BINARY_DIR}/EleosConfigVersion.cmake
        DESTINATION ${ELEOS_CMAKE_DIR})

# pkg-config: the prefix is found from the .pc file's own place, so the file is right for
# whichever prefix `cmake --install --prefix` is given.
file(RELATIVE_PATH ELEOS_PC_TO_PREFIX "/p/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/p")
string(REGEX REPLACE "/$" "" ELEOS_PC_TO_PREFIX "${ELEOS_PC_TO_PREFIX}")
configure_file(${PROJECT_SOURCE_DIR}/cmake/eleos.pc.in ${PROJECT_BINARY_DIR}/eleos.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/eleos.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/LICENSE
        ${PROJECT_SOURCE_DIR}/CHANGELOG.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
