#include "train/run_state.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cstring>
#include <filesystem>
#include <functional>

#include "core/errors.h"
#include "core/fs.h"
#include "dist/module_state.h"
#include "train/buffers.h"

namespace gantry {

namespace fs = std::filesystem;
using Networks = std::vector<std::pair<std::string, std::shared_ptr<torch::nn::Module>>>;

namespace {

constexpr const char* kSharedPrefix = "state-";       // recipe state, one for the run
constexpr const char* kLocalPrefix = "state_local-";  // recipe state, (world, ...) one row per rank
constexpr const char* kScalerPrefix = "scaler-";      // fp16 loss scaler of an update group (LossScaler::state)

// A default generator's state as a uint8 tensor, and back: the CPU's, or the training device's.
at::Generator default_generator(const torch::Device& device) {
  return device.is_cpu() ? at::detail::getDefaultCPUGenerator() : at::globalContext().defaultGenerator(device);
}
torch::Tensor rng_state(const torch::Device& device) {
  auto gen = default_generator(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}
void set_rng_state(const torch::Device& device, const torch::Tensor& state) {
  auto gen = default_generator(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}
void seed_generator(const torch::Device& device, uint64_t seed) {
  auto gen = default_generator(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_current_seed(seed);
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

bool starts_with(const std::string& s, const char* prefix) {
  return s.rfind(prefix, 0) == 0;
}
std::string strip(const std::string& file, const char* prefix) {
  return file.substr(std::strlen(prefix), file.size() - std::strlen(prefix) - 3);  // "<prefix><name>.pt"
}

}  // namespace

uint64_t rng_seed(uint64_t run_seed, RngStream stream, uint64_t a, uint64_t b) {
  return keyed_seed(run_seed, static_cast<uint64_t>(stream), a, b);
}

uint64_t stream_seed(uint64_t run_seed, const std::string& stream) {
  if (stream == kMainStream) return run_seed;
  return rng_seed(run_seed, RngStream::kDataStream, std::hash<std::string>{}(stream));
}

ResumePoint decide_resume(Communicator& comm, const std::string& run_dir, const std::string& resume,
                          const std::string& recipe) {
  std::string decision;
  if (comm.rank() == 0) {
    try {
      auto found = find_resume(run_dir, resume);
      decision = "ok:" + (found ? found->dir : std::string());
    } catch (const CheckpointError& e) {
      decision = std::string("error:") + e.what();
    }
  }
  decision = broadcast_string(comm, decision);
  if (decision.rfind("error:", 0) == 0) throw CheckpointError(decision.substr(6));
  ResumePoint point;
  point.dir = decision.substr(3);
  if (point.dir.empty()) return point;
  const auto manifest = nlohmann::json::parse(read_file((fs::path(point.dir) / "manifest.json").string()));
  point.meta = manifest_meta(manifest);  // rank 0 verified the files
  for (const auto& [name, info] : manifest.at("files").items()) point.files.push_back(name);
  if (!recipe.empty() && point.meta.recipe != recipe)
    throw CheckpointError(
        at(point.dir, "was written by recipe '" + point.meta.recipe + "', this run is '" + recipe + "'"));
  return point;
}

void broadcast_networks(Communicator& comm, Recipe& recipe) {
  for (const auto& [name, net] : recipe.networks()) broadcast_state(comm, *net);
}

void with_averaged_buffers(Communicator& comm, Recipe& recipe, const std::function<void()>& fn) {
  std::vector<std::shared_ptr<torch::nn::Module>> modules;
  for (const auto& [name, net] : recipe.networks()) modules.push_back(net);
  BufferSnapshot keep(modules);
  {
    torch::NoGradGuard no_grad;
    for (const auto& net : modules) average_buffers(comm, *net);
  }
  fn();
}

Snapshot take_snapshot(Communicator& comm, Recipe& recipe, CheckpointMeta meta, const torch::Device& device,
                       const StepContext* step) {
  const bool root = comm.rank() == 0;
  const Networks nets = recipe.networks();
  Snapshot snap;
  snap.meta = std::move(meta);
  with_averaged_buffers(comm, recipe, [&] {
    if (!root) return;
    for (const auto& [name, net] : nets) snap.files.emplace_back(name + ".pt", save_to_bytes(net));
  });
  if (root)
    for (const auto& [name, opt] : recipe.optimizers())
      snap.files.emplace_back(name + ".optim.pt", save_to_bytes(*opt));
  const RecipeState state = recipe.state();
  if (root)
    for (const auto& [name, t] : state.shared)
      snap.files.emplace_back(kSharedPrefix + name + ".pt", save_to_bytes(t.cpu()));
  if (root && step)
    for (const auto& [group, scaler] : step->scalers())
      snap.files.emplace_back(kScalerPrefix + group + ".pt", save_to_bytes(scaler.state()));
  // Per-rank pieces are gathered into rank 0, which writes them: a checkpoint's cost, not a step's.
  for (const auto& [name, t] : state.per_rank) {
    torch::Tensor all = comm.all_gather(t.cpu().contiguous());
    if (root) snap.files.emplace_back(kLocalPrefix + name + ".pt", save_to_bytes(all));
  }
  torch::Tensor states = comm.all_gather(rng_state(torch::kCPU));
  torch::Tensor local = comm.all_gather(flat_local_buffers(nets));
  torch::Tensor device_states;
  if (device.is_cuda()) device_states = comm.all_gather(rng_state(device));
  if (root) {
    snap.files.emplace_back("rng.pt", save_to_bytes(states));
    if (local.size(1) > 0) snap.files.emplace_back("buffers_local.pt", save_to_bytes(local));
    if (device_states.defined()) snap.files.emplace_back("rng_device.pt", save_to_bytes(device_states));
  }
  return snap;
}

void restore_checkpoint(Communicator& comm, Recipe& recipe, const ResumePoint& from, const torch::Device& device,
                        uint64_t seed, StepContext* step) {
  const fs::path dir(from.dir);
  const int rank = comm.rank(), world = comm.world_size();
  const bool same_world = from.meta.world_size == world;
  const Networks nets = recipe.networks();
  for (const auto& [name, net] : nets) load_from_file(net, (dir / (name + ".pt")).string());
  for (const auto& [name, opt] : recipe.optimizers()) load_from_file(*opt, (dir / (name + ".optim.pt")).string());

  const torch::Tensor states = load_tensor((dir / "rng.pt").string());
  const uint64_t fresh =
      rng_seed(seed, RngStream::kTrain, static_cast<uint64_t>(rank), static_cast<uint64_t>(from.meta.step));
  if (same_world && states.size(0) == world) {
    set_rng_state(torch::kCPU, states[rank].clone());
    // The device generator: its saved state when the checkpoint comes from a run on this kind of device,
    // else (a CPU checkpoint resumed on a GPU) a fresh stream keyed by the step, as for another world
    // size. A GPU checkpoint resumed on the CPU leaves rng_device.pt unread.
    if (device.is_cuda()) {
      const torch::Tensor device_states =
          fs::exists(dir / "rng_device.pt") ? load_tensor((dir / "rng_device.pt").string()) : torch::Tensor();
      if (device_states.defined() && device_states.dim() == 2 && device_states.size(0) == world)
        set_rng_state(device, device_states[rank].clone());
      else
        seed_generator(device, fresh);
    }
  } else {  // another world size: fresh per-rank streams (CPU and device), keyed by the step
    torch::manual_seed(fresh);
  }

  RecipeState state;
  for (const auto& file : from.files) {
    if (starts_with(file, kSharedPrefix))
      state.shared.emplace_back(strip(file, kSharedPrefix), load_tensor((dir / file).string()));
    if (starts_with(file, kLocalPrefix) && same_world) {
      torch::Tensor all = load_tensor((dir / file).string());
      if (all.size(0) != world) throw CheckpointError(at((dir / file).string(), "does not hold one row per rank"));
      state.per_rank.emplace_back(strip(file, kLocalPrefix), all[rank].clone());
    }
    if (starts_with(file, kScalerPrefix) && step && step->precision() == Precision::kFp16) {
      try {
        step->scaler(strip(file, kScalerPrefix)).restore(load_tensor((dir / file).string()));
      } catch (const std::invalid_argument& e) {
        throw CheckpointError(at((dir / file).string(), e.what()));
      }
    }
  }
  recipe.restore(state);

  broadcast_networks(comm, recipe);
  // The checkpointed networks hold averaged BatchNorm statistics; at the same world size every rank gets
  // its own back, so a resumed run continues exactly as the uninterrupted one would.
  if (same_world && fs::exists(dir / "buffers_local.pt")) {
    torch::Tensor all = load_tensor((dir / "buffers_local.pt").string());
    if (all.dim() == 2 && all.size(0) == world && all.size(1) == flat_local_buffers(nets).numel())
      restore_local_buffers(nets, all[rank]);
  }
}

}  // namespace gantry
