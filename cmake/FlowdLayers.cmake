# SPDX-License-Identifier: Apache-2.0
# The layers the build enforces (docs/architecture.md, "Layers"):
#
#   types (include/flowd, src/types) -> common -> collector, netlink, firefly, analyze
#     -> plugins/*, backends/* -> core (the daemon) -> app (main, subcommands, composition root)
#
# Every include in src/ is written relative to src/ ("collector/decoder.hpp"), but no target gets
# src/ itself as an include directory. Each library gets a directory of its own under
# build/include-roots/<library>/ holding one symbolic link to its own folder (collector ->
# src/collector), exported PUBLIC; a library sees its own root and, through target_link_libraries,
# the roots of the libraries it links, i.e. the layers below it. An #include of a folder above
# (or of a sibling it does not link) is therefore not found, and the compiler stops with
# "fatal error: core/runtime.hpp: No such file or directory" naming the including file and line.
# tests/layering checks that a wrong-way include really fails.

# flowd_include_root(TARGET FOLDER...): expose src/FOLDER as "FOLDER/..." to TARGET and its users.
function(flowd_include_root target)
  set(root ${CMAKE_BINARY_DIR}/include-roots/${target})
  foreach(folder IN LISTS ARGN)
    set(link ${root}/${folder})
    get_filename_component(parent ${link} DIRECTORY)
    file(MAKE_DIRECTORY ${parent})
    if(IS_SYMLINK ${link})
      file(REMOVE ${link})
    endif()
    file(CREATE_LINK ${CMAKE_SOURCE_DIR}/src/${folder} ${link} SYMBOLIC)
  endforeach()
  target_include_directories(${target} PUBLIC ${root})
endfunction()

# flowd_layer_library(NAME FOLDER SOURCES... [DEPENDS targets...]): one static library of one folder
# of src/, with the folder as its include root and warnings as errors. DEPENDS are linked PUBLIC:
# list only lower layers (or, for a plugin, a base it builds on such as flowd_plugin_scanner).
function(flowd_layer_library name folder)
  cmake_parse_arguments(PARSE_ARGV 2 arg "" "" "SOURCES;DEPENDS")
  add_library(${name} STATIC ${arg_SOURCES})
  flowd_include_root(${name} ${folder})
  target_link_libraries(${name} PUBLIC ${arg_DEPENDS})
  flowd_warnings(${name})
endfunction()

# A plugin or a backend (fluent-bit style: src/plugins/<name>/CMakeLists.txt is one call).
# Every component stands on the public headers (flowd_types) and src/common; DEPENDS adds the rest.
function(flowd_plugin name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "" "SOURCES;DEPENDS")
  flowd_layer_library(flowd_plugin_${name} plugins/${name} SOURCES ${arg_SOURCES}
                      DEPENDS flowd_types flowd_common ${arg_DEPENDS})
endfunction()

function(flowd_backend name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "" "SOURCES;DEPENDS")
  flowd_layer_library(flowd_backend_${name} backends/${name} SOURCES ${arg_SOURCES}
                      DEPENDS flowd_types flowd_common ${arg_DEPENDS})
endfunction()

# -DFLOWD_LAYER_PROBE="LIBRARY;HEADER" puts a source including HEADER first into the real LIBRARY,
# to show that a wrong-way include fails the build (tests/layering/wrong_way_build.sh). Empty in
# every normal build.
set(FLOWD_LAYER_PROBE "" CACHE STRING "test only: LIBRARY;HEADER, a wrong-way include to put into LIBRARY")
function(flowd_apply_layer_probe)
  if(NOT FLOWD_LAYER_PROBE)
    return()
  endif()
  list(GET FLOWD_LAYER_PROBE 0 library)
  list(GET FLOWD_LAYER_PROBE 1 header)
  set(probe ${CMAKE_BINARY_DIR}/generated/layer_probe.cpp)
  file(WRITE ${probe} "// -DFLOWD_LAYER_PROBE: ${library} includes ${header}\n#include \"${header}\"\n")
  # First in the list, so the build stops on it before compiling the rest of the library.
  get_target_property(sources ${library} SOURCES)
  set_property(TARGET ${library} PROPERTY SOURCES ${probe} ${sources})
  message(STATUS "layer probe: ${library} includes ${header}")
endfunction()
