// grad_sync_bench: GradSync's bucketed all-reduce of a real model's gradients against one raw
// MPI_Allreduce of a flat float32 buffer of the same bytes, timed side by side in one run.
//
//   mpiexec -n 2 build-dist/grad_sync_bench [--iters 60] [--buckets 25:1,4:1,1:1] [--batch 8]
//
// The model is a DCGAN discriminator for 64×64 images (ndf 64, 2.77 M parameters, 10.6 MiB of float32
// gradients). Each --buckets entry is bucket_mb:first_bucket_mb. For each configuration the bench
// first checks GradSync's result against the raw all-reduce of the same local gradients, then
// alternates timed iterations (a barrier before each; median and best reported) of:
//   raw        MPI_Allreduce(MPI_SUM) of the flat buffer on MPI_COMM_WORLD — the baseline
//   raw + avg  the same, then one pass dividing by the world size (what an average costs by hand)
//   Communicator  one Communicator::all_reduce(kAverage) of the flat buffer
//   GradSync   arm() + finish() with no backward: every bucket is averaged and reduced as it stands
//   GradSync, loss pre-averaged  the same pass for a recipe that backpropagates average_loss(loss): the
//              gradients arrive divided by the world size, so the sync is the bucketed sum alone
// Bandwidths: algorithm bandwidth = bytes / time; bus bandwidth = algbw × 2(n−1)/n (as nccl-tests).
// Last, a training-style step: forward+backward alone, with GradSync overlapping, with GradSync
// launching everything in finish() (overlap = false), and followed by one raw all-reduce.
#include <mpi.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "dist/communicator.h"
#include "dist/grad_sync.h"
#include "dist/module_state.h"
#include "dist/mpi_check.h"
#include "dist/mpi_runtime.h"

namespace {

using Clock = std::chrono::steady_clock;

// DCGAN discriminator (Radford et al. 2015) for (N, 3, 64, 64) images.
struct DiscriminatorImpl : torch::nn::Module {
  explicit DiscriminatorImpl(int64_t ndf = 64) {
    auto conv = [](int64_t in, int64_t out, int64_t stride, int64_t pad) {
      return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 4).stride(stride).padding(pad).bias(false));
    };
    net = register_module(
        "net",
        torch::nn::Sequential(
            conv(3, ndf, 2, 1), torch::nn::LeakyReLU(torch::nn::LeakyReLUOptions().negative_slope(0.2)),
            conv(ndf, ndf * 2, 2, 1), torch::nn::BatchNorm2d(ndf * 2),
            torch::nn::LeakyReLU(torch::nn::LeakyReLUOptions().negative_slope(0.2)), conv(ndf * 2, ndf * 4, 2, 1),
            torch::nn::BatchNorm2d(ndf * 4), torch::nn::LeakyReLU(torch::nn::LeakyReLUOptions().negative_slope(0.2)),
            conv(ndf * 4, ndf * 8, 2, 1), torch::nn::BatchNorm2d(ndf * 8),
            torch::nn::LeakyReLU(torch::nn::LeakyReLUOptions().negative_slope(0.2)), conv(ndf * 8, 1, 1, 0)));
  }
  torch::Tensor forward(const torch::Tensor& x) { return net->forward(x).view({-1}); }
  torch::nn::Sequential net{nullptr};
};
TORCH_MODULE(Discriminator);

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double best(const std::vector<double>& v) {
  return *std::min_element(v.begin(), v.end());
}

// The slowest rank's time is the collective's time.
double slowest(double t) {
  double out = t;
  GANTRY_MPI_CHECK(MPI_Allreduce(&t, &out, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD));
  return out;
}

torch::Tensor flat_grads(torch::nn::Module& m) {
  std::vector<torch::Tensor> g;
  for (auto& p : m.parameters()) g.push_back(p.grad().detach().reshape({-1}));
  return torch::cat(g);
}

