// tests/emulation/emul.cpp: the runtime of the CUDA kernel emulator (see emul.hpp for what it is,
// what it checks and what it does not model).
//
// A launch publishes a Job to a persistent pool of worker threads, one worker per CUDA thread of a
// block times the blocks in flight ("lanes"). Each lane has one std::barrier whose phases are the
// block's __syncthreads() calls and its end; the barrier's completion step (run once per phase,
// after every thread of the lane arrived) checks that all threads arrived at the same kind of
// point, frees the shared memory at the end of a block, and decides, for the whole lane at once,
// whether to stop after a fault.
//
// Lanes and ThreadSanitizer. Blocks of one lane are ordered by its barrier, so TSan can only see a
// race between blocks of different lanes; lanes share nothing else while a launch runs (the
// progress counter is a relaxed atomic, shared-memory statistics are per lane), so any two blocks
// of different lanes are unordered for TSan, whatever the timing. Block k of the run order goes to
// lane (sum of the base-L digits of k) mod L, the Thue-Morse sequence for L = 2: for any distance
// d, about a third or more of the pairs (k, k + d) land in different lanes, so two blocks that
// conflict at any distance in the grid (neighbours in x, or a whole row or plane apart) are seen.
#include "tests/emulation/emul.hpp"

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <numeric>
#include <semaphore>
#include <sstream>
#include <thread>
#include <unordered_map>

