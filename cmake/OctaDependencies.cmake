# Third-party dependencies (spdlog, fmt, CLI11, nlohmann_json, zlib, OpenSSL, libcurl, OpenBLAS,
# OpenMP, libpng, libjpeg-turbo's TurboJPEG, Catch2; the system's threads), all from Debian
# packages installed by scripts/setup.sh.
# Nothing is downloaded at build time; a missing package stops configure with the package to
# install.
macro(octa_require pkg debian)
  find_package(${pkg} ${ARGN} QUIET)
  if(NOT ${pkg}_FOUND)
    message(FATAL_ERROR "octa needs ${pkg}: install the Debian package '${debian}' "
                        "(scripts/setup.sh installs every dependency).")
  endif()
endmacro()

octa_require(fmt libfmt-dev)
octa_require(spdlog libspdlog-dev)
octa_require(CLI11 libcli11-dev)
octa_require(nlohmann_json nlohmann-json3-dev)
octa_require(ZLIB zlib1g-dev)
octa_require(OpenSSL libssl-dev)
octa_require(OpenMP libomp-dev)
set(THREADS_PREFER_PTHREAD_FLAG ON)
find_package(Threads REQUIRED)
set(BLA_VENDOR OpenBLAS)
octa_require(BLAS libopenblas-dev)
find_path(OCTA_CBLAS_INCLUDE_DIR cblas.h PATH_SUFFIXES openblas x86_64-linux-gnu/openblas-pthread)
if(NOT OCTA_CBLAS_INCLUDE_DIR)
  message(FATAL_ERROR "octa needs cblas.h: install the Debian package 'libopenblas-dev'.")
endif()
octa_require(CURL libcurl4-openssl-dev)
octa_require(PNG libpng-dev)
include(${CMAKE_CURRENT_LIST_DIR}/OctaTurboJPEG.cmake)

# MPI (optional: Debian's libopenmpi-dev, which scripts/setup.sh installs): data-parallel training
# under mpirun (engine/dist/). Without it everything else builds and runs as one process. Off in
# the sanitizer builds (scripts/sanitize.sh): Open MPI is not instrumented, and LeakSanitizer
# reports what its start-up keeps for the process's lifetime.
option(OCTA_ENABLE_MPI "Build data-parallel training over MPI when MPI is found" ON)
set(OCTA_HAVE_MPI OFF)
if(OCTA_ENABLE_MPI AND NOT OCTA_SANITIZE)
  set(MPI_CXX_SKIP_MPICXX ON)  # the C API only: no deprecated C++ bindings (libmpi_cxx)
  find_package(MPI COMPONENTS CXX QUIET)
  if(MPI_CXX_FOUND)
    set(OCTA_HAVE_MPI ON)
  endif()
endif()
message(STATUS "octa: MPI ${OCTA_HAVE_MPI} (data-parallel training under mpirun)")
