# FindCUDNN: locates cuDNN's header and library and reads its version from cudnn_version.h.
# Provides CUDNN_FOUND, CUDNN_VERSION and the imported target CUDNN::cudnn. A version older than the
# one requested (find_package(CUDNN 9)) fails with a message naming both versions.
set(_octa_cudnn_hints ${CUDNN_ROOT} $ENV{CUDNN_ROOT} ${CUDAToolkit_LIBRARY_ROOT}
                      ${CUDAToolkit_TARGET_DIR} /usr/local/cuda /usr)
find_path(CUDNN_INCLUDE_DIR cudnn_version.h
          HINTS ${_octa_cudnn_hints} ${CUDAToolkit_INCLUDE_DIRS} PATH_SUFFIXES include)
find_library(CUDNN_LIBRARY cudnn HINTS ${_octa_cudnn_hints} PATH_SUFFIXES lib64 lib lib/x64)

if(CUDNN_INCLUDE_DIR AND EXISTS "${CUDNN_INCLUDE_DIR}/cudnn_version.h")
  file(READ "${CUDNN_INCLUDE_DIR}/cudnn_version.h" _octa_cudnn_header)
  string(REGEX MATCH "define CUDNN_MAJOR ([0-9]+)" _ "${_octa_cudnn_header}")
  set(_major "${CMAKE_MATCH_1}")
  string(REGEX MATCH "define CUDNN_MINOR ([0-9]+)" _ "${_octa_cudnn_header}")
  set(_minor "${CMAKE_MATCH_1}")
  string(REGEX MATCH "define CUDNN_PATCHLEVEL ([0-9]+)" _ "${_octa_cudnn_header}")
  set(_patch "${CMAKE_MATCH_1}")
  if(_major STREQUAL "")
    message(FATAL_ERROR "FindCUDNN: cannot read CUDNN_MAJOR from ${CUDNN_INCLUDE_DIR}/cudnn_version.h")
  endif()
  set(CUDNN_VERSION "${_major}.${_minor}.${_patch}")
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(CUDNN
  REQUIRED_VARS CUDNN_LIBRARY CUDNN_INCLUDE_DIR
  VERSION_VAR CUDNN_VERSION
  REASON_FAILURE_MESSAGE "octa's GPU path needs cuDNN 9 (set CUDNN_ROOT to its prefix, or configure
  with -DOCTA_ENABLE_CUDA=OFF for the CPU engine only).")

if(CUDNN_FOUND AND NOT TARGET CUDNN::cudnn)
  add_library(CUDNN::cudnn UNKNOWN IMPORTED)
  set_target_properties(CUDNN::cudnn PROPERTIES IMPORTED_LOCATION "${CUDNN_LIBRARY}"
                        INTERFACE_INCLUDE_DIRECTORIES "${CUDNN_INCLUDE_DIR}")
endif()
mark_as_advanced(CUDNN_INCLUDE_DIR CUDNN_LIBRARY)
