# libeleos: one shared library (libeleos.so.0, versioned symbols, internals hidden) and one
# static library (libeleos.a), both made of the same position-independent objects.
#
#   eleos          SHARED  exports only the functions declared in include/eleos/*.h, in the
#                          version node ELEOS_0.1 (src/libeleos.map.in)
#   eleos_static   STATIC  libeleos.a: every object, for static linking and for the tests,
#                          which also reach the internal functions
# Both carry include/ as their PUBLIC include directory; src/ stays private (eleos_internal).
include(GNUInstallDirs)

set_target_properties(eleos_objects PROPERTIES POSITION_INDEPENDENT_CODE ON)
target_include_directories(eleos_objects PRIVATE ${PROJECT_SOURCE_DIR}/include
                           ${PROJECT_SOURCE_DIR}/src ${MIMALLOC_INCLUDE_DIR})
# Only for the dependencies' include directories and definitions: objects link nothing.
target_link_libraries(eleos_objects PRIVATE OpenSSL::Crypto PkgConfig::LIBURING Threads::Threads)

# The exported names: every eleos_* function the public headers declare. Read at configure
# time; a header that changes re-runs the configuration, so a new function is exported
# without touching a list.
file(GLOB ELEOS_PUBLIC_HEADERS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/include/eleos/*.h)
set(ELEOS_EXPORTS "")
foreach(h ${ELEOS_PUBLIC_HEADERS})
  file(READ ${h} text)
  string(REGEX MATCHALL "eleos_[a-z0-9_]+[ \t\r\n]*\\(" calls "${text}")
  foreach(c ${calls})
    string(REGEX REPLACE "[ \t\r\n]*\\($" "" c "${c}")
    list(APPEND ELEOS_EXPORTS ${c})
  endforeach()
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${h})
endforeach()
list(REMOVE_DUPLICATES ELEOS_EXPORTS)
list(SORT ELEOS_EXPORTS)
# The allocation entry points src/sim/sim_hostalloc.c interposes to catch host allocations
# made in enclave mode (forwarded unchanged to the process's allocator). Under the
# sanitizers it uses their allocator hooks instead and defines none of them.
if(NOT ELEOS_SANITIZE)
  list(APPEND ELEOS_EXPORTS malloc calloc realloc aligned_alloc posix_memalign memalign valloc
       pvalloc)
endif()
list(JOIN ELEOS_EXPORTS ";\n    " ELEOS_EXPORTS_TEXT)
configure_file(${PROJECT_SOURCE_DIR}/src/libeleos.map.in ${PROJECT_BINARY_DIR}/libeleos.map @ONLY)
if(ELEOS_SANITIZE)
  target_compile_definitions(eleos_objects PRIVATE ELEOS_SANITIZER_HOOKS=1)
endif()

add_library(eleos SHARED $<TARGET_OBJECTS:eleos_objects>)
add_library(eleos_static STATIC $<TARGET_OBJECTS:eleos_objects>)
add_library(Eleos::eleos ALIAS eleos)
add_library(Eleos::eleos_static ALIAS eleos_static)
set_target_properties(eleos PROPERTIES VERSION ${PROJECT_VERSION} SOVERSION ${ELEOS_SOVERSION}
                      LINK_DEPENDS ${PROJECT_BINARY_DIR}/libeleos.map)
set_target_properties(eleos_static PROPERTIES OUTPUT_NAME eleos)
target_link_options(eleos PRIVATE "LINKER:--version-script=${PROJECT_BINARY_DIR}/libeleos.map")
if(NOT ELEOS_SANITIZE)
  # Every dependency named: a missing one fails here, not in the user's link.
  target_link_options(eleos PRIVATE "LINKER:-z,defs")
endif()
foreach(t eleos eleos_static)
  target_include_directories(${t} PUBLIC "$<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>"
                             "$<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>")
endforeach()
# The shared library records its dependencies itself; the static one hands them on.
target_link_libraries(eleos PRIVATE OpenSSL::Crypto PkgConfig::LIBURING Threads::Threads
                      ${CMAKE_DL_LIBS})
target_link_libraries(eleos_static PUBLIC OpenSSL::Crypto PkgConfig::LIBURING Threads::Threads
                      ${CMAKE_DL_LIBS})
