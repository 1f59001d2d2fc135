// tests/test_batchnorm_ranks.cpp: the CPU reference's BatchNorm with --sync-bn's cross-rank sums
// (engine/cpu/batchnorm_ranks.hpp), in double, with 3 ranks played by 3 threads in one process
// (their all-reduce a barrier and a rank-order sum): their shares of one batch, of unequal sizes,
// give one batch's forward (output, saved and running statistics) and, with each rank's dy the
// gradient of its share's mean loss, one batch's input gradient (scaled by the share's weight) and
// parameter gradients (summed with those weights, as the gradient reduction does). The same
// through train_gpu under mpirun, both CPU backends: test_app_mpirun.cpp.
#include <catch2/catch.hpp>

#include <barrier>
#include <thread>
#include <vector>

#include "engine/core/random_fill.hpp"
#include "engine/cpu/batchnorm_ranks.hpp"
#include "engine/cpu/ops.hpp"
#include "engine/dist/communicator.hpp"
#include "tests/support/compare.hpp"

namespace {

constexpr int kRanks = 3, kN = 7, kC = 3, kHW = 5;  // shares of 2, 2 and 3 images
constexpr std::size_t kImage = static_cast<std::size_t>(kC) * kHW;

// `kRanks` threads' all-reduce: each puts its values in its slot, then every one sums the slots
// in rank order.
class ThreadRanks {
 public:
  void allreduce_sum(int rank, double* values, std::size_t count) {
    slots_[static_cast<std::size_t>(rank)].assign(values, values + count);
    barrier_.arrive_and_wait();
    for (std::size_t i = 0; i < count; ++i) {
      double sum = 0.0;
      for (const auto& slot : slots_) sum += slot[i];
      values[i] = sum;
    }
    barrier_.arrive_and_wait();  // nobody refills a slot before every rank has read it
  }

 private:
  std::vector<std::vector<double>> slots_{kRanks};
  std::barrier<> barrier_{kRanks};
};

// Runs body(rank, share, ranks) on kRanks threads at once.
template <class Body>
void on_ranks(const Body& body) {
  ThreadRanks comm;
  std::vector<std::thread> threads;
  for (int r = 0; r < kRanks; ++r) {
    threads.emplace_back([&comm, &body, r] {
      const octa::dist::Share share = octa::dist::share_of(kN, r, kRanks);
      octa::cpu::BatchNormRanks ranks;
      ranks.allreduce_sum = [&comm, r](double* v, std::size_t n) { comm.allreduce_sum(r, v, n); };
      ranks.weight = static_cast<double>(share.count()) / kN;
      body(r, share, ranks);
    });
  }
  for (auto& t : threads) t.join();
}

std::vector<double> slice(const std::vector<double>& v, const octa::dist::Share& s) {
  return {v.begin() + static_cast<std::ptrdiff_t>(s.begin * kImage),
          v.begin() + static_cast<std::ptrdiff_t>(s.end * kImage)};
}

}  // namespace

