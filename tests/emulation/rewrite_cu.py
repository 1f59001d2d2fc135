#!/usr/bin/env python3
"""tests/emulation/rewrite_cu.py: turns one CUDA source (kernels/<name>.cu) into host C++ for octa's
kernel emulator (tests/emulation/emul.hpp), so the real kernels run on a CPU in the test suite.

    rewrite_cu.py INPUT.cu OUTPUT.cpp

Run by the build (tests/CMakeLists.txt, an add_custom_command per .cu); Python 3 standard library
only. The output starts with `#include "tests/emulation/emul_cuda.hpp"` and `#line 1 "INPUT.cu"`,
and every rewrite keeps the number of lines, so compiler diagnostics, __FILE__ / __LINE__ and the
emulator's reports all point at the real .cu lines.

What it rewrites (on the code only: comments, string and character literals are left alone):
  k<<<grid, block[, smem[, stream]]>>>(args)   (k may be a template-id: k<8, true>)
      -> ::emul::launch(::emul::Site{"k", __FILE__, __LINE__}, ::emul::Cfg(grid, ...), k, args)
  [__align__(A)] __shared__ T a[N][M], b;
      -> auto& a = ::emul::shared<T[N][M]>(ID, A); auto& b = ::emul::shared<T>(ID, A);
  extern __shared__ T a[];                      -> T* a = ::emul::dynamic_shared<T>();
  __launch_bounds__(MAX[, MIN])                 -> removed; ::emul::launch_bounds(MAX, MIN); is the
                                                   first statement of the kernel's body
  threadIdx, blockIdx, blockDim, gridDim        -> ::emul::tl.tid, .bid, .bdim, .gdim
  __syncthreads()                               -> ::emul::syncthreads(__FILE__, __LINE__)
  cudaX(...)  (runtime API calls in launchers)  -> ::emul::cudaX(...), for the calls the emulator
                                                   models (SUPPORTED_RUNTIME below)
  #include "engine/cuda/check.hpp" / "nvtx.hpp" -> #include "tests/emulation/emul_cuda.hpp"
  #include <mma.h>                              -> #include "tests/emulation/emul_wmma.hpp" (WMMA)
  #pragma unroll                                -> removed (the host compiler does not know it)
and it appends (after the last line) a registration of the file's __global__ kernels by name, so
the test can check that every kernel of kernels/*.cu is exercised (::emul::kernels()).

Limits. It is a careful text rewrite, not a C++ parser: a launch's kernel expression must be a
(qualified) name with optional template arguments; a __shared__ declaration must be one statement
of the form above (no initialiser: CUDA allows none). What the emulator cannot model faithfully
is refused with an error naming the .cu line, rather than emulated wrongly: warp-level primitives
(__shfl*, __ballot*, __any/__all_sync, __activemask, __syncwarp, warpSize, cooperative groups),
__constant__ and __managed__ memory, textures and surfaces, inline PTX (asm), clock(), and CUDA
runtime calls outside SUPPORTED_RUNTIME. Extend the emulator and this list together.
"""

import hashlib
import pathlib
import re
import sys

SUPPORTED_RUNTIME = {
    "cudaGetLastError", "cudaPeekAtLastError", "cudaMemsetAsync", "cudaMemset",
    "cudaMemcpyAsync", "cudaMemcpy", "cudaStreamSynchronize", "cudaDeviceSynchronize",
}

REFUSED = [
    (r"\b__shfl\w*", "warp shuffles"),
    (r"\b__ballot\w*", "warp votes"),
    (r"\b__(any|all|uni)_sync\b", "warp votes"),
    (r"\b__activemask\b", "warp masks"),
    (r"\b__syncwarp\b", "warp barriers"),
    (r"\b__syncthreads_(count|and|or)\b", "barriers with a reduction"),
    (r"\b__match_\w+", "warp matching"),
    (r"\b__reduce_\w+_sync\b", "warp reductions"),
    (r"\bwarpSize\b", "warp-size dependent code"),
    (r"\bcooperative_groups\b", "cooperative groups"),
    (r"\b__constant__\b", "__constant__ memory"),
    (r"\b__managed__\b", "managed memory"),
    (r"\b(tex\d?D\w*|surf\d?D\w*|cudaTextureObject_t|cudaSurfaceObject_t)\b", "textures/surfaces"),
    (r"\basm\b|\b__asm__\b", "inline PTX"),
    (r"\bclock(64)?\s*\(", "clock()"),
]

