#include "run_setup.h"

#include <torch/cuda.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/checksum.h"
#include "core/errors.h"
#include "core/fs.h"
#include "dist/dist_context.h"
#include "loader/loader.h"
#include "recipes.h"
#include "train/device_setup.h"
#include "train/run_state.h"

namespace fs = std::filesystem;

namespace gantry::cli {

namespace {

data::LoaderOptions loader_options(const Config& config, const StreamSpec& spec, const DistContext& ctx, uint64_t seed,
                                   const torch::Device& device) {
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
  return lo;
}

// The held-out stream of `eval`: in order, unflipped, whole global batches.
std::unique_ptr<BatchSource> held_out_loader(const std::shared_ptr<data::ShardedDataset>& eval,
                                             const data::LoaderOptions& lo) {
  data::LoaderOptions o = lo;
  o.shuffle = false;
  o.flip = false;
  o.global_batch = std::min<int64_t>(lo.global_batch, eval->size() / lo.world_size * lo.world_size);
  return std::make_unique<data::Loader>(eval, o);
}

// The dataset at config[key], refused unless its images have `shape` (named after `what`).
std::shared_ptr<data::ShardedDataset> open_shaped(const Config& config, const std::string& key, const DataShape& shape,
                                                  const std::string& what) {
  auto d = data::ShardedDataset::open(config.str(key));
  const auto& m = d->manifest();
  if (m.height != shape.height || m.width != shape.width || m.channels != shape.channels)
    throw DataError(at(config.str(key), "image shape differs from " + what));
  return d;
}

// A data stream of sharded images: its dataset (and held-out set), read by the loader from a position.
// For a CUDA device every stream is read as uint8 into pinned memory: a quarter of the bytes cross to the
// GPU, asynchronously, and images_to_float converts them there to the floats the CPU loader would give.
StreamSource open_stream(const Config& config, const StreamSpec& spec, const DistContext& ctx, uint64_t seed,
                         const torch::Device& device) {
  const std::string path_key = stream_path_key(spec.name), eval_key = stream_eval_path_key(spec.name);
  if (config.str(path_key).empty()) throw UsageError(path_key + ": required by recipe " + config.str("run.recipe"));
  auto train = data::ShardedDataset::open(config.str(path_key));
  const auto& m = train->manifest();
  StreamSource source;
  source.name = spec.name;
  source.shape = {m.channels, m.height, m.width, m.has_labels};
  std::shared_ptr<data::ShardedDataset> eval;
  if (!config.str(eval_key).empty()) eval = open_shaped(config, eval_key, source.shape, path_key + "'s");
  const data::LoaderOptions lo = loader_options(config, spec, ctx, seed, device);
  source.make_train = [train, lo](const DataPosition& start) {
    data::LoaderOptions o = lo;
    o.start = start;
    return std::make_unique<data::Loader>(train, o);
  };
  if (eval) source.make_eval = [eval, lo]() { return held_out_loader(eval, lo); };
  return source;
}

// A stream of a restored checkpoint: the image shape the checkpoint recorded, so sampling needs no data (a
// run copied off its cluster samples without it); the datasets are opened only when read (gantry eval's
// held-out set, Parzen's validation draw), with their usual errors then, and must have that shape.
StreamSource recorded_stream(const Config& config, const StreamSpec& spec, const DistContext& ctx, uint64_t seed,
                             const torch::Device& device, const DataShape& shape) {
  const std::string path_key = stream_path_key(spec.name), eval_key = stream_eval_path_key(spec.name);
  const data::LoaderOptions lo = loader_options(config, spec, ctx, seed, device);
  StreamSource source;
  source.name = spec.name;
  source.shape = shape;
  source.make_train = [&config, path_key, shape, lo](const DataPosition& start) -> std::unique_ptr<BatchSource> {
    data::LoaderOptions o = lo;
    o.start = start;
    return std::make_unique<data::Loader>(open_shaped(config, path_key, shape, "the checkpoint's"), o);
  };
  if (!config.str(eval_key).empty())
    source.make_eval = [&config, eval_key, shape, lo]() {
      return held_out_loader(open_shaped(config, eval_key, shape, "the checkpoint's"), lo);
    };
  return source;
}

}  // namespace

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

const RecipeInfo& recipe_named(const std::string& name) {
  for (const auto& r : all_recipes())
    if (r.name == name) return r;
  throw UsageError("run.recipe: unknown recipe '" + name + "'");
}

torch::Device rank_device(const DistContext& ctx) {
  torch::Device device = torch::kCPU;
  if (torch::cuda::is_available())
    device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(ctx.local_rank % torch::cuda::device_count()));
  use_device(device);
  return device;
}

