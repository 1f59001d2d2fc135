// bench/bench_allreduce.cpp: the time of one gradient all-reduce on this machine's MPI, at the
// sizes data-parallel training sums every step (model A's trainable parameters, 1.68 MB of float32;
// model B's, 0.11 MB), for octa's deterministic all-reduce (engine/dist/: MPI_Alltoallv, a sum in
// rank order, MPI_Allgatherv) and for MPI_Allreduce itself (whose order MPI does not fix), so the
// cost of determinism shows. Run it under mpirun; rank 0 prints one line per size and method (the
// median of --reps timed calls after --warmup untimed ones, each between barriers) and, with
// --json, writes them as JSON. Figures go to docs/SCALING.md.
//
//   mpirun -np 2 build/bench/bench_allreduce
//   mpirun --oversubscribe -np 4 build/bench/bench_allreduce --reps 200 --json out.json
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "engine/core/atomic_file.hpp"
#include "engine/dist/communicator.hpp"
#include "engine/model/param_table.hpp"

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 100, warmup = 10;
  std::string json_out;
  CLI::App app{
      "bench_allreduce: one gradient all-reduce of models A and B on this machine's MPI "
      "(run under mpirun)"};
  app.add_option("--reps", reps, "Timed all-reduces per size and method")
      ->check(CLI::PositiveNumber);
  app.add_option("--warmup", warmup, "Untimed all-reduces first")->check(CLI::NonNegativeNumber);
  app.add_option("--json", json_out, "Also write the figures as JSON here (rank 0)");
  CLI11_PARSE(app, argc, argv);
  try {
    // make_communicator() is MPI only under an MPI launcher; alone this is one rank of MPI too.
    const auto comm = octa::dist::launched_by_mpi() ? octa::dist::make_communicator() : nullptr;
    if (!comm) {
      std::fprintf(stderr, "bench_allreduce: run it under mpirun (e.g. mpirun -np 2 %s)\n",
                   argv[0]);
      return 2;
    }
    nlohmann::json results = nlohmann::json::array();
    for (const octa::Arch arch : {octa::Arch::kA, octa::Arch::kB}) {
      const std::size_t n = octa::ParamTable::for_arch(arch).num_trainable();
      std::vector<float> grads(n), work(n);
      for (std::size_t i = 0; i < n; ++i) grads[i] = 1e-3f * static_cast<float>((i * 7919) % 1000);
      for (const std::string method : {"octa (rank order)", "MPI_Allreduce"}) {
        std::vector<double> us;
        for (int r = 0; r < warmup + reps; ++r) {
          work = grads;
          MPI_Barrier(MPI_COMM_WORLD);
          const auto t0 = std::chrono::steady_clock::now();
          if (method == "MPI_Allreduce") {
            MPI_Allreduce(MPI_IN_PLACE, work.data(), static_cast<int>(n), MPI_FLOAT, MPI_SUM,
                          MPI_COMM_WORLD);
          } else {
            comm->allreduce_sum(work.data(), n);
          }
          const auto t1 = std::chrono::steady_clock::now();
          if (r >= warmup) us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
        }
        // The slowest rank's median is the step's.
        double mine = median(us), slowest = 0;
        MPI_Allreduce(&mine, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        const double mb = static_cast<double>(n * sizeof(float)) / 1e6;
        if (comm->rank() == 0) {
          std::printf(
              "model %s: %zu floats (%.3f MB), %d ranks, %-18s median %9.1f us (%.2f GB/s "
              "algorithm bandwidth)\n",
              octa::arch_name(arch), n, mb, comm->size(), method.c_str(), slowest,
              mb / 1e3 / (slowest * 1e-6));
        }
        results.push_back({{"model", octa::arch_name(arch)},
                           {"floats", n},
                           {"ranks", comm->size()},
                           {"method", method},
                           {"median_us", slowest},
                           {"reps", reps}});
      }
    }
    if (comm->rank() == 0 && !json_out.empty()) {
      octa::write_file_atomically(json_out, results.dump(2) + "\n");
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_allreduce: error: %s\n", e.what());
    return 1;
  }
}
