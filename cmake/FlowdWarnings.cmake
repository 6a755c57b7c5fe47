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
