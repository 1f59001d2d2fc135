# OCTA_SANITIZE: build everything (the engine, apps and tests) with a sanitizer, in a build
# directory of its own (scripts/sanitize.sh configures them): address = AddressSanitizer +
# UndefinedBehaviorSanitizer (+ LeakSanitizer, on by default with ASan), thread = ThreadSanitizer.
# Empty (the default) builds without. UBSan stops at the first report (-fno-sanitize-recover), as
# ASan and TSan do with halt_on_error, so no report can scroll by unnoticed.
#
# octa_sanitizer_flags(<option name> <out var>): the compile/link flags for the sanitizer the cache
# option names (address, thread or empty), for OCTA_SANITIZE here and emul_kernels_test's
# OCTA_EMUL_SANITIZE (tests/CMakeLists.txt).
function(octa_sanitizer_flags option out)
  set(kind "${${option}}")
  if(kind STREQUAL "address")
    set(flags -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  elseif(kind STREQUAL "thread")
    set(flags -fsanitize=thread)
  elseif(NOT kind STREQUAL "")
    message(FATAL_ERROR "${option}='${kind}': use address, thread or empty")
  endif()
  set(${out} ${flags} PARENT_SCOPE)
endfunction()

set(OCTA_SANITIZE "" CACHE STRING
    "Build with a sanitizer: address (ASan + UBSan + LSan), thread (TSan), or empty")
set_property(CACHE OCTA_SANITIZE PROPERTY STRINGS "" address thread)
octa_sanitizer_flags(OCTA_SANITIZE _octa_sanitize)
if(_octa_sanitize)
  if(OCTA_HAVE_CUDA)
    message(FATAL_ERROR "OCTA_SANITIZE needs -DOCTA_ENABLE_CUDA=OFF (the CPU engine): the "
                        "sanitizers do not instrument device code; the kernels are checked under "
                        "them on the emulator (tests/emulation/run_sanitized.sh)")
  endif()
  add_compile_options("$<$<COMPILE_LANGUAGE:CXX>:${_octa_sanitize}>")
  add_link_options(${_octa_sanitize})
  # GCC's flow analysis under the instrumentation reports uninitialised values inside libstdc++
  # that are not (as for emul_kernels_test): a warning there, not an error.
  add_compile_options("$<$<COMPILE_LANGUAGE:CXX>:-Wno-error=maybe-uninitialized>")
endif()