TrainSetup make_setup(const Config& config, Communicator& comm, const std::string& run_dir, const std::string& resume,
                      const torch::Device& device, const std::map<std::string, DataShape>& recorded) {
  const DistContext& ctx = comm.context();
  const RecipeInfo& info = recipe_named(config.str("run.recipe"));
  const uint64_t seed = static_cast<uint64_t>(config.int64("run.seed"));
  const int64_t batch_size = config.int64("train.batch_size");
  TrainSetup setup{config, comm, run_dir, resume, device, {}, {}, {}, {}, {}};
  std::optional<SyntheticData> synthetic;
  if (info.synthetic_data)
    synthetic = info.synthetic_data(config, SourceSpec{ctx.rank, ctx.world_size, batch_size, seed});
  for (const StreamSpec& spec : info.streams) {
    if (synthetic && spec.name == kMainStream) {  // the recipe makes its own samples; data.path is not read
      setup.streams.push_back({spec.name, synthetic->shape, synthetic->make_train, synthetic->make_eval});
      continue;
    }
    const auto shape = recorded.find(spec.name);
    if (shape != recorded.end())
      setup.streams.push_back(recorded_stream(config, spec, ctx, stream_seed(seed, spec.name), device, shape->second));
    else
      setup.streams.push_back(open_stream(config, spec, ctx, stream_seed(seed, spec.name), device));
  }
  setup.make_recipe = info.create;
  return setup;
}

Restored restore_run(const Schema& schema, Communicator& comm, const torch::Device& device, const std::string& path,
                     const std::vector<std::pair<std::string, std::string>>& overrides) {
  ResumePoint from = decide_resume(comm, "", path, /*recipe=*/"");
  if (from.dir.empty()) throw CheckpointError(at(path, "no checkpoint"));
  Restored r;
  r.config = std::make_unique<Config>(
      load_config_text(schema, from.meta.config_ini, from.dir + "/manifest.json (config)", overrides));
  r.setup = std::make_unique<TrainSetup>(make_setup(*r.config, comm, "", path, device, from.meta.shapes));
  r.loaded = load_recipe(*r.setup, from);
  return r;
}

void use_run_threads(const DistContext& ctx, const Config& config) {
  at::set_num_threads(intra_op_threads(ctx, static_cast<int>(config.int64("train.threads"))));
}