TEST_CASE("BatchNorm over ranks' shares with their sums all-reduced is one batch's BatchNorm",
          "[cpu][ops][dist]") {
  const std::vector<double> x = octa::random_vector<double>(kN * kImage, 41, -2.0, 3.0);
  const std::vector<double> gamma = octa::random_vector<double>(kC, 42, 0.5, 1.5);
  const std::vector<double> beta = octa::random_vector<double>(kC, 43);
  const std::vector<double> g = octa::random_vector<double>(kN * kImage, 44);  // dL/dy, global
  const std::vector<double> mean0 = octa::random_vector<double>(kC, 45);
  const std::vector<double> var0 = octa::random_vector<double>(kC, 46, 0.5, 2.0);
  constexpr double kEps = 1e-5, kMomentum = 0.1;

  // One process, the whole batch.
  std::vector<double> out(x.size()), mean(kC), invstd(kC), rmean = mean0, rvar = var0;
  octa::cpu::batchnorm_forward_train(out.data(), mean.data(), invstd.data(), rmean.data(),
                                     rvar.data(), x.data(), gamma.data(), beta.data(), kN, kC, kHW,
                                     kEps, kMomentum);
  std::vector<double> din(x.size()), dgamma(kC), dbeta(kC);
  octa::cpu::batchnorm_backward(din.data(), dgamma.data(), dbeta.data(), g.data(), x.data(),
                                mean.data(), invstd.data(), gamma.data(), kN, kC, kHW);

  // kRanks ranks, each its share; dy there is its share's mean loss's gradient: g / weight.
  std::vector<std::vector<double>> r_out(kRanks), r_mean(kRanks), r_invstd(kRanks),
      r_rmean(kRanks, mean0), r_rvar(kRanks, var0), r_din(kRanks), r_dgamma(kRanks),
      r_dbeta(kRanks);
  std::vector<double> weights(kRanks);
  on_ranks([&](int r, const octa::dist::Share& share, const octa::cpu::BatchNormRanks& ranks) {
    const auto q = static_cast<std::size_t>(r);
    weights[q] = ranks.weight;
    const std::vector<double> xs = slice(x, share);
    std::vector<double> dy = slice(g, share);
    for (double& v : dy) v /= ranks.weight;
    r_out[q].resize(xs.size());
    r_mean[q].resize(kC);
    r_invstd[q].resize(kC);
    octa::cpu::batchnorm_forward_train(
        r_out[q].data(), r_mean[q].data(), r_invstd[q].data(), r_rmean[q].data(), r_rvar[q].data(),
        xs.data(), gamma.data(), beta.data(), share.count(), kC, kHW, kEps, kMomentum, &ranks);
    r_din[q].resize(xs.size());
    r_dgamma[q].resize(kC);
    r_dbeta[q].resize(kC);
    octa::cpu::batchnorm_backward(r_din[q].data(), r_dgamma[q].data(), r_dbeta[q].data(), dy.data(),
                                  xs.data(), r_mean[q].data(), r_invstd[q].data(), gamma.data(),
                                  share.count(), kC, kHW, &ranks);
  });

  std::vector<double> sum_dgamma(kC, 0.0), sum_dbeta(kC, 0.0);
  for (int r = 0; r < kRanks; ++r) {
    INFO("rank " << r);
    const auto q = static_cast<std::size_t>(r);
    const octa::dist::Share share = octa::dist::share_of(kN, r, kRanks);
    const std::vector<double> want_out = slice(out, share), want_din = slice(din, share);
    OCTA_CHECK_CLOSE("out", r_out[q].data(), want_out.data(), want_out.size(),
                     octa::tol::kGradCheck);
    OCTA_CHECK_CLOSE("save_mean", r_mean[q].data(), mean.data(), kC, octa::tol::kGradCheck);
    OCTA_CHECK_CLOSE("save_invstd", r_invstd[q].data(), invstd.data(), kC, octa::tol::kGradCheck);
    // The running statistics: the global batch's, the variance unbiased with the global count.
    OCTA_CHECK_CLOSE("running_mean", r_rmean[q].data(), rmean.data(), kC, octa::tol::kGradCheck);
    OCTA_CHECK_CLOSE("running_var", r_rvar[q].data(), rvar.data(), kC, octa::tol::kGradCheck);
    // The share's input gradient of its own mean loss: 1 / weight times the global one's.
    std::vector<double> scaled = r_din[q];
    for (double& v : scaled) v *= weights[q];
    OCTA_CHECK_CLOSE("din * weight", scaled.data(), want_din.data(), want_din.size(),
                     octa::tol::kGradCheck);
    for (int c = 0; c < kC; ++c) {
      sum_dgamma[static_cast<std::size_t>(c)] +=
          weights[q] * r_dgamma[q][static_cast<std::size_t>(c)];
      sum_dbeta[static_cast<std::size_t>(c)] +=
          weights[q] * r_dbeta[q][static_cast<std::size_t>(c)];
    }
  }
  OCTA_CHECK_CLOSE("weighted sum of dgamma", sum_dgamma.data(), dgamma.data(), kC,
                   octa::tol::kGradCheck);
  OCTA_CHECK_CLOSE("weighted sum of dbeta", sum_dbeta.data(), dbeta.data(), kC,
                   octa::tol::kGradCheck);

  // And per-rank BatchNorm (no ranks) is not: its statistics are the share's own.
  std::vector<double> own_out(2 * kImage), own_mean(kC), own_invstd(kC), m = mean0, v = var0;
  octa::cpu::batchnorm_forward_train(own_out.data(), own_mean.data(), own_invstd.data(), m.data(),
                                     v.data(), x.data(), gamma.data(), beta.data(), 2, kC, kHW,
                                     kEps, kMomentum);
  CHECK_FALSE(
      octa::test::compare("per-rank mean", own_mean.data(), mean.data(), kC, octa::tol::kGradCheck)
          .ok);
}
