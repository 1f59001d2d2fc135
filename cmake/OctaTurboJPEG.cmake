# libjpeg-turbo's TurboJPEG API (Debian's libturbojpeg0-dev) as the imported target octa_turbojpeg,
# found by its header and library; included by cmake/OctaDependencies.cmake and by the fuzzing
# build (fuzz/CMakeLists.txt, a separate clang project). Not Debian's libjpeg-turbo CMake config:
# that config names absolute /usr paths and checks files of other packages (libjpeg62-turbo, the
# static libraries), so it breaks when the packages are unpacked under another prefix (the lent
# GPU machine's .gpu-deps, scripts/gpu/build.sh).
if(TARGET octa_turbojpeg)
  return()
endif()
find_path(OCTA_TURBOJPEG_INCLUDE_DIR turbojpeg.h)
find_library(OCTA_TURBOJPEG_LIBRARY NAMES turbojpeg)
if(NOT OCTA_TURBOJPEG_INCLUDE_DIR OR NOT OCTA_TURBOJPEG_LIBRARY)
  message(FATAL_ERROR "octa needs TurboJPEG (turbojpeg.h, libturbojpeg.so): install the Debian "
                      "package 'libturbojpeg0-dev' (scripts/setup.sh installs every dependency).")
endif()
add_library(octa_turbojpeg INTERFACE IMPORTED)
target_include_directories(octa_turbojpeg INTERFACE ${OCTA_TURBOJPEG_INCLUDE_DIR})
target_link_libraries(octa_turbojpeg INTERFACE ${OCTA_TURBOJPEG_LIBRARY})