namespace {

// The checksums of a checkpoint's networks, as its manifest records them (verified by decide_resume).
std::string network_checksums(const ResumePoint& from, Recipe& recipe) {
  const auto manifest = nlohmann::json::parse(read_file((fs::path(from.dir) / "manifest.json").string()));
  std::string out;
  for (const auto& [name, net] : recipe.networks()) {
    const std::string file = name + ".pt";
    if (manifest.at("files").contains(file))
      out += (out.empty() ? "" : ", ") + file + " " + manifest["files"][file]["checksum"].get<std::string>();
  }
  return out;
}

// Images at a feature network's size and channels: bilinear resize; grey repeated to RGB, RGB averaged
// to grey.
torch::Tensor fit_images(torch::Tensor images, int64_t channels, int64_t height, int64_t width) {
  if (images.size(1) != channels) {
    if (images.size(1) == 1)
      images = images.repeat({1, channels, 1, 1});
    else if (channels == 1)
      images = images.mean(1, /*keepdim=*/true);
    else
      throw UsageError("eval.features: cannot feed " + std::to_string(images.size(1)) + "-channel images to a " +
                       std::to_string(channels) + "-channel network");
  }
  if (images.size(2) != height || images.size(3) != width)
    images = torch::nn::functional::interpolate(images, torch::nn::functional::InterpolateFuncOptions()
                                                            .size(std::vector<int64_t>{height, width})
                                                            .mode(torch::kBilinear)
                                                            .align_corners(false));
  return images;
}

}  // namespace

void open_feature_space(const Schema& schema, Communicator& comm, const torch::Device& device, const Config& config,
                        TrainSetup& setup, std::shared_ptr<void>& keep) {
  const std::string classifier = config.str("eval.features"), inception = config.str("eval.inception");
  if (!classifier.empty() && !inception.empty())
    throw UsageError("eval.features and eval.inception: give one feature space");
  if ((!classifier.empty() || !inception.empty() || config.flag("eval.parzen")) && config.str("data.eval_path").empty())
    throw UsageError("data.eval_path: FID, KID and Parzen compare samples with the held-out set; none is set");
  if (!classifier.empty()) {
    auto r = std::make_shared<Restored>(restore_run(schema, comm, device, classifier, {}));
    Recipe& net = *r->loaded.recipe;
    const DataShape shape = r->setup->streams.front().shape;
    if (!net.features(torch::zeros({1, shape.channels, shape.height, shape.width}, device)).defined())
      throw UsageError("eval.features: recipe '" + r->config->str("run.recipe") +
                       "' has no feature embedding (train the classifier recipe)");
    setup.features = [&net, shape](const torch::Tensor& images) {
      return net.features(fit_images(images, shape.channels, shape.height, shape.width));
    };
    setup.feature_space = "classifier " + r->loaded.from.dir + " (" + network_checksums(r->loaded.from, net) + ")";
    keep = r;
  } else if (!inception.empty()) {
    auto module = std::make_shared<torch::jit::script::Module>();
    try {
      *module = torch::jit::load(inception, device);
    } catch (const c10::Error&) {
      throw UsageError(at(inception, "not a TorchScript module torch::jit::load can read"));
    }
    module->eval();
    setup.features = [module, inception, device](const torch::Tensor& images) {
      torch::NoGradGuard no_grad;
      torch::Tensor out = module->forward({fit_images(images.to(device), 3, 299, 299)}).toTensor();
      if (out.dim() < 2 || out.size(0) != images.size(0))
        throw UsageError(at(inception, "returned a " + std::to_string(out.dim()) + "-d output, not (N, d) features"));
      return out.flatten(1);
    };
    setup.feature_space = "inception " + inception + " (" + file_checksum(inception) + ")";
    keep = module;
  }
}

ParsedArgs parse_args(const Args& args, const std::set<std::string>& own, const std::set<std::string>& flags) {
  ParsedArgs parsed;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      parsed.help = true;
      continue;
    }
    if (a.rfind("--", 0) != 0) throw UsageError(a + ": unexpected argument (options are --key value)");
    std::string key = a.substr(2), value;
    if (auto eq = key.find('='); eq != std::string::npos) {
      value = key.substr(eq + 1);
      key = key.substr(0, eq);
    } else if (flags.count(key)) {
      value = "true";
    } else {
      if (i + 1 >= args.size()) throw UsageError(a + ": missing value");
      value = args[++i];
    }
    if (own.count(key) || flags.count(key))
      parsed.options[key] = value;
    else
      parsed.overrides.emplace_back(key, value);
  }
  return parsed;
}

}  // namespace gantry::cli