INCLUDE_MAP = {
    "engine/cuda/check.hpp": "tests/emulation/emul_cuda.hpp",
    "engine/cuda/nvtx.hpp": "tests/emulation/emul_cuda.hpp",
    "mma.h": "tests/emulation/emul_wmma.hpp",
}

BUILTINS = {"threadIdx": "::emul::tl.tid", "blockIdx": "::emul::tl.bid",
            "blockDim": "::emul::tl.bdim", "gridDim": "::emul::tl.gdim"}


class RewriteError(Exception):
    pass


def mask_code(src):
    """src with comments, string and character literals blanked (newlines kept): same offsets."""
    out = list(src)
    i, n = 0, len(src)

    def blank(a, b):
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = src[i]
        after_word = i > 0 and (src[i - 1].isalnum() or src[i - 1] == "_")  # R"x" / 1'000 / u8"x"
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            j = n if j < 0 else j + 2
            blank(i, j)
            i = j
        elif src.startswith('R"', i) and not after_word:
            m = re.match(r'R"([^(\s]*)\(', src[i:])
            if not m:
                i += 1
                continue
            end = src.find(")" + m.group(1) + '"', i)
            j = n if end < 0 else end + len(m.group(1)) + 2
            blank(i + 1, j)
            i = j
        elif c == '"' or (c == "'" and not after_word):
            j = i + 1
            while j < n and src[j] != c:
                j += 2 if src[j] == "\\" else 1
            blank(i + 1, j)  # keep the quotes themselves
            i = j + 1
        else:
            i += 1
    return "".join(out)


def line_of(src, pos):
    return src.count("\n", 0, pos) + 1


def match_forward(code, start, open_ch, close_ch):
    """Index of the bracket closing the one at code[start] (== open_ch)."""
    depth = 0
    for k in range(start, len(code)):
        if code[k] == open_ch:
            depth += 1
        elif code[k] == close_ch:
            depth -= 1
            if depth == 0:
                return k
    raise RewriteError(f"unbalanced '{open_ch}'")


def skip_ws(code, k):
    while k < len(code) and code[k].isspace():
        k += 1
    return k


def newlines(text):
    return "\n" * text.count("\n")


