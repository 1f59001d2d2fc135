#!/usr/bin/env bash
# scripts/gpu/no-werror.sh: a compiler launcher (CMAKE_CXX_COMPILER_LAUNCHER,
# CMAKE_CUDA_COMPILER_LAUNCHER) that runs the compiler command it is given with warnings no
# longer made errors: drops -Werror and nvcc's --Werror=all-warnings, and -Werror from nvcc's
# -Xcompiler lists. Used only by scripts/gpu/build.sh's fallback, when the lent GPU machine's
# compiler (not the one CI uses) warns where CI's does not and the strict build failed on that:
# the run goes on, and the warnings are in the build log and the summary, to be fixed.
args=()
for a in "$@"; do
  case $a in
    -Werror | --Werror=all-warnings) continue ;;
    -Xcompiler=*)
      a=${a//,-Werror/}
      a=${a//-Werror,/}
      [ "$a" = "-Xcompiler=-Werror" ] && continue
      ;;
  esac
  args+=("$a")
done
exec "${args[@]}"