struct Args {
  int iters = 60;
  int64_t batch = 8;
  std::vector<std::pair<double, double>> buckets{{25, 1}, {4, 1}, {1, 1}};
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i], value = argv[i + 1];
    if (key == "--iters") {
      a.iters = std::max(1, std::stoi(value));
    } else if (key == "--batch") {
      a.batch = std::max<int64_t>(1, std::stoll(value));
    } else if (key == "--buckets") {
      a.buckets.clear();
      std::stringstream in(value);
      for (std::string item; std::getline(in, item, ',');) {
        const auto colon = item.find(':');
        a.buckets.emplace_back(std::stod(item.substr(0, colon)),
                               colon == std::string::npos ? 1.0 : std::stod(item.substr(colon + 1)));
      }
    } else {
      throw std::invalid_argument("unknown option " + key + " (--iters N, --batch B, --buckets MB:FIRST_MB,...)");
    }
  }
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  gantry::MpiRuntime mpi(argc, argv);
  const gantry::DistContext ctx = mpi.context();
  try {
    const Args args = parse(argc, argv);
    at::set_num_threads(gantry::intra_op_threads(ctx, 0));
    auto comm = gantry::make_communicator("mpi");
    const bool root = ctx.is_root();

    torch::manual_seed(0);
    Discriminator d;
    gantry::broadcast_state(*comm, *d);
    int64_t numel = 0;
    for (auto& p : d->parameters()) numel += p.numel();
    const double bytes = static_cast<double>(numel) * 4;
    const double bus = 2.0 * (ctx.world_size - 1) / ctx.world_size;
    torch::manual_seed(1 + ctx.rank);
    const torch::Tensor images = torch::randn({args.batch, 3, 64, 64});
    auto backward = [&] { d(images).mean().backward(); };
    auto backward_prescaled = [&](gantry::GradSync& s) { s.average_loss(d(images).mean()).backward(); };
    if (root)
      std::printf(
          "grad_sync_bench: %d ranks, DCGAN discriminator, %lld parameters = %.2f MiB of float32 gradients, "
          "%d intra-op threads per rank, %d timed iterations\n",
          ctx.world_size, static_cast<long long>(numel), bytes / (1 << 20), at::get_num_threads(), args.iters);

    torch::Tensor raw = torch::empty({numel});
    double last_raw = 0;
    for (const auto& [bucket_mb, first_mb] : args.buckets) {
      gantry::GradSyncOptions options;
      options.bucket_bytes = static_cast<int64_t>(bucket_mb * (1 << 20));
      options.first_bucket_bytes = static_cast<int64_t>(first_mb * (1 << 20));
      gantry::GradSync sync(*comm, options);
      sync.add_group("D", {d.ptr()});

      // Check first: GradSync's average equals the raw all-reduce of the same local gradients.
      for (auto& p : d->parameters()) p.mutable_grad() = torch::Tensor();
      backward();
      torch::Tensor expected = flat_grads(*d);
      GANTRY_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, expected.data_ptr(), static_cast<int>(numel), MPI_FLOAT, MPI_SUM,
                                     MPI_COMM_WORLD));
      expected.div_(ctx.world_size);
      for (auto& p : d->parameters()) p.mutable_grad().zero_();
      sync.arm("D");
      backward();
      sync.finish("D");
      double error = (flat_grads(*d) - expected).abs().max().item<double>();
      for (auto& p : d->parameters()) p.mutable_grad().zero_();
      sync.arm("D");
      backward_prescaled(sync);
      sync.finish("D");
      error = std::max(error, (flat_grads(*d) - expected).abs().max().item<double>());
      const double scale = expected.abs().max().item<double>();
      if (!(error <= 1e-5 * scale)) {
        std::fprintf(stderr, "grad_sync_bench: rank %d: GradSync result differs from MPI_Allreduce by %g\n", ctx.rank,
                     error);
        mpi.abort(1);
      }

      // Timed: the sync alone (arm + finish with no backward reduces every bucket as it stands), and the
      // raw all-reduce, alternating.
      std::vector<double> t_sync, t_raw, t_avg, t_comm, t_pre;
      torch::Tensor one = torch::ones({});
      raw.copy_(expected);
      torch::Tensor by_hand = expected.clone(), through_comm = expected.clone();
      const float inverse = 1.0f / static_cast<float>(ctx.world_size);
      for (int i = -3; i < args.iters; ++i) {  // 3 warm-up rounds
        if (i % 32 == 0) raw.copy_(expected);  // the raw sums double each round: keep them finite
        GANTRY_MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
        auto start = Clock::now();
        sync.arm("D");
        sync.finish("D");
        const double ts = slowest(seconds_since(start));
        GANTRY_MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
        start = Clock::now();
        sync.arm("D");
        sync.average_loss(one);  // what a recipe does to its loss before backward
        sync.finish("D");
        const double tp = slowest(seconds_since(start));
        GANTRY_MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
        start = Clock::now();
        GANTRY_MPI_CHECK(
            MPI_Allreduce(MPI_IN_PLACE, raw.data_ptr(), static_cast<int>(numel), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
        const double tr = slowest(seconds_since(start));
        GANTRY_MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
        start = Clock::now();
        GANTRY_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, by_hand.data_ptr(), static_cast<int>(numel), MPI_FLOAT, MPI_SUM,
                                       MPI_COMM_WORLD));
        float* h = by_hand.data_ptr<float>();
        for (int64_t k = 0; k < numel; ++k) h[k] *= inverse;
        const double ta = slowest(seconds_since(start));
        GANTRY_MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
        start = Clock::now();
        comm->all_reduce(through_comm, gantry::ReduceOp::kAverage);
        const double tc = slowest(seconds_since(start));
        if (i >= 0) t_sync.push_back(ts), t_raw.push_back(tr), t_avg.push_back(ta), t_comm.push_back(tc), t_pre.push_back(tp);
      }
      last_raw = median(t_raw);
      if (root) {
        std::printf("buckets %g MiB (first %g MiB): %zu buckets    median (best of %d)\n", bucket_mb, first_mb,
                    sync.bucket_bytes("D").size(), args.iters);
        auto row = [&](const char* name, const std::vector<double>& t) {
          const double m = median(t), b = best(t);
          std::printf("  %-29s %7.3f ms (%7.3f)  algbw %5.2f GB/s  busbw %5.2f GB/s  %4.0f%% of raw (%4.0f%%)\n", name,
                      m * 1e3, b * 1e3, bytes / m / 1e9, bytes / m / 1e9 * bus, 100.0 * median(t_raw) / m,
                      100.0 * best(t_raw) / b);
        };
        row("raw", t_raw);
        row("raw + avg", t_avg);
        row("Communicator", t_comm);
        row("GradSync", t_sync);
        row("GradSync, loss pre-averaged", t_pre);
      }

      // A training-style step with the last configuration: forward+backward alone; with GradSync
      // launching buckets from the hooks (overlap); with GradSync launching them all in finish()
      // (overlap = false); and followed by one raw all-reduce.
      if (&bucket_mb == &args.buckets.back().first) {
        gantry::GradSyncOptions late_options = options;
        late_options.overlap = false;
        gantry::GradSync late(*comm, late_options);
        late.add_group("D", {d.ptr()});
        std::vector<double> t_back, t_overlap, t_late;
        auto synced_step = [&](gantry::GradSync& s) {
          for (auto& p : d->parameters()) p.mutable_grad().zero_();
          GANTRY_MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
          const auto start = Clock::now();
          s.arm("D");
          backward();
          s.finish("D");
          return slowest(seconds_since(start));
        };
        for (int i = -2; i < std::max(3, args.iters / 3); ++i) {
          for (auto& p : d->parameters()) p.mutable_grad().zero_();
          GANTRY_MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
          const auto start = Clock::now();
          backward();
          const double tb = slowest(seconds_since(start));
          const double to = synced_step(sync), tl = synced_step(late);
          if (i >= 0) t_back.push_back(tb), t_overlap.push_back(to), t_late.push_back(tl);
        }
        if (root)
          std::printf(
              "step (forward+backward, batch %lld per rank), medians: alone %.1f ms; + GradSync overlapped %.1f ms; "
              "+ GradSync in finish() %.1f ms; + one raw all-reduce after %.1f ms\n",
              static_cast<long long>(args.batch), median(t_back) * 1e3, median(t_overlap) * 1e3, median(t_late) * 1e3,
              (median(t_back) + last_raw) * 1e3);
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "grad_sync_bench: error: %s\n", e.what());
    mpi.abort(1);
  }
  return 0;
}