class Rewriter:
    def __init__(self, path, src):
        self.path = path
        self.src = src
        self.code = mask_code(src)
        self.edits = []  # (start, end, replacement)

    def error(self, pos, msg):
        raise RewriteError(f"{self.path}:{line_of(self.src, pos)}: error: rewrite_cu.py: {msg}")

    def edit(self, start, end, text):
        # Line numbers must not move: the replacement ends with the newlines it replaces.
        text = text.replace("\n", " ") + newlines(self.src[start:end])
        self.edits.append((start, end, text))

    def insert(self, pos, text):
        self.edits.append((pos, pos, text))

    # -----------------------------------------------------------------------------------------
    def check_refused(self):
        for pattern, what in REFUSED:
            m = re.search(pattern, self.code)
            if m:
                self.error(m.start(), f"'{m.group(0).strip()}': the emulator does not model {what}")

    def preprocessor_lines(self):
        for m in re.finditer(r"^[ \t]*#[ \t]*include[ \t]*([<\"])([^>\"]+)[>\"]", self.src, re.M):
            if not self.code[m.start():m.end()].strip().startswith("#"):
                continue  # inside a comment
            header = m.group(2)
            if header in INCLUDE_MAP:
                self.edit(m.start(), m.end(), f'#include "{INCLUDE_MAP[header]}"  // for {header}')
            elif header.startswith("engine/cuda/"):
                self.error(m.start(),
                           f"{header}: only {', '.join(INCLUDE_MAP)} have emulated stand-ins")
        for m in re.finditer(r"^[ \t]*#[ \t]*pragma[ \t]+unroll\b[^\n]*", self.code, re.M):
            self.edit(m.start(), m.end(), "")

    def launch_bounds(self):
        for m in re.finditer(r"\b__launch_bounds__\s*\(", self.code):
            open_paren = m.end() - 1
            close = match_forward(self.code, open_paren, "(", ")")
            args = " ".join(self.src[open_paren + 1:close].split())
            self.edit(m.start(), close + 1, "")
            # The kernel's name and parameter list follow; then its body.
            p = self.code.find("(", close + 1)
            if p < 0:
                self.error(m.start(), "__launch_bounds__ without a kernel after it")
            params_end = match_forward(self.code, p, "(", ")")
            body = skip_ws(self.code, params_end + 1)
            if body >= len(self.code) or self.code[body] != "{":
                self.error(m.start(),
                           "__launch_bounds__ on a declaration: only definitions are supported")
            self.insert(body + 1, f" ::emul::launch_bounds({args});")

    def shared(self):
        for m in re.finditer(r"\b__shared__\b", self.code):
            # The whole declaration: from the end of the previous statement to the next ';'.
            start = max(self.code.rfind(c, 0, m.start()) for c in ";{}") + 1
            start = skip_ws(self.code, start)
            end = self.code.find(";", m.end())
            if end < 0:
                self.error(m.start(), "__shared__ declaration without ';'")
            decl = " ".join(self.code[start:end].split())
            align = "0"
            am = re.search(r"(?:__align__|alignas)\s*\(\s*([^()]+?)\s*\)", decl)
            if am:
                align = am.group(1)
                decl = (decl[:am.start()] + decl[am.end():]).strip()
            words = decl.split()
            extern = "extern" in words
            decl = " ".join(w for w in words if w not in ("extern", "__shared__", "static"))
            if "=" in decl or "(" in decl:
                self.error(m.start(), f"unsupported __shared__ declaration '{decl}'")
            # type, then declarators: name[dims], name, ...
            dm = re.fullmatch(r"(.+?[\w>*&\s])\s*(\**\s*\w+\s*(?:\[[^\]]*\]\s*)*"
                              r"(?:,\s*\**\s*\w+\s*(?:\[[^\]]*\]\s*)*)*)", decl)
            if not dm:
                self.error(m.start(), f"cannot parse __shared__ declaration '{decl}'")
            base_type = dm.group(1).strip()
            out = []
            for d in dm.group(2).split(","):
                d = d.strip()
                stars = len(d) - len(d.lstrip("*"))
                d = d.lstrip("*").strip()
                nm = re.fullmatch(r"(\w+)\s*((?:\[[^\]]*\]\s*)*)", d)
                name, dims = nm.group(1), "".join(nm.group(2).split())
                ty = base_type + "*" * stars
                if extern:
                    if dims != "[]":
                        self.error(m.start(), "extern __shared__ must be an array of unknown size")
                    out.append(f"{ty}* {name} = ::emul::dynamic_shared<{ty}>();")
                    continue
                if "[]" in dims:
                    self.error(m.start(), f"__shared__ array '{name}' needs a size")
                key = f"{self.path}:{line_of(self.src, m.start())}:{name}".encode()
                ident = "0x" + hashlib.sha1(key).hexdigest()[:15] + "ull"
                out.append(f"auto& {name} = ::emul::shared<{ty}{dims}>({ident}, {align});")
            self.edit(start, end + 1, " ".join(out))

    def launches(self):
        for m in re.finditer(r"<<<", self.code):
            lt = m.start()
            # The kernel expression before '<<<': a name, optionally with template arguments.
            k = lt - 1
            while k >= 0 and self.code[k].isspace():
                k -= 1
            if self.code[k] == ">":
                depth = 0
                while k >= 0:
                    if self.code[k] == ">":
                        depth += 1
                    elif self.code[k] == "<":
                        depth -= 1
                        if depth == 0:
                            break
                    k -= 1
                k -= 1
                while k >= 0 and self.code[k].isspace():
                    k -= 1
            while k >= 0 and (self.code[k].isalnum() or self.code[k] in "_:"):
                k -= 1
            kstart = k + 1
            kernel = self.src[kstart:lt]
            if not re.match(r"[\w:]", kernel):
                self.error(lt, "cannot find the kernel before '<<<'")
            # The configuration: up to '>>>' outside parentheses.
            depth, j = 0, m.end()
            while j < len(self.code):
                if self.code[j] in "([{":
                    depth += 1
                elif self.code[j] in ")]}":
                    depth -= 1
                elif depth == 0 and self.code.startswith(">>>", j):
                    break
                j += 1
            else:
                self.error(lt, "'<<<' without '>>>'")
            cfg = self.src[m.end():j]
            p = skip_ws(self.code, j + 3)
            if p >= len(self.code) or self.code[p] != "(":
                self.error(lt, "'>>>' not followed by the kernel's arguments")
            close = match_forward(self.code, p, "(", ")")
            has_args = self.code[p + 1:close].strip() != ""
            name = " ".join(kernel.split()).replace('"', "")
            text = (f'::emul::launch(::emul::Site{{"{name}", __FILE__, __LINE__}}, '
                    f"::emul::Cfg({' '.join(cfg.split())}), {kernel.strip()}"
                    + (", " if has_args else ""))
            self.edit(kstart, p + 1, text)

    def kernel_names(self):
        names = []
        for m in re.finditer(r"\b__global__\b", self.code):
            k = m.end()
            while True:
                w = re.compile(r"\b(\w+)\s*\(").search(self.code, k)
                if not w:
                    self.error(m.start(), "__global__ without a function after it")
                if w.group(1) != "__launch_bounds__":
                    names.append(w.group(1))
                    break
                k = match_forward(self.code, w.end() - 1, "(", ")") + 1
        return names

    def tokens(self):
        for m in re.finditer(r"\b(threadIdx|blockIdx|blockDim|gridDim)\b", self.code):
            self.edit(m.start(), m.end(), BUILTINS[m.group(1)])
        for m in re.finditer(r"\b__syncthreads\s*\(\s*\)", self.code):
            self.edit(m.start(), m.end(), "::emul::syncthreads(__FILE__, __LINE__)")
        for m in re.finditer(r"(?<![\w:])(cuda[A-Z]\w*)\s*\(", self.code):
            fn = m.group(1)
            if fn not in SUPPORTED_RUNTIME:
                self.error(m.start(), f"{fn}(): not a CUDA runtime call the emulator models "
                                      f"({', '.join(sorted(SUPPORTED_RUNTIME))})")
            self.edit(m.start(), m.start() + len(fn), "::emul::" + fn)

    def run(self):
        self.check_refused()
        self.preprocessor_lines()
        self.launch_bounds()
        self.shared()
        self.launches()
        self.tokens()
        self.edits.sort(key=lambda e: (e[0], e[1]))
        for a, b in zip(self.edits, self.edits[1:]):
            if b[0] < a[1]:
                self.error(b[0], "overlapping rewrites (a construct this script does not expect)")
        out, pos = [], 0
        for start, end, text in self.edits:
            out.append(self.src[pos:start])
            out.append(text)
            pos = end
        out.append(self.src[pos:])
        result = "".join(out)
        assert result.count("\n") == self.src.count("\n"), "line count changed"
        names = ", ".join(f'"{k}"' for k in self.kernel_names())
        if not result.endswith("\n"):
            result += "\n"
        result += ("namespace {\n[[maybe_unused]] const bool emul_kernels_registered_ =\n"
                   f'    ::emul::register_kernels("{self.path}", {{{names}}});\n}}  // namespace\n')
        return result


def main(argv):
    if len(argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    src_path = pathlib.Path(argv[1]).resolve()
    out_path = pathlib.Path(argv[2])
    src = src_path.read_text()
    try:
        body = Rewriter(str(src_path), src).run()
    except RewriteError as e:
        sys.stderr.write(f"{e}\n")
        return 1
    header = (f"// Generated from {src_path} by tests/emulation/rewrite_cu.py for the kernel"
              " emulator. Do not edit.\n"
              '#include "tests/emulation/emul_cuda.hpp"\n'
              f'#line 1 "{src_path}"\n')
    text = header + body
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_suffix(out_path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(out_path)  # atomic: a failed run never leaves half a file
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
