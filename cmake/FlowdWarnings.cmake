# SPDX-License-Identifier: Apache-2.0
function(flowd_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra)
  if(FLOWD_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

if(FLOWD_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()

# libFuzzer build (tests/fuzz): every target gets coverage instrumentation and ASan/UBSan; only the
# fuzz executables link the libFuzzer driver (-fsanitize=fuzzer, added in tests/fuzz/CMakeLists.txt).
if(FLOWD_FUZZ)
  if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
                        -fno-sanitize-recover=undefined)
    add_link_options(-fsanitize=address,undefined)
  else()
    message(WARNING "FLOWD_FUZZ needs clang (CC=clang CXX=clang++); the fuzz targets are not built")
  endif()
endif()
