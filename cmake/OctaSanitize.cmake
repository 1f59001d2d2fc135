# OCTA_SANITIZE: build everything (the engine, apps and tests) with a sanitizer, in a build
# directory of its own (scripts/sanitize.sh configures them): address = AddressSanitizer +
# UndefinedBehaviorSanitizer (+ LeakSanitizer, on by default with ASan), thread = ThreadSanitizer.
# Empty (the default) builds without. UBSan stops at the first report (-fno-sanitize-recover), as
# ASan and TSan do with halt_on_error, so no report can scroll by unnoticed.
set(OCTA_SANITIZE "" CACHE STRING "Build with a sanitizer: address (ASan + UBSan + LSan), thread (TSan), or empty")
set_property(CACHE OCTA_SANITIZE PROPERTY STRINGS "" address thread)
if(OCTA_SANITIZE STREQUAL "address")
  set(_octa_sanitize -fsanitize=address,undefined -fno-sanitize-recover=undefined
                     -fno-omit-frame-pointer)
elseif(OCTA_SANITIZE STREQUAL "thread")
  set(_octa_sanitize -fsanitize=thread)
elseif(NOT OCTA_SANITIZE STREQUAL "")
  message(FATAL_ERROR "OCTA_SANITIZE='${OCTA_SANITIZE}': use address, thread or empty")
endif()
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
