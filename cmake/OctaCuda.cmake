# The GPU path: enabled when nvcc is found (and OCTA_ENABLE_CUDA is ON). Without a CUDA toolkit the
# CPU engine, its tests and train_gpu's CPU path still build, and configure says so.
set(OCTA_HAVE_CUDA OFF)
set(OCTA_CUDA_SUMMARY "")
if(OCTA_ENABLE_CUDA)
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    # H100 by default; override with -DCMAKE_CUDA_ARCHITECTURES=80 (A100), 89 (L4), "80;90", ...
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 90 CACHE STRING "CUDA architectures to build for")
    endif()
    enable_language(CUDA)
    # CMake 3.25 knows no C++20 dialect flag for nvcc; kernels are written in C++17.
    set(CMAKE_CUDA_STANDARD 17)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    find_package(CUDAToolkit REQUIRED)
    find_package(CUDNN 9 REQUIRED)
    set(OCTA_HAVE_CUDA ON)
    string(CONCAT OCTA_CUDA_SUMMARY " (CUDA ${CUDAToolkit_VERSION}, cuDNN ${CUDNN_VERSION}, "
                  "architectures ${CMAKE_CUDA_ARCHITECTURES})")
  else()
    message(STATUS "octa: no CUDA toolkit found (nvcc): building the CPU engine only; "
                   "train_gpu will train on the CPU path.")
  endif()
else()
  message(STATUS "octa: OCTA_ENABLE_CUDA=OFF: building the CPU engine only.")
endif()
