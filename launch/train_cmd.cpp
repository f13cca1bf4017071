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
  for (const auto& r : all_recipes()) r.add_keys(schema);
  return schema;
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
  at::set_num_threads(intra_op_threads(ctx, static_cast<int>(config.int64("train.threads"))));
  // One GPU per rank (local rank) when LibTorch has CUDA; otherwise the CPU.
  torch::Device device = torch::kCPU;
  if (torch::cuda::is_available())
    device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(ctx.local_rank % torch::cuda::device_count()));
  CommOptions comm_options;
  comm_options.device = device;
  comm_options.timeout_s = config.real("dist.timeout_s");
  auto comm = make_communicator(config.str("dist.backend"), comm_options);

  const RecipeInfo& info = recipe_named(config.str("run.recipe"));
  TrainSetup setup{config, *comm, run_dir, resume, device, {}, {}, {}, {}, {}};
  std::optional<SyntheticData> synthetic;
  if (info.synthetic_data)
    synthetic = info.synthetic_data(config, SourceSpec{ctx.rank, ctx.world_size, config.int64("train.batch_size"),
                                                       static_cast<uint64_t>(config.int64("run.seed"))});
  std::shared_ptr<data::ShardedDataset> train_data, eval_data;
  if (synthetic) {  // the recipe makes its own samples; data.path is not read
    setup.shape = synthetic->shape;
    setup.make_train_source = synthetic->make_train;
    setup.make_eval_source = synthetic->make_eval;
  } else {
    train_data = data::ShardedDataset::open(config.str("data.path"));
    if (!config.str("data.eval_path").empty()) eval_data = data::ShardedDataset::open(config.str("data.eval_path"));
    const auto& m = train_data->manifest();
    if (eval_data && (eval_data->manifest().height != m.height || eval_data->manifest().width != m.width ||
                      eval_data->manifest().channels != m.channels))
      throw DataError(at(config.str("data.eval_path"), "image shape differs from data.path's"));

    data::LoaderOptions lo;
    lo.global_batch = config.int64("train.batch_size");
    lo.rank = ctx.rank;
    lo.world_size = ctx.world_size;
    lo.seed = static_cast<uint64_t>(config.int64("run.seed"));
    lo.flip = config.flag("data.flip");
    lo.workers = static_cast<unsigned>(config.int64("data.workers"));
    lo.prefetch = static_cast<unsigned>(config.int64("data.prefetch"));
    setup.shape = {m.channels, m.height, m.width, m.has_labels};
    setup.make_train_source = [train_data, lo](const DataPosition& start) {
      data::LoaderOptions o = lo;
      o.start = start;
      return std::make_unique<data::Loader>(train_data, o);
    };
    if (eval_data)
      setup.make_eval_source = [eval_data, lo, world = ctx.world_size]() -> std::unique_ptr<BatchSource> {
        data::LoaderOptions o = lo;
        o.shuffle = false;
        o.flip = false;
        o.global_batch = std::min<int64_t>(lo.global_batch, eval_data->size() / world * world);
        return std::make_unique<data::Loader>(eval_data, o);
      };
  }
  setup.make_recipe = info.create;
  setup.abort_job = [&mpi](int code) { mpi.abort(code); };
  return run_training(setup);
}

}  // namespace gantry::cli
