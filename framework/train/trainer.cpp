#include "train/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include "checkpoint/checkpoint.h"
#include "core/errors.h"
#include "core/fs.h"
#include "core/log.h"
#include "dist/grad_sync.h"
#include "dist/module_state.h"
#include "report/doctor.h"
#include "report/image.h"
#include "report/metrics.h"
#include "report/progress.h"
#include "train/buffers.h"
#include "train/schedule.h"
#include "train/signals.h"

namespace gantry {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using Networks = std::vector<std::pair<std::string, std::shared_ptr<torch::nn::Module>>>;

void add_common_keys(Schema& s, const std::vector<std::string>& recipes) {
  s.add_string("run.recipe", recipes.empty() ? "" : recipes.front(), "registered recipe", recipes)
      .add_int("run.seed", 0, "one seed; every rank derives its own streams from it", 0)
      .add_string("data.path", "data/fashion-mnist/train", "training dataset directory")
      .add_string("data.eval_path", "", "held-out dataset directory (empty: no evaluation)")
      .add_int("data.workers", 2, "loader threads per rank", 0, 64)
      .add_int("data.prefetch", 4, "batches in flight per rank", 1, 1024)
      .add_bool("data.flip", false, "random horizontal flip")
      .add_int("train.steps", 1000, "total optimizer steps of the run (a resumed run continues to it)", 1)
      .add_int("train.batch_size", 128, "global batch (each rank takes batch_size / world size)", 1)
      .add_real("train.lr", 1e-3, "base learning rate", 0)
      .add_string("train.lr_schedule", "constant", "learning-rate schedule", {"constant", "linear", "cosine"})
      .add_int("train.warmup_steps", 0, "linear warm-up steps", 0)
      .add_int("train.log_every", 50, "progress line and metrics.jsonl every N steps", 1)
      .add_int("train.sample_every", 500, "sample grid every N steps (0: only at the end)", 0)
      .add_int("train.eval_every", 1000, "held-out evaluation every N steps (0: only at the end)", 0)
      .add_int("train.eval_batches", 0, "held-out batches per evaluation (0: the whole set)", 0)
      .add_int("train.checkpoint_every", 1000, "checkpoint every N steps (and at the end)", 1)
      .add_int("train.keep_last", 3, "checkpoints kept: the newest K ...", 1)
      .add_int("train.keep_every", 0, "... plus every checkpoint at a multiple of N steps (0: none)", 0)
      .add_int("train.micro_batches", 1, "split each rank's batch into N micro-batches (gradient accumulation)", 1)
      .add_real("train.clip_grad_norm", 0, "clip gradients to this global L2 norm after the reduction (0: off)", 0)
      .add_int("train.threads", 0, "LibTorch intra-op threads per rank (0: cores / ranks on the node)", 0)
      .add_string("dist.backend", "auto", "gradient reduction backend", {"auto", "mpi", "nccl"})
      .add_real("dist.bucket_mb", 25, "gradient bucket size, MiB", 0.001)
      .add_real("dist.first_bucket_mb", 1, "first (earliest-launched) bucket size, MiB", 0.001)
      .add_string("dist.overlap", "auto",
                  "start bucket all-reduces during backward: on, off, auto (on for GPUs; off on CPUs, whose "
                  "cores are all busy computing)",
                  {"auto", "on", "off"})
      .add_real("dist.timeout_s", 600, "longest wait in one collective before the job aborts naming the missing ranks",
                1);
}

namespace {

// RNG helpers: the default CPU generator's state as a uint8 tensor.
torch::Tensor cpu_rng_state() {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}
void set_cpu_rng_state(const torch::Tensor& state) {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}
// The training device's generator (CUDA runs): the same, through the device-generic context.
torch::Tensor device_rng_state(const torch::Device& device) {
  auto gen = at::globalContext().defaultGenerator(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}
void set_device_rng_state(const torch::Device& device, const torch::Tensor& state) {
  auto gen = at::globalContext().defaultGenerator(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

// Runs fn with the RNG streams (CPU, and the training device's) put aside: sampling and evaluation
// never perturb training.
template <class Fn>
void with_rng_aside(uint64_t seed, const torch::Device& device, Fn&& fn) {
  torch::Tensor saved = cpu_rng_state(), saved_device;
  if (device.is_cuda()) saved_device = device_rng_state(device);
  torch::manual_seed(seed);
  fn();
  set_cpu_rng_state(saved);
  if (device.is_cuda()) set_device_rng_state(device, saved_device);
}

// Runs fn with every network's buffers averaged across ranks, then restores this rank's own buffers
// (training keeps local BatchNorm statistics; checkpoints and evaluation see the average).
template <class Fn>
void with_averaged_buffers(Communicator& comm, const Networks& nets, Fn&& fn) {
  std::vector<std::shared_ptr<torch::nn::Module>> modules;
  for (const auto& [name, net] : nets) modules.push_back(net);
  BufferSnapshot keep(modules);
  {
    torch::NoGradGuard no_grad;
    for (const auto& net : modules) average_buffers(comm, *net);
  }
  fn();
}

// Every network's floating-point buffers (BatchNorm running statistics) as one float64 vector: this
// rank's own values, which training keeps local (exact round trip for float32 / float16 buffers).
std::vector<torch::Tensor> float_buffers(const Networks& nets) {
  std::vector<torch::Tensor> out;
  for (const auto& [name, net] : nets)
    for (auto& b : net->buffers())
      if (b.is_floating_point()) out.push_back(b);
  return out;
}
torch::Tensor flat_local_buffers(const Networks& nets) {
  std::vector<torch::Tensor> parts;
  for (auto& b : float_buffers(nets)) parts.push_back(b.detach().reshape({-1}).to(torch::kCPU, torch::kFloat64));
  return parts.empty() ? torch::zeros({0}, torch::kFloat64) : torch::cat(parts);
}
void restore_local_buffers(const Networks& nets, const torch::Tensor& flat) {
  torch::NoGradGuard no_grad;
  int64_t offset = 0;
  for (auto& b : float_buffers(nets)) {
    b.copy_(flat.narrow(0, offset, b.numel()).view(b.sizes()));
    offset += b.numel();
  }
}

std::string broadcast_string(Communicator& comm, const std::string& value) {
  int64_t n = comm.max(comm.rank() == 0 ? static_cast<int64_t>(value.size()) : 0);
  auto buf = torch::zeros({n}, torch::kUInt8);
  if (comm.rank() == 0 && n > 0) std::memcpy(buf.data_ptr<uint8_t>(), value.data(), static_cast<size_t>(n));
  comm.broadcast(buf, 0);
  return std::string(reinterpret_cast<const char*>(buf.data_ptr<uint8_t>()), static_cast<size_t>(n));
}

CheckpointMeta read_meta(const std::string& dir) {
  auto j = nlohmann::json::parse(read_file((fs::path(dir) / "manifest.json").string()));
  CheckpointMeta m;
  m.step = j.at("step");
  m.data = {j.at("data_position").at("epoch"), j.at("data_position").at("index")};
  m.world_size = j.at("world_size");
  m.recipe = j.at("recipe");
  m.config_ini = j.at("config");
  return m;
}

std::string losses_text(const Losses& losses) {
  std::ostringstream out;
  out.precision(4);
  for (size_t i = 0; i < losses.size(); ++i) out << (i ? " " : "") << losses[i].first << " " << losses[i].second;
  return out.str();
}

// Averages named values across ranks (same names, same order on every rank).
Losses average_across(Communicator& comm, const Losses& local, double divisor) {
  auto t = torch::empty({static_cast<int64_t>(local.size())}, torch::kFloat64);
  for (size_t i = 0; i < local.size(); ++i) t[static_cast<int64_t>(i)] = local[i].second / divisor;
  comm.all_reduce(t, ReduceOp::kAverage);
  Losses out = local;
  for (size_t i = 0; i < out.size(); ++i) out[i].second = t[static_cast<int64_t>(i)].item<double>();
  return out;
}

}  // namespace

int run_training(const TrainSetup& s) {
  const Config& c = s.config;
  Communicator& comm = s.comm;
  const DistContext ctx = comm.context();
  const bool root = ctx.rank == 0;
  const int64_t total = c.int64("train.steps"), global_batch = c.int64("train.batch_size");
  if (global_batch % ctx.world_size != 0)
    throw UsageError("train.batch_size: " + std::to_string(global_batch) + " does not divide by the world size " +
                     std::to_string(ctx.world_size) + " (use a multiple of it)");
  const fs::path run(s.run_dir);
  fs::create_directories(run / "samples");
  fs::create_directories(run / "logs");
  std::ofstream rank_log(run / "logs" / ("rank-" + std::to_string(ctx.rank) + ".log"), std::ios::app);
  auto note = [&](const std::string& line) {
    rank_log << line << std::endl;
    log_info(line, ctx.rank);
  };

  // Which checkpoint to resume from: rank 0 verifies, everyone loads the same directory — or every rank
  // raises rank 0's error.
  std::string decision;
  if (root) {
    try {
      auto found = find_resume(s.run_dir, s.resume);
      decision = "ok:" + (found ? found->dir : std::string());
    } catch (const CheckpointError& e) {
      decision = std::string("error:") + e.what();
    }
  }
  decision = broadcast_string(comm, decision);
  if (decision.rfind("error:", 0) == 0) throw CheckpointError(decision.substr(6));
  std::string resume_dir = decision.substr(3);
  CheckpointMeta meta;
  if (!resume_dir.empty()) {
    meta = read_meta(resume_dir);
    if (meta.recipe != c.str("run.recipe"))
      throw CheckpointError(
          at(resume_dir, "was written by recipe '" + meta.recipe + "', this run is '" + c.str("run.recipe") + "'"));
  }

  const uint64_t seed = static_cast<uint64_t>(c.int64("run.seed"));
  torch::manual_seed(seed * 1000003 + static_cast<uint64_t>(ctx.rank));
  GradSyncOptions sync_options;
  sync_options.bucket_bytes = static_cast<int64_t>(c.real("dist.bucket_mb") * (1 << 20));
  sync_options.first_bucket_bytes = static_cast<int64_t>(c.real("dist.first_bucket_mb") * (1 << 20));
  sync_options.overlap = c.str("dist.overlap") == "on" || (c.str("dist.overlap") == "auto" && s.device.is_cuda());
  GradSync sync(comm, sync_options);
  std::unique_ptr<Recipe> recipe = s.make_recipe(RecipeEnv{c, s.shape, s.device, comm, sync});
  const Networks nets = recipe->networks();
  const auto optimizers = recipe->optimizers();
  std::vector<std::vector<double>> base_lr;  // per optimizer, per param group (before a resume overwrites them)
  for (const auto& [name, opt] : optimizers) {
    base_lr.emplace_back();
    for (auto& g : opt->param_groups()) base_lr.back().push_back(g.options().get_lr());
  }

  int64_t step = 0;
  bool same_world_resume = false;
  if (!resume_dir.empty()) {
    for (const auto& [name, net] : nets) load_from_file(net, (fs::path(resume_dir) / (name + ".pt")).string());
    for (const auto& [name, opt] : optimizers)
      load_from_file(*opt, (fs::path(resume_dir) / (name + ".optim.pt")).string());
    torch::Tensor states = load_tensor((fs::path(resume_dir) / "rng.pt").string());
    const fs::path device_rng = fs::path(resume_dir) / "rng_device.pt";
    if (meta.world_size == ctx.world_size && states.size(0) == ctx.world_size) {
      set_cpu_rng_state(states[ctx.rank].clone());
      if (s.device.is_cuda() && fs::exists(device_rng))
        set_device_rng_state(s.device, load_tensor(device_rng.string())[ctx.rank].clone());
    } else {  // another world size: fresh per-rank streams, derived from the seed and the step
      torch::manual_seed(seed * 1000003 + static_cast<uint64_t>(ctx.rank) + 7919 * static_cast<uint64_t>(meta.step));
    }
    step = meta.step;
    same_world_resume = meta.world_size == ctx.world_size;
    note("resumed from " + resume_dir + " at step " + std::to_string(step) + " (world size " +
         std::to_string(meta.world_size) + " -> " + std::to_string(ctx.world_size) + ")");
  }
  for (const auto& [name, net] : nets) broadcast_state(comm, *net);
  // The checkpointed networks hold averaged BatchNorm statistics; at the same world size every rank
  // gets its own back, so a resumed run continues exactly as the uninterrupted one would.
  const fs::path local_buffers = fs::path(resume_dir) / "buffers_local.pt";
  if (same_world_resume && fs::exists(local_buffers)) {
    torch::Tensor all = load_tensor(local_buffers.string());
    if (all.dim() == 2 && all.size(0) == ctx.world_size && all.size(1) == flat_local_buffers(nets).numel())
      restore_local_buffers(nets, all[ctx.rank]);
  }

  std::unique_ptr<BatchSource> train = s.make_train_source(meta.data);
  if (root) {
    write_file_atomic((run / "config.ini").string(), c.to_ini());
    std::ostringstream table;
    c.print_table(table);
    std::cout << "configuration (* = not the default):\n" << table.str();
    for (const auto& [k, v] : runtime_facts()) std::cout << "  " << k << ": " << v << "\n";
    std::cout << "  ranks: " << ctx.world_size << ", run directory: " << fs::absolute(run).string() << std::endl;
    if (blas_is_reference()) log_warn("LibTorch uses the reference BLAS (about 10x slower): run launch/setup.sh");
  }

  // Rank 0 alone owns metrics.jsonl: opening it trims lines past the resume step and replaces the file,
  // so another rank opening it too (later, e.g. on a remote host) would orphan rank 0's open file.
  std::optional<MetricsLog> metrics_log;
  if (root) metrics_log.emplace((run / "metrics.jsonl").string(), step);
  Checkpointer checkpointer(s.run_dir, {c.int64("train.keep_last"), c.int64("train.keep_every")});
  const LrSchedule schedule = parse_schedule(c.str("train.lr_schedule"));
  const int64_t warmup = c.int64("train.warmup_steps"), log_every = c.int64("train.log_every");
  const int64_t sample_every = c.int64("train.sample_every"), eval_every = c.int64("train.eval_every");
  const int64_t checkpoint_every = c.int64("train.checkpoint_every");
  const auto start_time = Clock::now();
  double stall_total = 0;

  Batch last_batch;
  auto checkpoint = [&](int64_t at_step) {
    auto t0 = Clock::now();
    Snapshot snap;
    snap.meta = {at_step, train->position(), ctx.world_size, c.str("run.recipe"), c.to_ini()};
    with_averaged_buffers(comm, nets, [&] {
      if (!root) return;
      for (const auto& [name, net] : nets) snap.files.emplace_back(name + ".pt", save_to_bytes(net));
    });
    if (root)
      for (const auto& [name, opt] : optimizers) snap.files.emplace_back(name + ".optim.pt", save_to_bytes(*opt));
    torch::Tensor states = comm.all_gather(cpu_rng_state());
    torch::Tensor local = comm.all_gather(flat_local_buffers(nets));
    torch::Tensor device_states;
    if (s.device.is_cuda()) device_states = comm.all_gather(device_rng_state(s.device));
    double waited = 0;
    if (root) {
      snap.files.emplace_back("rng.pt", save_to_bytes(states));
      if (local.size(1) > 0) snap.files.emplace_back("buffers_local.pt", save_to_bytes(local));
      if (device_states.defined()) snap.files.emplace_back("rng_device.pt", save_to_bytes(device_states));
      waited = checkpointer.persist_async(std::move(snap));
    }
    double stall = std::chrono::duration<double>(Clock::now() - t0).count();
    stall_total += stall;
    rank_log << "checkpoint " << checkpoint_name(at_step) << ": training stalled " << stall << " s (of which " << waited
             << " s waiting for the previous one)" << std::endl;
  };
  auto sample = [&](int64_t at_step) {
    if (!root) return;
    with_rng_aside(seed + 12345, s.device, [&] {
      torch::Tensor images = recipe->sample(64);
      if (images.defined()) save_grid((run / "samples" / (checkpoint_name(at_step) + ".png")).string(), images);
    });
  };
  auto visuals = [&](int64_t at_step) {
    if (!root) return;
    with_rng_aside(seed + 777, s.device, [&] {
      recipe->write_visuals((run / "samples" / ("recon-" + checkpoint_name(at_step))).string(), last_batch);
    });
  };
  auto evaluate = [&](int64_t at_step) {
    if (!s.make_eval_source) return;
    Losses result;
    with_averaged_buffers(comm, nets, [&] {
      with_rng_aside(seed + 54321 + static_cast<uint64_t>(ctx.rank), s.device, [&] {
        auto eval = s.make_eval_source();
        int64_t batches = c.int64("train.eval_batches");
        if (batches == 0) batches = std::max<int64_t>(1, eval->steps_per_epoch());
        result = average_across(comm, recipe->evaluate(*eval, batches), 1.0);
      });
    });
    if (result.empty()) return;
    nlohmann::json rec = {{"step", at_step},
                          {"time", std::chrono::duration<double>(Clock::now() - start_time).count()}};
    for (const auto& [k, v] : result) rec[k] = v;
    if (root) {
      metrics_log->write(rec);
      note("eval at step " + std::to_string(at_step) + ": " + losses_text(result));
    }
  };

  if (step >= total) {
    note("nothing to do: the checkpoint is at step " + std::to_string(step) + ", train.steps is " +
         std::to_string(total));
    return 0;
  }
  Progress bar("train", static_cast<uint64_t>(total), "steps", stdout, root, static_cast<uint64_t>(step));
  Losses sums;
  int64_t since_log = 0;
  auto log_start = Clock::now();
  install_stop_handlers();
  try {
    while (step < total) {
      const double factor = lr_factor(schedule, step, total, warmup);
      for (size_t o = 0; o < optimizers.size(); ++o) {
        auto& groups = optimizers[o].second->param_groups();
        for (size_t g = 0; g < groups.size(); ++g) groups[g].options().set_lr(base_lr[o][g] * factor);
      }
      last_batch = train->next();
      Losses losses = recipe->train_step(last_batch);
      ++step;
      if (sums.empty())
        sums = losses;
      else
        for (size_t i = 0; i < sums.size(); ++i) sums[i].second += losses[i].second;
      ++since_log;

      if (step % log_every == 0 || step == total) {
        Losses avg = average_across(comm, sums, static_cast<double>(since_log));
        double el = std::chrono::duration<double>(Clock::now() - log_start).count();
        double ips = static_cast<double>(since_log * global_batch) / std::max(el, 1e-9);
        if (root) {
          nlohmann::json rec = {{"step", step},
                                {"epoch", train->position().epoch},
                                {"time", std::chrono::duration<double>(Clock::now() - start_time).count()},
                                {"images_per_s", ips},
                                {"lr", base_lr.empty() ? 0.0 : base_lr[0][0] * factor}};
          for (const auto& [k, v] : avg) rec[k] = v;
          metrics_log->write(rec);
          char rate[64];
          std::snprintf(rate, sizeof rate, "%.0f img/s", ips);
          bar.set(static_cast<uint64_t>(step), std::string(rate) + ", " + losses_text(avg));
        }
        sums.clear();
        since_log = 0;
        log_start = Clock::now();
      }
      if (sample_every > 0 && step % sample_every == 0 && step != total) sample(step);
      if (eval_every > 0 && step % eval_every == 0 && step != total) evaluate(step);
      const bool stop = comm.any(stop_requested());
      if (stop || step % checkpoint_every == 0 || step == total) {
        checkpoint(step);
        if (step != total && !stop) visuals(step);
      }
      if (stop && step < total) {
        checkpointer.wait();
        bar.finish("stopped by a signal");
        note("stopped by signal " + std::to_string(stop_signal()) + " at step " + std::to_string(step) +
             " after writing a checkpoint; resume with --resume auto");
        return static_cast<int>(ExitCode::kStopped);
      }
    }
  } catch (const std::exception& e) {
    // Raised during training, possibly on this rank alone: end the whole job now rather than leave the
    // other ranks in a collective until dist.timeout_s.
    if (ctx.world_size > 1 && s.abort_job) {
      const auto* err = dynamic_cast<const Error*>(&e);
      int code = err ? static_cast<int>(err->code()) : static_cast<int>(ExitCode::kInternal);
      std::fprintf(stderr, "gantry: error (rank %d, step %lld): %s\n", ctx.rank, static_cast<long long>(step),
                   e.what());
      rank_log << "error at step " << step << ": " << e.what() << std::endl;
      s.abort_job(code);
    }
    throw;
  }
  if (step == total && last_batch.images.defined()) {
    sample(step);
    evaluate(step);
    visuals(step);
  }
  checkpointer.wait();
  bar.finish();
  if (root) {
    double el = std::chrono::duration<double>(Clock::now() - start_time).count();
    char line[256];
    std::snprintf(line, sizeof line, "done: %lld steps; checkpoint stalls %.3f s in all (%.2f%% of %.1f s)",
                  static_cast<long long>(step), stall_total, 100.0 * stall_total / std::max(el, 1e-9), el);
    note(line);
  }
  return 0;
}

}  // namespace gantry
