# SPDX-License-Identifier: Apache-2.0
# flowd_bpf_skeleton(NAME SOURCE): clang -target bpf -> NAME.bpf.o -> bpftool gen skeleton -> NAME.skel.h,
# exposed as the INTERFACE target NAME_skel. Build-time only: flowd links libbpf, not clang or bpftool.
find_program(FLOWD_CLANG clang REQUIRED)
find_program(FLOWD_BPFTOOL bpftool PATHS /usr/sbin /sbin REQUIRED)

function(flowd_bpf_skeleton name source)
  set(obj ${CMAKE_BINARY_DIR}/bpf/${name}.bpf.o)
  set(skel ${CMAKE_BINARY_DIR}/bpf/${name}.skel.h)
  file(GLOB headers ${CMAKE_SOURCE_DIR}/bpf/*.h)
  add_custom_command(OUTPUT ${obj}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/bpf
    COMMAND ${FLOWD_CLANG} -O2 -g -Wall -Werror -target bpf
            -I/usr/include/${CMAKE_LIBRARY_ARCHITECTURE} -I${CMAKE_SOURCE_DIR}/bpf
            -c ${CMAKE_SOURCE_DIR}/${source} -o ${obj}
    DEPENDS ${CMAKE_SOURCE_DIR}/${source} ${headers}
    COMMENT "BPF ${source}")
  add_custom_command(OUTPUT ${skel}
    COMMAND ${FLOWD_BPFTOOL} gen skeleton ${obj} name ${name} > ${skel}
    DEPENDS ${obj}
    COMMENT "BPF skeleton ${name}.skel.h")
  add_custom_target(${name}_skel_gen DEPENDS ${skel})
  add_library(${name}_skel INTERFACE)
  add_dependencies(${name}_skel ${name}_skel_gen)
  target_include_directories(${name}_skel INTERFACE ${CMAKE_BINARY_DIR}/bpf ${CMAKE_SOURCE_DIR}/bpf)
endfunction()
