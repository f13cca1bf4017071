// gantry train --config FILE [--run-dir DIR] [--resume auto|none|PATH] [--section.key VALUE ...]
#include <ATen/Parallel.h>
#include <torch/cuda.h>

#include <filesystem>
#include <iostream>
#include <optional>

#include "cli.h"
#include "config/config.h"
#include "core/errors.h"
#include "dist/communicator.h"
#include "dist/mpi_runtime.h"
#include "loader/loader.h"
#include "recipes.h"
#include "train/device_setup.h"
#include "train/run_state.h"
#include "train/trainer.h"

namespace fs = std::filesystem;

namespace gantry::cli {

namespace {

const char* kTrainUsage =
    "usage: gantry train --config FILE [--run-dir DIR] [--resume auto|none|PATH] [--SECTION.KEY VALUE ...]\n"
    "  --run-dir DIR    run directory (default runs/<config file name>)\n"
    "  --resume WHAT    auto: newest checkpoint that verifies (default); none: start over; PATH: that checkpoint\n"
    "Every key below may be set in the INI file ([section] key = value) or as --section.key VALUE (wins).\n";

Schema full_schema() {
  Schema schema;
  std::vector<std::string> names;
  for (const auto& r : all_recipes()) names.push_back(r.name);
  add_common_keys(schema, names);
  for (const auto& r : all_recipes()) {
    r.add_keys(schema);
    add_stream_keys(schema, r.streams);
  }
  return schema;
}

// A data stream of sharded images: its dataset (and held-out set), read by the loader from a position.
// For a CUDA device every stream is read as uint8 into pinned memory: a quarter of the bytes cross to the
// GPU, asynchronously, and images_to_float converts them there to the floats the CPU loader would give.
StreamSource open_stream(const Config& config, const StreamSpec& spec, const DistContext& ctx, uint64_t seed,
                         const torch::Device& device) {
  const std::string path_key = stream_path_key(spec.name), eval_key = stream_eval_path_key(spec.name);
  if (config.str(path_key).empty()) throw UsageError(path_key + ": required by recipe " + config.str("run.recipe"));
  auto train = data::ShardedDataset::open(config.str(path_key));
  std::shared_ptr<data::ShardedDataset> eval;
  if (!config.str(eval_key).empty()) eval = data::ShardedDataset::open(config.str(eval_key));
  const auto& m = train->manifest();
  if (eval && (eval->manifest().height != m.height || eval->manifest().width != m.width ||
               eval->manifest().channels != m.channels))
    throw DataError(at(config.str(eval_key), "image shape differs from " + path_key + "'s"));

  data::LoaderOptions lo;
  lo.global_batch = config.int64("train.batch_size");
  lo.rank = ctx.rank;
  lo.world_size = ctx.world_size;
  lo.seed = seed;
  lo.flip = config.flag("data.flip");
  lo.workers = static_cast<unsigned>(config.int64("data.workers"));
  lo.prefetch = static_cast<unsigned>(config.int64("data.prefetch"));
  lo.output =
      spec.format == BatchFormat::kUint8 || device.is_cuda() ? data::LoaderOutput::kUint8 : data::LoaderOutput::kFloat;
  lo.pin_memory = device.is_cuda();
  StreamSource source;
  source.name = spec.name;
  source.shape = {m.channels, m.height, m.width, m.has_labels};
  source.make_train = [train, lo](const DataPosition& start) {
    data::LoaderOptions o = lo;
    o.start = start;
    return std::make_unique<data::Loader>(train, o);
  };
  if (eval)
    source.make_eval = [eval, lo, world = ctx.world_size]() -> std::unique_ptr<BatchSource> {
      data::LoaderOptions o = lo;
      o.shuffle = false;
      o.flip = false;
      o.global_batch = std::min<int64_t>(lo.global_batch, eval->size() / world * world);
      return std::make_unique<data::Loader>(eval, o);
    };
  return source;
}

const RecipeInfo& recipe_named(const std::string& name) {
  for (const auto& r : all_recipes())
    if (r.name == name) return r;
  throw UsageError("run.recipe: unknown recipe '" + name + "'");
}

}  // namespace

int train_command(const Args& args, MpiRuntime& mpi) {
  std::string config_path, run_dir, resume = "auto";
  std::vector<std::pair<std::string, std::string>> overrides;
  Schema schema = full_schema();
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      if (mpi.context().rank == 0) {
        std::cout << kTrainUsage;
        schema.print_help(std::cout);
      }
      return 0;
    }
    if (a.rfind("--", 0) != 0) throw UsageError(a + ": unexpected argument (options are --key value)");
    std::string key = a.substr(2), value;
    if (auto eq = key.find('='); eq != std::string::npos) {
      value = key.substr(eq + 1);
      key = key.substr(0, eq);
    } else {
      if (i + 1 >= args.size()) throw UsageError(a + ": missing value");
      value = args[++i];
    }
    if (key == "config")
      config_path = value;
    else if (key == "run-dir")
      run_dir = value;
    else if (key == "resume")
      resume = value;
    else
      overrides.emplace_back(key, value);
  }
  if (config_path.empty()) throw UsageError("--config: required (e.g. experiments/vae_fashion_mnist.ini)");
  Config config = load_config(schema, config_path, overrides);
  if (run_dir.empty()) run_dir = (fs::path("runs") / fs::path(config_path).stem()).string();

  const DistContext& ctx = mpi.context();
  const TrainOptions options = parse_train_options(config);
  at::set_num_threads(intra_op_threads(ctx, options.threads));
  // One GPU per rank (local rank) when LibTorch has CUDA; otherwise the CPU.
  torch::Device device = torch::kCPU;
  if (torch::cuda::is_available())
    device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(ctx.local_rank % torch::cuda::device_count()));
  use_device(device);
  CommOptions comm_options;
  comm_options.device = device;
  comm_options.timeout_s = options.timeout_s;
  auto comm = make_communicator(options.backend, comm_options);

  const RecipeInfo& info = recipe_named(options.recipe);
  TrainSetup setup{config, *comm, run_dir, resume, device, {}, {}, {}};
  std::optional<SyntheticData> synthetic;
  if (info.synthetic_data)
    synthetic = info.synthetic_data(config, SourceSpec{ctx.rank, ctx.world_size, options.batch_size, options.seed});
  for (const StreamSpec& spec : info.streams) {
    if (synthetic && spec.name == kMainStream) {  // the recipe makes its own samples; data.path is not read
      setup.streams.push_back({spec.name, synthetic->shape, synthetic->make_train, synthetic->make_eval});
      continue;
    }
    setup.streams.push_back(open_stream(config, spec, ctx, stream_seed(options.seed, spec.name), device));
  }
  setup.make_recipe = info.create;
  setup.abort_job = [&mpi](int code) { mpi.abort(code); };
  return run_training(setup);
}

}  // namespace gantry::cli