namespace emul {

namespace {

constexpr std::size_t kSharedLimit = 48 * 1024;  // static + dynamic, without an opt-in attribute
constexpr unsigned kMaxThreadsPerBlock = 1024;

[[noreturn]] void fatal(const std::string& what) {
  std::fprintf(stderr, "\nocta kernel emulator: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

// "(x, y, z)". Appended piece by piece: GCC 12 warns (-Wrestrict, wrongly) on "(" + std::string.
std::string str3(unsigned x, unsigned y, unsigned z) {
  std::string s(1, '(');
  s.append(std::to_string(x)).append(", ").append(std::to_string(y)).append(", ");
  s.append(std::to_string(z)).append(")");
  return s;
}
std::string str(const uint3& v) {
  return str3(v.x, v.y, v.z);
}
std::string str(const dim3& v) {
  return str3(v.x, v.y, v.z);
}

// Thrown inside a CUDA thread to leave the kernel once its launch has failed.
struct Unwind {};

// State of the test thread (launches are made from one thread at a time).
struct Global {
  Options opts;
  std::vector<LaunchRecord> records;
  cudaError_t sticky = cudaSuccess;
  std::string detail;
  Global() {
    if (const char* v = std::getenv("OCTA_EMUL_BLOCKS_IN_FLIGHT")) {
      opts.blocks_in_flight = static_cast<unsigned>(std::max(1L, std::strtol(v, nullptr, 10)));
    }
  }
};

Global& global() {
  static Global g;
  return g;
}

thread_local std::vector<const char*> t_ranges;

// Progress of the running launch (barrier phases completed), for the watchdog. Relaxed: it must
// not order the lanes (see the file comment).
std::atomic<std::uint64_t> g_progress{0};

}  // namespace

// =============================================================================================
// One launch, and one block in flight
// =============================================================================================

struct LaunchState {
  std::string kernel, site;
  dim3 grid, block;
  std::size_t dynamic_smem = 0;
  std::atomic<bool> failed{false};
  std::mutex m;
  std::string message;

  void fail(const std::string& what) {
    std::lock_guard<std::mutex> l(m);
    if (!failed.load()) message = what;
    failed.store(true);
  }
};

struct Lane {
  struct Completion {
    Lane* lane;
    void operator()() noexcept { lane->complete(); }
  };
  struct Var {
    void* base;
    void* p;
    std::size_t bytes, align;
  };

  LaunchState* launch = nullptr;
  std::unique_ptr<std::barrier<Completion>> bar;
  // Arrivals of the current phase, by kind.
  std::atomic<int> n_sync{0}, n_end{0};
  std::atomic<int> sync_line{0};
  std::atomic<const char*> sync_file{nullptr};
  std::atomic<bool> sync_mismatch{false};
  // Set in the completion step only, so every thread of the lane reads the same value after it.
  bool stop = false;

  std::mutex m;  // guards the shared memory of the running block
  std::unordered_map<std::uint64_t, Var> vars;
  Var dyn{nullptr, nullptr, 0, 0};
  std::size_t static_bytes = 0, max_static_bytes = 0;

  Lane(LaunchState* l, std::ptrdiff_t threads)
      : launch(l), bar(std::make_unique<std::barrier<Completion>>(threads, Completion{this})) {}
  ~Lane() { free_shared(); }

  void free_shared() {
    for (auto& [id, v] : vars) ::operator delete (v.base, std::align_val_t{2 * v.align});
    vars.clear();
    if (dyn.base != nullptr) ::operator delete (dyn.base, std::align_val_t{2 * dyn.align});
    dyn = Var{nullptr, nullptr, 0, 0};
    static_bytes = 0;
  }

  // Runs once per phase on one of the lane's threads (so tl.bid is the lane's block).
  void complete() noexcept {
    const int s = n_sync.load(), e = n_end.load();
    if (s > 0 && e > 0) {
      launch->fail("divergent __syncthreads() in block " + str(tl.bid) + ": " + std::to_string(s) +
                   " threads wait at " + sync_file.load() + ":" + std::to_string(sync_line.load()) +
                   " while " + std::to_string(e) + " have left the kernel");
    } else if (sync_mismatch.load()) {
      launch->fail("divergent __syncthreads() in block " + str(tl.bid) +
                   ": threads wait at different __syncthreads() calls (one of them at " +
                   sync_file.load() + ":" + std::to_string(sync_line.load()) + ")");
    }
    if (e > 0 || launch->failed.load()) {
      std::lock_guard<std::mutex> l(m);
      free_shared();
    }
    n_sync.store(0);
    n_end.store(0);
    sync_line.store(0);
    sync_file.store(nullptr);
    sync_mismatch.store(false);
    stop = launch->failed.load();
    g_progress.fetch_add(1, std::memory_order_relaxed);
  }

  void* alloc(std::uint64_t id, std::size_t bytes, std::size_t align, bool dynamic) {
    std::lock_guard<std::mutex> l(m);
    if (dynamic) {
      if (dyn.base == nullptr) dyn = make(launch->dynamic_smem, align);
      return dyn.p;
    }
    auto it = vars.find(id);
    if (it != vars.end()) {
      if (it->second.bytes != bytes || it->second.align != align)
        throw std::logic_error("a __shared__ variable changed its size between threads");
      return it->second.p;
    }
    static_bytes += bytes;
    max_static_bytes = std::max(max_static_bytes, static_bytes);
    if (static_bytes + launch->dynamic_smem > kSharedLimit) {
      throw std::length_error("the block uses " + std::to_string(static_bytes) +
                              " bytes of static and " + std::to_string(launch->dynamic_smem) +
                              " of dynamic shared memory, more than the " +
                              std::to_string(kSharedLimit) + " a block may have");
    }
    const Var v = make(bytes, align);
    vars.emplace(id, v);
    return v.p;
  }

  // `bytes` at an address aligned to `align` but not to 2 * align, poisoned.
  static Var make(std::size_t bytes, std::size_t align) {
    if (align == 0 || (align & (align - 1)) != 0) throw std::logic_error("bad shared alignment");
    void* base = ::operator new (bytes + align, std::align_val_t{2 * align});
    void* p = static_cast<char*>(base) + align;
    std::memset(p, 0xFF, bytes);
    return Var{base, p, bytes, align};
  }
};

namespace {

// =============================================================================================
// The worker pool
// =============================================================================================

struct Job {
  LaunchState* launch = nullptr;
  std::vector<std::unique_ptr<Lane>>* lanes = nullptr;
  dim3 grid, block;
  unsigned threads_per_block = 0;
  // Per lane: the linear block indices it runs, in order.
  const std::vector<std::vector<unsigned long long>>* order = nullptr;
  const std::function<void()>* body = nullptr;
};

class Pool {
 public:
  Pool() : watchdog_([this] { watch(); }) {}
  ~Pool() {
    {
      std::lock_guard<std::mutex> l(m_);
      quit_ = true;
    }
    cv_.notify_all();
    for (auto& w : workers_) w->go.release();
    for (auto& w : workers_) w->th.join();
    watchdog_.join();
  }
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  void run(const Job& job, unsigned workers) {
    while (workers_.size() < workers) {
      auto w = std::make_unique<Worker>();
      const unsigned index = static_cast<unsigned>(workers_.size());
      Worker* raw = w.get();
      w->th = std::thread([this, raw, index] { loop(raw, index); });
      workers_.push_back(std::move(w));
    }
    {
      std::lock_guard<std::mutex> l(m_);
      job_ = job;
      remaining_ = workers;
      running_ = true;
    }
    for (unsigned i = 0; i < workers; ++i) workers_[i]->go.release();
    std::unique_lock<std::mutex> l(m_);
    done_cv_.wait(l, [&] { return remaining_ == 0; });
    running_ = false;
  }

 private:
  struct Worker {
    std::thread th;
    std::binary_semaphore go{0};
  };

  void loop(Worker* self, unsigned index) {
    for (;;) {
      self->go.acquire();
      Job job;
      {
        std::lock_guard<std::mutex> l(m_);
        if (quit_) return;
        job = job_;
      }
      work(job, index);
      std::lock_guard<std::mutex> l(m_);
      if (--remaining_ == 0) done_cv_.notify_all();
    }
  }

  static void work(const Job& job, unsigned index) {
    const unsigned T = job.threads_per_block;
    const unsigned lane_index = index / T, t = index % T;
    Lane* lane = (*job.lanes)[lane_index].get();
    const dim3 g = job.grid, b = job.block;
    tl.bdim = b;
    tl.gdim = g;
    tl.lane = lane;
    tl.tid = uint3{t % b.x, (t / b.x) % b.y, t / (b.x * b.y)};
    for (const unsigned long long bl : (*job.order)[lane_index]) {
      tl.bid = uint3{static_cast<unsigned>(bl % g.x), static_cast<unsigned>((bl / g.x) % g.y),
                     static_cast<unsigned>(bl / (1ull * g.x * g.y))};
      try {
        (*job.body)();
      } catch (const Unwind&) {
        break;  // the launch failed; this lane's barrier is done with
      } catch (const std::exception& e) {
        job.launch->fail("CUDA thread " + str(tl.tid) + " of block " + str(tl.bid) + ": " +
                         e.what());
        lane->bar->arrive_and_drop();
        break;
      } catch (...) {
        job.launch->fail("CUDA thread " + str(tl.tid) + " of block " + str(tl.bid) +
                         ": an exception that is not a std::exception");
        lane->bar->arrive_and_drop();
        break;
      }
      lane->n_end.fetch_add(1);
      lane->bar->arrive_and_wait();
      if (lane->stop) break;
    }
    tl = Ctx{};
  }

  // Aborts the process when a launch makes no progress (no barrier phase completes) for too long:
  // an endless loop in a kernel cannot be interrupted any other way.
  void watch() {
    long limit = 120;
    if (const char* v = std::getenv("OCTA_EMUL_WATCHDOG_S")) limit = std::max(1L, std::atol(v));
    std::uint64_t last = g_progress.load(std::memory_order_relaxed);
    long idle = 0;
    std::unique_lock<std::mutex> l(m_);
    while (!quit_) {
      cv_.wait_for(l, std::chrono::seconds(1));
      if (quit_) break;
      const std::uint64_t now = g_progress.load(std::memory_order_relaxed);
      idle = (!running_ || now != last) ? 0 : idle + 1;
      last = now;
      if (idle >= limit) {
        fatal("kernel " + job_.launch->kernel + " (launched at " + job_.launch->site +
              ") made no progress for " + std::to_string(limit) +
              " s: an endless loop or a thread waiting for another that never comes "
              "(OCTA_EMUL_WATCHDOG_S sets the limit)");
      }
    }
  }

  std::mutex m_;
  std::condition_variable cv_, done_cv_;
  bool quit_ = false, running_ = false;
  unsigned remaining_ = 0;
  Job job_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::thread watchdog_;
};

Pool& pool() {
  static Pool p;
  return p;
}

std::vector<unsigned long long> block_order(unsigned long long n, const Options& o) {
  std::vector<unsigned long long> v(n);
  std::iota(v.begin(), v.end(), 0ull);
  if (o.order == BlockOrder::kReverse) {
    std::reverse(v.begin(), v.end());
  } else if (o.order == BlockOrder::kShuffled) {
    std::uint64_t s = o.shuffle_seed;
    auto next = [&s] {  // splitmix64
      std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      return z ^ (z >> 31);
    };
    for (unsigned long long i = n; i > 1; --i) std::swap(v[i - 1], v[next() % i]);
  }
  return v;
}

void set_error(cudaError_t status, std::string detail) {
  Global& g = global();
  if (g.sticky == cudaSuccess) g.sticky = status;
  g.detail = std::move(detail);
}

}  // namespace

// =============================================================================================
// Public functions
// =============================================================================================

Options& options() {
  return global().opts;
}

const std::vector<LaunchRecord>& launches() {
  return global().records;
}

std::vector<std::string> unchecked_launches() {
  std::vector<std::string> out;
  for (const LaunchRecord& r : global().records) {
    if (!r.checked) {
      out.push_back(r.kernel + " at " + r.site + (r.range.empty() ? "" : " in " + r.range) +
                    ": no cudaGetLastError() after the launch");
    }
  }
  return out;
}

void reset() {
  Global& g = global();
  g.records.clear();
  g.sticky = cudaSuccess;
  g.detail.clear();
}

namespace {
std::vector<KernelInfo>& kernel_registry() {
  static std::vector<KernelInfo> k;
  return k;
}
}  // namespace

bool register_kernels(const char* file, std::initializer_list<const char*> names) {
  for (const char* n : names) kernel_registry().push_back({file, n});
  return true;
}

const std::vector<KernelInfo>& kernels() {
  return kernel_registry();
}

void push_range(const char* name) {
  t_ranges.push_back(name);
}
void pop_range() {
  if (!t_ranges.empty()) t_ranges.pop_back();
}

void syncthreads(const char* file, int line) {
  Lane* lane = tl.lane;
  if (lane == nullptr) throw std::logic_error("__syncthreads() outside a kernel");
  int expected = 0;
  if (!lane->sync_line.compare_exchange_strong(expected, line) && expected != line) {
    lane->sync_mismatch.store(true);
  }
  const char* no_file = nullptr;
  if (!lane->sync_file.compare_exchange_strong(no_file, file) && no_file != file &&
      std::strcmp(no_file, file) != 0) {
    lane->sync_mismatch.store(true);
  }
  lane->n_sync.fetch_add(1);
  lane->bar->arrive_and_wait();
  if (lane->stop) throw Unwind{};
}

void* shared_storage(std::uint64_t id, std::size_t bytes, std::size_t align) {
  if (tl.lane == nullptr) throw std::logic_error("__shared__ variable outside a kernel");
  return tl.lane->alloc(id, bytes, align, false);
}

void* dynamic_shared_storage() {
  if (tl.lane == nullptr) throw std::logic_error("extern __shared__ outside a kernel");
  return tl.lane->alloc(0, 0, 16, true);
}

void launch_bounds(long long max_threads, long long /*min_blocks*/) {
  const long long threads = 1ll * tl.bdim.x * tl.bdim.y * tl.bdim.z;
  if (threads > max_threads) {
    throw std::length_error("a block of " + std::to_string(threads) +
                            " threads exceeds the kernel's __launch_bounds__(" +
                            std::to_string(max_threads) + ")");
  }
}

void run_grid(const Site& site, const Cfg& cfg, const std::function<void()>& body) {
  Global& g = global();
  // An earlier launch left unchecked is reported by unchecked_launches(); this one starts fresh.
  LaunchRecord rec;
  rec.kernel = site.kernel;
  rec.range = t_ranges.empty() ? "" : t_ranges.back();
  rec.site = std::string(site.file) + ":" + std::to_string(site.line);
  rec.grid = cfg.grid;
  rec.block = cfg.block;
  rec.dynamic_smem = cfg.smem;

  const dim3 gr = cfg.grid, b = cfg.block;
  const unsigned long long threads = 1ull * b.x * b.y * b.z;
  std::string bad;
  if (b.x == 0 || b.y == 0 || b.z == 0 || threads > kMaxThreadsPerBlock || b.x > 1024 ||
      b.y > 1024 || b.z > 64) {
    bad = "block " + str(b) + " (at most 1024 threads, 1024 x 1024 x 64)";
  } else if (gr.x == 0 || gr.y == 0 || gr.z == 0 || gr.x > 2147483647u || gr.y > 65535 ||
             gr.z > 65535) {
    bad = "grid " + str(gr) + " (at least 1, at most 2^31-1 x 65535 x 65535)";
  } else if (cfg.smem > kSharedLimit) {
    bad = std::to_string(cfg.smem) + " bytes of dynamic shared memory (at most " +
          std::to_string(kSharedLimit) + " without an opt-in)";
  }
  if (!bad.empty()) {
    set_error(cudaErrorInvalidConfiguration,
              "launch of " + rec.kernel + " at " + rec.site + " with " + bad);
    g.records.push_back(std::move(rec));
    return;
  }

  LaunchState st;
  st.kernel = rec.kernel;
  st.site = rec.site;
  st.grid = gr;
  st.block = b;
  st.dynamic_smem = cfg.smem;
  const std::vector<unsigned long long> order = block_order(rec.blocks(), g.opts);
  const unsigned lanes = static_cast<unsigned>(
      std::min<unsigned long long>(std::max(1u, g.opts.blocks_in_flight), order.size()));
  std::vector<std::vector<unsigned long long>> lane_order(lanes);
  for (unsigned long long k = 0; k < order.size(); ++k) {
    unsigned long long digits = 0;  // of k in base `lanes`
    for (unsigned long long v = k; lanes > 1 && v != 0; v /= lanes) digits += v % lanes;
    lane_order[digits % lanes].push_back(order[k]);
  }
  std::vector<std::unique_ptr<Lane>> lane_list;
  for (unsigned l = 0; l < lanes; ++l) {
    lane_list.push_back(std::make_unique<Lane>(&st, static_cast<std::ptrdiff_t>(threads)));
  }
  Job job;
  job.launch = &st;
  job.lanes = &lane_list;
  job.grid = gr;
  job.block = b;
  job.threads_per_block = static_cast<unsigned>(threads);
  job.order = &lane_order;
  job.body = &body;
  pool().run(job, lanes * static_cast<unsigned>(threads));

  rec.ran = true;
  for (const auto& l : lane_list) rec.static_smem = std::max(rec.static_smem, l->max_static_bytes);
  rec.checked = st.failed.load();  // a fault is thrown right here: nothing left to check
  g.records.push_back(std::move(rec));
  if (st.failed.load()) {
    throw KernelFault("emulated kernel " + st.kernel + " (launched at " + st.site + ", grid " +
                      str(gr) + ", block " + str(b) + "): " + st.message);
  }
}

// =============================================================================================
// CUDA runtime calls
// =============================================================================================

cudaError_t cudaGetLastError() {
  Global& g = global();
  if (!g.records.empty()) g.records.back().checked = true;
  const cudaError_t s = g.sticky;
  g.sticky = cudaSuccess;
  return s;
}

cudaError_t cudaPeekAtLastError() {
  Global& g = global();
  if (!g.records.empty()) g.records.back().checked = true;
  return g.sticky;
}

cudaError_t cudaMemsetAsync(void* dst, int value, std::size_t bytes, cudaStream_t) {
  if (bytes == 0) return cudaSuccess;
  if (dst == nullptr) {
    set_error(cudaErrorInvalidValue, "cudaMemsetAsync to a null pointer");
    return cudaErrorInvalidValue;
  }
  std::memset(dst, value, bytes);
  return cudaSuccess;
}

cudaError_t cudaMemset(void* dst, int value, std::size_t bytes) {
  return emul::cudaMemsetAsync(dst, value, bytes, nullptr);
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind,
                            cudaStream_t) {
  if (bytes == 0) return cudaSuccess;
  if (dst == nullptr || src == nullptr) {
    set_error(cudaErrorInvalidValue, "cudaMemcpyAsync with a null pointer");
    return cudaErrorInvalidValue;
  }
  std::memmove(dst, src, bytes);
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind) {
  return emul::cudaMemcpyAsync(dst, src, bytes, kind, nullptr);
}

cudaError_t cudaStreamSynchronize(cudaStream_t) {
  return global().sticky;
}

cudaError_t cudaDeviceSynchronize() {
  return global().sticky;
}

const char* error_name(cudaError_t status) {
  switch (status) {
    case cudaSuccess:
      return "cudaSuccess";
    case cudaErrorInvalidValue:
      return "cudaErrorInvalidValue";
    case cudaErrorInvalidConfiguration:
      return "cudaErrorInvalidConfiguration";
    case cudaErrorLaunchFailure:
      return "cudaErrorLaunchFailure";
    default:
      return "cudaError (other)";
  }
}

const std::string& last_error_detail() {
  return global().detail;
}

}  // namespace emul
